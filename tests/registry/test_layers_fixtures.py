"""registry.layers against the real (messy) ImageWorks registry files.

The fixtures are read-only and shared: every test that writes works on a tmp copy.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from registry.layers import (
    CURATED_FILE,
    DISCOVERED_FILE,
    LEGACY_BACKUP_FILE,
    SNAPSHOT_FILE,
    detect_style,
    dumps,
    export_merged,
    load_legacy_file,
    load_registry,
    read_layer,
    write_layer_entries,
)
from tests.utils import FIXTURES_DIR, shared_fixtures_available

pytestmark = pytest.mark.skipif(
    not shared_fixtures_available(), reason="shared registry fixtures not available"
)

FIXTURE_FILES = (
    sorted(p.name for p in FIXTURES_DIR.glob("*.json")) if FIXTURES_DIR.is_dir() else []
)
BACKUP_SERIES = [name for name in FIXTURE_FILES if name.endswith(".bak.json")]


def copy_layers(
    target: Path, names=(CURATED_FILE, DISCOVERED_FILE, SNAPSHOT_FILE)
) -> Path:
    target.mkdir()
    for name in names:
        shutil.copyfile(
            FIXTURES_DIR / name, target / name
        )  # copyfile: not the r/o mode
    return target


@pytest.mark.parametrize("name", FIXTURE_FILES)
def test_fixture_files_round_trip_byte_identically(name):
    data = (FIXTURES_DIR / name).read_bytes()
    assert dumps(json.loads(data), detect_style(data)) == data


def test_export_merged_equals_the_original_snapshot():
    registry = load_registry(FIXTURES_DIR, migrate_legacy=False)
    merged = export_merged(registry)
    snapshot = json.loads((FIXTURES_DIR / SNAPSHOT_FILE).read_bytes())
    assert [e["name"] for e in merged] == [e["name"] for e in snapshot]
    for ours, theirs in zip(merged, snapshot, strict=True):
        assert list(ours) == list(theirs), ours["name"]  # same keys, same order
        for key in theirs:
            assert ours[key] == theirs[key], (ours["name"], key)
    # And the bytes the original would write as the snapshot.
    assert dumps(merged) == (FIXTURES_DIR / SNAPSHOT_FILE).read_bytes()
    assert registry.problems == []
    assert not any(e.from_snapshot for e in registry.entries.values())


def test_current_registry_shape():
    registry = load_registry(FIXTURES_DIR, migrate_legacy=False)
    assert len(registry.entries) == 16
    assert len(registry.curated.entries) == 14
    curated_only = [e.name for e in registry.entries.values() if e.discovered is None]
    assert curated_only == []
    discovered_only = sorted(
        n for n, e in registry.entries.items() if e.curated is None
    )
    assert discovered_only == [
        "gpt-oss-abliterated_20b_(F16)",
        "siglip-large-patch16-384_(FP32)",
    ]


def test_legacy_pre_split_file_migrates_like_the_original(tmp_path):
    folder = tmp_path / "legacy"
    folder.mkdir()
    shutil.copyfile(FIXTURES_DIR / LEGACY_BACKUP_FILE, folder / SNAPSHOT_FILE)
    legacy_bytes = (folder / SNAPSHOT_FILE).read_bytes()
    registry = load_registry(folder)
    assert registry.migrated
    assert [e["name"] for e in registry.curated.items] == [
        "llava-1.5-7b-awq",
        "qwen2.5-vl-7b-awq",
    ]
    assert len(registry.discovered.items) == 32
    assert len(registry.entries) == 31
    assert (folder / LEGACY_BACKUP_FILE).read_bytes() == legacy_bytes
    assert not (folder / SNAPSHOT_FILE).exists()
    duplicates = [p for p in registry.problems if "duplicate" in p.reason]
    assert {p.name for p in duplicates} == {"synthetic-test-ollama-gguf"}
    assert len(duplicates) == 3  # 4 copies: 3 superseded, the last one wins
    legacy = json.loads(legacy_bytes)
    last_synthetic = [e for e in legacy if e["name"] == "synthetic-test-ollama-gguf"][
        -1
    ]
    assert registry.entries["synthetic-test-ollama-gguf"].merged == last_synthetic


def test_legacy_file_reads_forgivingly():
    layer = load_legacy_file(FIXTURES_DIR / LEGACY_BACKUP_FILE)
    assert len(layer.items) == 34 and len(layer.entries) == 31
    assert all(p.name == "synthetic-test-ollama-gguf" for p in layer.problems)
    assert "ollama://" in json.dumps(layer.items)


@pytest.mark.parametrize("name", BACKUP_SERIES)
def test_backup_series_parses_without_problems(name):
    layer = read_layer(FIXTURES_DIR / name, "discovered")
    assert layer.problems == []
    assert len(layer.entries) == len(layer.items) > 0


def test_noop_write_keeps_the_real_files_byte_identical(tmp_path):
    folder = copy_layers(tmp_path / "reg")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    registry = load_registry(folder)
    entry = registry.entries["qwen3-vl-8b-instruct_(FP8)"]
    for layer, raw in (("curated", entry.curated), ("discovered", entry.discovered)):
        result = write_layer_entries(
            folder, layer, {entry.name: raw}, expected={entry.name: entry.fingerprint}
        )
        assert result.backup_path is None and result.snapshot_error is None
    after = {
        p.name: p.read_bytes() for p in folder.iterdir() if not p.name.startswith(".")
    }
    assert after == before


def test_editing_one_real_entry_changes_only_that_entry(tmp_path):
    folder = copy_layers(tmp_path / "reg")
    registry = load_registry(folder)
    name = "florence-2-large_(FP16)"
    entry = registry.entries[name]
    edited = json.loads(json.dumps(entry.curated))
    edited["roles"] = [*edited["roles"], "description"]
    write_layer_entries(
        folder, "curated", {name: edited}, expected={name: entry.fingerprint}
    )
    old_items = json.loads((FIXTURES_DIR / CURATED_FILE).read_bytes())
    new_bytes = (folder / CURATED_FILE).read_bytes()
    new_items = json.loads(new_bytes)
    assert [e["name"] for e in new_items] == [e["name"] for e in old_items]
    for old, new in zip(old_items, new_items, strict=True):
        if old["name"] == name:
            assert new == edited
        else:
            # Every other entry serializes to exactly the same bytes as before.
            assert dumps([new]) == dumps([old])
            assert dumps([old])[2:-3] in new_bytes
    assert (folder / DISCOVERED_FILE).read_bytes() == (
        FIXTURES_DIR / DISCOVERED_FILE
    ).read_bytes()
    snapshot = json.loads((folder / SNAPSHOT_FILE).read_bytes())
    assert next(e for e in snapshot if e["name"] == name)["roles"][-1] == "description"
