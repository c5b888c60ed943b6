"""The scanner and the attribution against real folders in a temporary root (no DB)."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from inventory import scan, usage
from inventory.choices import UsageState
from inventory.usage import EntryRef
from tests.inventory.helpers import Library


@pytest.fixture
def lib(tmp_path) -> Library:
    return Library(tmp_path)


def ref(name: str, path, **kw) -> EntryRef:
    return EntryRef(
        name=name, backend=kw.pop("backend", "vllm"), model_dir=str(path), **kw
    )


def test_sizes_count_each_inode_once_and_hard_links_are_shared(lib):
    a = lib.model("org/a", size=50_000)
    b = lib.folder("org/b", {"config.json": "{}"})
    os.link(a / "model.safetensors", b / "model.safetensors")
    result = scan.scan([lib.root])
    assert result.file_count == 5
    # 50,000 bytes of weights are stored once although two folders hold them.
    assert result.total_bytes == 50_000 + 3 * 2
    att = usage.attribute(result, [ref("a", a), ref("b", b)])
    ua, ub = att.usage["a"], att.usage["b"]
    assert ua.size_bytes == 50_004 and ub.size_bytes == 50_002
    # The shared file is owned by "a" (first by name): the owned bytes add up to
    # the disk use counted once.
    assert ua.owned_bytes == 50_004 and ub.owned_bytes == 2
    assert ua.owned_bytes + ub.owned_bytes == result.total_bytes
    assert ua.shared_with == ["b"] and ua.shared_bytes == 50_000
    # Removing "a" alone frees only its own small files: the weights stay (b links them).
    assert ua.exclusive_bytes == 4
    records = {
        "a": [s.as_json() for s in ua.shared],
        "b": [s.as_json() for s in ub.shared],
    }
    both = usage.freed_bytes(
        {"a": ua.exclusive_bytes, "b": ub.exclusive_bytes}, records
    )
    assert both == result.total_bytes
    assert usage.freed_bytes({"a": 4}, {"a": records["a"]}) == 4


def test_symlinks_inside_the_roots_are_attributed_and_outside_ones_reported(
    lib, tmp_path
):
    # The Hugging Face cache layout: snapshots/<rev>/file -> ../../blobs/<sha>.
    repo = lib.folder("hub/models--org--m", {"blobs/aaa": 30_000, "blobs/bbb": "{}"})
    snap = repo / "snapshots" / "rev1"
    snap.mkdir(parents=True)
    (snap / "model.safetensors").symlink_to("../../blobs/aaa")
    (snap / "config.json").symlink_to("../../blobs/bbb")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "big.bin").write_bytes(b"z" * 99_999)
    (snap / "extra.bin").symlink_to(outside / "big.bin")
    (snap / "gone.bin").symlink_to(repo / "blobs" / "missing")

    result = scan.scan([lib.root])
    problems = {(Path(p.path).name, p.reason) for p in result.link_problems}
    assert problems == {("extra.bin", "outside"), ("gone.bin", "broken")}
    # Never followed: the 99,999 bytes outside the root are not counted anywhere.
    assert result.total_bytes == 30_002
    assert str(outside / "big.bin") not in result.files
    att = usage.attribute(result, [ref("m", snap)])
    u = att.usage["m"]
    assert u.state == UsageState.OK and u.size_bytes == 30_002 and u.files == 2
    # The cache folder is one model folder, covered by the entry on its snapshot.
    assert scan.model_folders(result) == [str(repo)]
    assert att.orphans == {}


def test_a_directory_symlink_out_of_the_root_is_not_walked(lib, tmp_path):
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "config.json").write_text("{}")
    (outside / "model.safetensors").write_bytes(b"s" * 5000)
    (lib.root / "linked").symlink_to(outside, target_is_directory=True)
    loop = lib.folder("loop", {"config.json": "{}"})
    (loop / "self").symlink_to(loop, target_is_directory=True)  # a loop inside
    result = scan.scan([lib.root])
    assert [p.reason for p in result.link_problems] == ["outside"]
    assert all(not p.startswith(str(outside)) for p in result.files)
    assert result.total_bytes == 2


def test_partial_downloads_are_detected(lib):
    lib.folder(
        "org/half",
        {
            "config.json": "{}",
            "model-00001-of-00002.safetensors": 1000,
            "model-00002-of-00002.safetensors": b"",  # zero-byte shard
            ".cache/model.safetensors.incomplete": 10,
            "weights.gguf.part": 5,
            "README.md": b"",  # an empty non-weight file is fine
        },
    )
    result = scan.scan([lib.root])
    reasons = sorted((Path(p.path).name, p.reason) for p in result.partials)
    assert reasons == [
        ("model-00002-of-00002.safetensors", "zero-byte weight shard"),
        ("model.safetensors.incomplete", "unfinished download (.incomplete)"),
        ("weights.gguf.part", "unfinished download (.part)"),
    ]


def test_model_folders_and_orphans(lib):
    used = lib.model("weights/org/used")
    lib.model("weights/org/orphan")
    lib.folder("weights/org/orphan/tokenizer", {"vocab.txt": "x"})  # part of it
    lib.folder("loose", {"notes.txt": "a leaf with files"})
    lib.folder("weights/empty-dir", {})
    nested = lib.model("weights/parent/child")
    result = scan.scan([lib.root])
    folders = scan.model_folders(result)
    assert folders == sorted(
        [
            str(lib.root / "loose"),
            str(lib.root / "weights/org/orphan"),
            str(nested),
            str(used),
        ]
    )
    # An entry on the parent covers the child; the download path counts too.
    refs = [
        ref("used", used),
        EntryRef(
            name="p",
            backend="vllm",
            model_dir="",
            download_path=str(lib.root / "weights/parent"),
        ),
    ]
    orphans = usage.find_orphans(result, refs)
    assert orphans == [str(lib.root / "loose"), str(lib.root / "weights/org/orphan")]


def test_entry_states(lib, tmp_path):
    ok = lib.model("ok")
    empty = lib.folder("empty", {})
    outside = tmp_path / "outside-model"
    outside.mkdir()
    (outside / "config.json").write_text("{}")
    result = scan.scan([lib.root])
    att = usage.attribute(
        result,
        [
            ref("ok", ok),
            ref("empty", empty),
            ref("missing", lib.root / "nope"),
            ref("outside", outside),
            EntryRef(name="logical", backend="vllm", model_dir=""),
        ],
    )
    states = {name: u.state for name, u in att.usage.items()}
    assert states == {
        "ok": UsageState.OK,
        "empty": UsageState.EMPTY,
        "missing": UsageState.MISSING,
        "outside": UsageState.OUTSIDE,
        "logical": UsageState.NO_PATH,
    }


def test_ollama_blobs_shared_by_tags_count_once(lib):
    base = lib.ollama_blob("base-weights", 40_000)
    cfg_a = lib.ollama_blob("cfg-a", 100)
    cfg_b = lib.ollama_blob("cfg-b", 200)
    digest_a = lib.ollama_manifest("qwen3:8b", [cfg_a, base])
    lib.ollama_manifest("alice/qwen-tuned:latest", [cfg_b, base])
    (lib.ollama_dir / "blobs" / "sha256-feed-partial").write_bytes(b"p" * 7)
    result = scan.scan([lib.root], ollama_dir=lib.ollama_dir)
    store = result.ollama
    assert sorted(store.manifests) == ["alice/qwen-tuned:latest", "qwen3:8b"]
    assert store.manifests["qwen3:8b"].digest == digest_a
    assert result.total_bytes == 40_300
    att = usage.attribute(
        result,
        [
            EntryRef(name="a", backend="ollama", model_dir="", ollama_tag="qwen3:8b"),
            EntryRef(
                name="b",
                backend="ollama",
                model_dir="",
                ollama_tag="alice/qwen-tuned:latest",
            ),
            EntryRef(name="c", backend="ollama", model_dir="", ollama_tag="nope:1"),
        ],
    )
    assert att.usage["a"].size_bytes == 40_100
    assert att.usage["b"].size_bytes == 40_200
    assert att.usage["a"].owned_bytes + att.usage["b"].owned_bytes == 40_300
    assert att.usage["c"].state == UsageState.OLLAMA_ABSENT
    assert [Path(p.path).name for p in result.partials] == ["sha256-feed-partial"]


def test_the_ollama_store_inside_a_root_is_not_an_orphan(lib):
    lib.ollama_dir = lib.root / "ollama"
    blob = lib.ollama_blob("w", 1000)
    lib.ollama_manifest("m:1", [blob])
    result = scan.scan([lib.root], ollama_dir=lib.ollama_dir)
    assert scan.model_folders(result) == []
    assert result.total_bytes == 1000  # read once, through the store


def test_excluded_folders_missing_roots_and_cancel(lib, tmp_path):
    lib.model("keep")
    trash = lib.folder(".imageworks-trash/item", {"config.json": "{}"})
    result = scan.scan([lib.root, tmp_path / "absent"], exclude=[trash.parent])
    assert scan.model_folders(result) == [str(lib.root / "keep")]
    assert result.missing_roots == [str(tmp_path / "absent")]
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(scan.ScanCancelled):
        scan.scan([lib.root], cancel=cancel)


def test_unreadable_folders_are_recorded_not_raised(lib, monkeypatch):
    locked = lib.model("locked")
    lib.model("fine")
    real_scandir = os.scandir

    def scandir(path):
        # chmod 000 does not stop root (the CI user): refuse like the kernel would.
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(locked))
        return real_scandir(path)

    monkeypatch.setattr(scan.os, "scandir", scandir)
    result = scan.scan([lib.root])
    assert result.errors == [(str(locked), "Permission denied")]
    assert scan.model_folders(result) == [str(lib.root / "fine")]


def test_nested_roots_are_walked_once(lib):
    lib.model("a/b")
    result = scan.scan([lib.root, lib.root / "a"])
    assert result.roots == [str(lib.root)]
    assert result.file_count == 3
