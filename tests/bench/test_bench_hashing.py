"""``bench/bench_hashing.py --dir PATH`` never deletes or overwrites what it did not write.

The bench is loaded from its file (``bench/`` is not a package); only its folder
handling runs here, on a tiny plan, never the timed contenders.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.utils import REPO_DIR


def _load_bench():
    path = REPO_DIR / "bench" / "bench_hashing.py"
    spec = importlib.util.spec_from_file_location("bench_hashing_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _load_bench()
SMALL = {"a.safetensors": 10, "tokenizer.json": 5}
OTHER = {"a.safetensors": 20, "tokenizer.json": 5}


def _manifest(root: Path) -> Path:
    return root.with_name(root.name + ".manifest.json")


def test_a_new_folder_is_built_and_then_reused(tmp_path):
    root = tmp_path / "model"
    assert bench.build_or_reuse(root, SMALL) is True
    assert {p.name: p.stat().st_size for p in root.iterdir()} == SMALL
    assert json.loads(_manifest(root).read_text())["files"] == SMALL
    assert bench.build_or_reuse(root, SMALL) is False


def test_a_folder_with_someone_elses_files_is_refused_and_left_alone(tmp_path):
    root = tmp_path / "model"
    root.mkdir()
    (root / "weights.bin").write_bytes(b"precious")
    (root / "sub").mkdir()
    with pytest.raises(SystemExit, match="did not create"):
        bench.build_or_reuse(root, SMALL)
    assert (root / "weights.bin").read_bytes() == b"precious"
    assert sorted(p.name for p in root.iterdir()) == ["sub", "weights.bin"]


def test_an_empty_subfolder_or_dangling_link_counts_as_not_empty(tmp_path):
    root = tmp_path / "model"
    root.mkdir()
    (root / "link").symlink_to(tmp_path / "nowhere")
    with pytest.raises(SystemExit):
        bench.build_or_reuse(root, SMALL)
    assert (root / "link").is_symlink()


def test_a_manifest_path_holding_another_file_is_not_overwritten(tmp_path):
    root = tmp_path / "model"
    _manifest(root).write_text('{"mine": true}')
    with pytest.raises(SystemExit, match="not written by this bench"):
        bench.build_or_reuse(root, SMALL)
    assert _manifest(root).read_text() == '{"mine": true}'
    assert not root.exists()


def test_a_rebuild_removes_only_the_benchs_own_files(tmp_path):
    root = tmp_path / "model"
    bench.build_or_reuse(root, SMALL)
    assert bench.build_or_reuse(root, OTHER) is True
    assert {p.name: p.stat().st_size for p in root.iterdir()} == OTHER


def test_a_foreign_file_added_later_stops_the_rebuild_before_any_removal(tmp_path):
    root = tmp_path / "model"
    bench.build_or_reuse(root, SMALL)
    (root / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit, match="nothing was removed"):
        bench.build_or_reuse(root, OTHER)
    assert (root / "notes.txt").read_text() == "keep me"
    assert {p.name: p.stat().st_size for p in root.iterdir()} == {
        **SMALL,
        "notes.txt": 7,
    }


def test_a_recorded_file_someone_replaced_is_not_deleted(tmp_path):
    root = tmp_path / "model"
    bench.build_or_reuse(root, SMALL)
    (root / "tokenizer.json").write_text("user's own config")
    with pytest.raises(SystemExit, match="tokenizer.json"):
        bench.build_or_reuse(root, SMALL)
    assert (root / "tokenizer.json").read_text() == "user's own config"


def test_a_manifest_naming_paths_outside_the_folder_is_refused(tmp_path):
    root = tmp_path / "model"
    victim = tmp_path / "victim.txt"
    victim.write_text("x")
    bench.build_or_reuse(root, SMALL)
    data = json.loads(_manifest(root).read_text())
    data["files"]["../victim.txt"] = 1
    _manifest(root).write_text(json.dumps(data))
    with pytest.raises(SystemExit, match="outside"):
        bench.build_or_reuse(root, OTHER)
    assert victim.read_text() == "x"


def test_a_file_in_place_of_the_folder_is_refused(tmp_path):
    root = tmp_path / "model"
    root.write_text("a file")
    with pytest.raises(SystemExit, match="not a folder"):
        bench.build_or_reuse(root, SMALL)
    assert root.read_text() == "a file"
