"""Tests for registry.hashing (algorithm A). Pure Python: run with ``-p no:django``."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from registry import hashing
from registry.hashing import (
    AGGREGATE_EMPTY,
    HashCancelled,
    HashError,
    aggregate_from_hashes,
    compare_files,
    hash_directory,
    hash_file,
    list_model_files,
)
from tests.utils import FIXTURES_DIR, shared_fixtures_available

WORKED_EXAMPLE = "7ed51db01fdb1084a86b11fd077237e1c2393185c799786f4611afe67d0bca08"


# --------------------------------------------------------------------------- helpers


def original_algorithm_a(root: Path) -> tuple[str, list[dict]]:
    """Literal port of the original compute_artifact_hashes (reference section 3.2 A)."""
    files = sorted(p for p in root.rglob("*") if p.is_file())
    lines, artifacts = [], []
    for p in files:
        h = hashlib.sha256()
        with p.open("rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1024 * 1024), b""):
                h.update(chunk)
        rel = p.relative_to(root).as_posix()
        lines.append(f"{h.hexdigest()}  {rel}")
        artifacts.append({"path": rel, "sha256": h.hexdigest()})
    aggregate = hashlib.sha256("\n".join(sorted(lines)).encode()).hexdigest()
    return aggregate, artifacts


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


def make_messy_tree(root: Path) -> Path:
    """Odd names, dotfiles, nesting, empty files/dirs, symlinks: what real dirs contain."""
    write(root / "config.json", "{}")
    write(root / "model-00001-of-00002.safetensors", os.urandom(300_000))
    write(root / "model-00002-of-00002.safetensors", os.urandom(120_000))
    write(root / ".gitattributes", "*.bin filter=lfs\n")
    write(root / "qwen_template.jinja:Zone.Identifier", "[ZoneTransfer]\nZoneId=3\n")
    write(root / "name with spaces.txt", "spaces")
    write(root / "ünïcødé-名前.json", "unicode")
    write(root / "e\u0301.txt", "NFD e-acute")  # distinct from the NFC name below
    write(root / "\u00e9.txt", "NFC e-acute")
    write(root / "README.md", "upper")
    write(root / "readme.md", "lower")  # case-sensitive, distinct
    write(root / "empty.bin", b"")
    write(root / ".cache" / "huggingface" / "download" / "x.lock", "")
    write(root / "a" / "b" / "c" / "deep.txt", "deep")
    write(root / "a-b" / "x.txt", "sorts differently as string vs parts")
    write(root / "a" / "b.txt", "b")
    (root / "empty_dir" / "nested_empty").mkdir(parents=True)
    # Symlinks: a file link (followed), a directory link (listed, not descended, like
    # Python 3.11 rglob), a dangling link (skipped).
    outside = root.parent / (root.name + "-outside")
    write(outside / "blob", "blob content")
    write(outside / "dir" / "inner.txt", "inside a symlinked dir")
    (root / "linked.bin").symlink_to(outside / "blob")
    (root / "linked_dir").symlink_to(outside / "dir", target_is_directory=True)
    (root / "dangling.bin").symlink_to(root / "does-not-exist")
    return root


# --------------------------------------------------------------------------- formula


def test_worked_example(tmp_path):
    write(tmp_path / "config.json", "{}")
    write(tmp_path / "weights.bin", "ABC")
    result = hash_directory(tmp_path)
    assert result.aggregate_sha256 == WORKED_EXAMPLE
    assert result.files_as_artifacts() == [
        {
            "path": "config.json",
            "sha256": "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        },
        {
            "path": "weights.bin",
            "sha256": "b5d4045c3f466fa91fe2cc6abe79232a1a57cdf104f7a26e716e0a1e2789df78",
        },
    ]
    assert [f.size for f in result.files] == [2, 3]
    assert result.total_bytes == 5
    assert result.skipped == []
    assert result.root == str(tmp_path)


def test_aggregate_from_hashes_is_the_pure_formula():
    pairs = [
        (
            "weights.bin",
            "b5d4045c3f466fa91fe2cc6abe79232a1a57cdf104f7a26e716e0a1e2789df78",
        ),
        (
            "config.json",
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
        ),
    ]
    assert aggregate_from_hashes(pairs) == WORKED_EXAMPLE
    assert aggregate_from_hashes(reversed(pairs)) == WORKED_EXAMPLE  # order-free
    assert aggregate_from_hashes(iter(pairs)) == WORKED_EXAMPLE  # any iterable
    assert aggregate_from_hashes([]) == AGGREGATE_EMPTY
    # Not algorithm C (sha of concatenated hashes) and no trailing newline.
    text = "\n".join(sorted(f"{s}  {p}" for p, s in pairs))
    assert (
        aggregate_from_hashes(pairs)
        != hashlib.sha256((text + "\n").encode()).hexdigest()
    )


def test_empty_dir(tmp_path):
    (tmp_path / "empty_sub" / "deeper").mkdir(parents=True)
    result = hash_directory(tmp_path)
    assert result.aggregate_sha256 == AGGREGATE_EMPTY
    assert AGGREGATE_EMPTY.startswith("e3b0c442")
    assert result.files == [] and result.total_bytes == 0


# --------------------------------------------------------------------------- file set


def test_messy_tree_matches_literal_port_of_original(tmp_path):
    root = make_messy_tree(tmp_path / "model")
    expected_aggregate, expected_files = original_algorithm_a(root)
    result = hash_directory(root, workers=3)
    assert result.aggregate_sha256 == expected_aggregate
    # Same files, same order as the original's sorted(rglob) (Path order, parts-wise).
    assert result.files_as_artifacts() == expected_files
    paths = [f.path for f in result.files]
    for name in (
        ".gitattributes",
        "qwen_template.jinja:Zone.Identifier",
        "name with spaces.txt",
        "ünïcødé-名前.json",
        "empty.bin",
        ".cache/huggingface/download/x.lock",
        "a/b/c/deep.txt",
        "linked.bin",
        "README.md",
        "readme.md",
        "e\u0301.txt",
        "\u00e9.txt",
    ):
        assert name in paths
    assert paths.index("a/b.txt") < paths.index("a-b/x.txt")  # parts-wise order
    assert not any(p.startswith("empty_dir") for p in paths)
    assert not any(p.startswith("linked_dir") for p in paths)
    assert "dangling.bin" not in paths
    reasons = dict(result.skipped)
    assert reasons["dangling.bin"] == hashing.SKIP_DANGLING
    assert reasons["linked_dir"] == hashing.SKIP_SYMLINK_DIR


def test_list_model_files(tmp_path):
    root = make_messy_tree(tmp_path / "model")
    skipped: list[tuple[str, str]] = []
    listed = list_model_files(root, skipped=skipped)
    rels = [rel for rel, _, _ in listed]
    assert rels == [
        p.relative_to(root).as_posix()
        for p in sorted(p for p in root.rglob("*") if p.is_file())
    ]
    sizes = {rel: size for rel, _, size in listed}
    assert sizes["config.json"] == 2 and sizes["empty.bin"] == 0
    assert sizes["linked.bin"] == len("blob content")  # size of the target
    assert all(isinstance(p, Path) and p.is_file() for _, p, _ in listed)
    assert ("dangling.bin", hashing.SKIP_DANGLING) in skipped


def test_symlinked_file_is_followed_like_a_copy(tmp_path):
    blob = write(tmp_path / "blobs" / "abc123", os.urandom(50_000))
    linked, copied = tmp_path / "linked", tmp_path / "copied"
    linked.mkdir()
    copied.mkdir()
    (linked / "model.safetensors").symlink_to(blob)  # HF cache snapshot style
    shutil.copy(blob, copied / "model.safetensors")
    a, b = hash_directory(linked), hash_directory(copied)
    assert a.aggregate_sha256 == b.aggregate_sha256
    assert a.files == b.files
    assert a.skipped == []


def test_symlinked_root_is_followed(tmp_path):
    write(tmp_path / "real" / "config.json", "{}")
    write(tmp_path / "real" / "weights.bin", "ABC")
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    assert hash_directory(tmp_path / "link").aggregate_sha256 == WORKED_EXAMPLE


def test_dangling_and_looping_symlinks_are_reported(tmp_path):
    write(tmp_path / "config.json", "{}")
    write(tmp_path / "weights.bin", "ABC")
    (tmp_path / "gone.bin").symlink_to(tmp_path / "nowhere")
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "up").symlink_to(tmp_path, target_is_directory=True)
    result = hash_directory(tmp_path)
    assert result.aggregate_sha256 == WORKED_EXAMPLE  # nothing else counted
    assert result.skipped == [
        ("gone.bin", hashing.SKIP_DANGLING),
        ("loop1", hashing.SKIP_LOOP),
        ("loop2", hashing.SKIP_LOOP),
        ("sub/up", hashing.SKIP_SYMLINK_DIR),
    ]
    assert original_algorithm_a(tmp_path)[0] == WORKED_EXAMPLE


def test_fifo_is_skipped_without_blocking(tmp_path):
    write(tmp_path / "config.json", "{}")
    write(tmp_path / "weights.bin", "ABC")
    os.mkfifo(tmp_path / "pipe")
    result = hash_directory(tmp_path)
    assert result.aggregate_sha256 == WORKED_EXAMPLE
    assert result.skipped == [("pipe", hashing.SKIP_SPECIAL)]


# --------------------------------------------------------------------------- errors


def test_missing_root(tmp_path):
    with pytest.raises(HashError, match="model files not found at .*nope"):
        hash_directory(tmp_path / "nope")


def test_root_is_a_file(tmp_path):
    f = write(tmp_path / "file.gguf", "x")
    with pytest.raises(HashError, match="is not a directory"):
        hash_directory(f)


def test_empty_model_path_is_rejected():
    # The original hashed the current working directory for model_path="".
    with pytest.raises(HashError, match="empty"):
        hash_directory("")


def _deny(monkeypatch, target: Path):
    real_open = open

    def fake_open(path, *args, **kwargs):
        if Path(path) == target:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(hashing, "open", fake_open, raising=False)


@pytest.mark.parametrize("workers", [1, 2])
def test_unreadable_file_fails_and_names_it(tmp_path, monkeypatch, workers):
    # Tests run as root, where chmod 000 does not stop reads: simulate EACCES.
    for i in range(6):
        write(tmp_path / f"shard-{i}.bin", os.urandom(10_000))
    secret = write(tmp_path / "sub dir" / "secret.bin", "x")
    _deny(monkeypatch, secret)
    with pytest.raises(HashError) as info:
        hash_directory(tmp_path, workers=workers)
    assert str(info.value) == "cannot read sub dir/secret.bin: Permission denied"
    assert not isinstance(info.value, HashCancelled)


def test_unreadable_directory_fails_and_names_it(tmp_path, monkeypatch):
    write(tmp_path / "ok.txt", "ok")
    locked = tmp_path / "locked"
    write(locked / "hidden.bin", "x")
    real_scandir = os.scandir

    def fake_scandir(path="."):
        if Path(path) == locked:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_scandir(path)

    monkeypatch.setattr(hashing.os, "scandir", fake_scandir)
    with pytest.raises(
        HashError, match="cannot read directory locked: Permission denied"
    ):
        hash_directory(tmp_path)


def test_file_vanishing_between_listing_and_hashing(tmp_path, monkeypatch):
    write(tmp_path / "a.bin", "a")
    victim = write(tmp_path / "b.bin", "b")
    real_scan = hashing._scan

    def scan_then_delete(root):
        listed = real_scan(root)
        victim.unlink()
        return listed

    monkeypatch.setattr(hashing, "_scan", scan_then_delete)
    with pytest.raises(HashError, match="cannot read b.bin: No such file or directory"):
        hash_directory(tmp_path)


# --------------------------------------------------------------------------- hash_file


@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * 4096])
def test_hash_file_matches_hashlib_across_chunk_boundaries(tmp_path, size):
    data = os.urandom(size)
    f = write(tmp_path / "f.bin", data)
    seen: list[int] = []
    assert hash_file(f, chunk_size=4096, on_bytes=seen.append) == (
        hashlib.sha256(data).hexdigest()
    )
    assert sum(seen) == size
    assert all(0 < n <= 4096 for n in seen)
    assert hash_file(f) == hashlib.sha256(data).hexdigest()  # default 8 MiB chunks


def test_hash_file_cancel(tmp_path):
    f = write(tmp_path / "f.bin", os.urandom(64 * 1024))
    cancel = threading.Event()
    calls: list[int] = []

    def on_bytes(n):
        calls.append(n)
        cancel.set()

    with pytest.raises(HashCancelled):
        hash_file(f, chunk_size=4096, on_bytes=on_bytes, cancel=cancel)
    assert calls == [4096]  # stopped after the first chunk


# --------------------------------------------------------------------------- parallel


def _tree_of_shards(root: Path, n: int = 8) -> Path:
    for i in range(n):
        write(root / f"model-{i:05d}.safetensors", os.urandom(200_000 + 37_000 * i))
    write(root / "tokenizer.json", '{"x": 1}')
    write(root / "nested" / "small.txt", "s")
    return root


def test_parallel_equals_serial(tmp_path):
    root = _tree_of_shards(tmp_path)
    serial = hash_directory(root, workers=1)
    for workers in (2, 4, None):
        parallel = hash_directory(root, workers=workers, chunk_size=64 * 1024)
        assert parallel.aggregate_sha256 == serial.aggregate_sha256
        assert parallel.files == serial.files
    assert serial.aggregate_sha256 == original_algorithm_a(root)[0]
    assert serial.total_bytes == sum(f.size for f in serial.files)


def test_progress_monotonic_and_reaches_total(tmp_path, monkeypatch):
    root = _tree_of_shards(tmp_path)
    monkeypatch.setattr(hashing, "PROGRESS_INTERVAL_S", 0.0)  # report every change
    calls: list[tuple[int, int]] = []
    result = hash_directory(
        root,
        workers=2,
        chunk_size=16 * 1024,
        progress=lambda d, t: calls.append((d, t)),
    )
    total = result.total_bytes
    assert calls, "progress never called"
    assert calls[-1] == (total, total)
    assert all(t == total for _, t in calls)
    dones = [d for d, _ in calls]
    assert dones == sorted(dones)  # monotonic
    assert all(0 <= d <= total for d in dones)
    assert len(set(dones)) == len(dones)  # no duplicate reports


def test_progress_default_throttle_still_ends_with_total(tmp_path):
    root = _tree_of_shards(tmp_path, n=3)
    calls: list[tuple[int, int]] = []
    result = hash_directory(root, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (result.total_bytes, result.total_bytes)
    empty_calls: list[tuple[int, int]] = []
    hash_directory(
        tmp_path / "nested", progress=lambda d, t: empty_calls.append((d, t))
    )
    assert empty_calls[-1] == (1, 1)


def test_cancel_before_start(tmp_path):
    root = _tree_of_shards(tmp_path, n=3)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(HashCancelled):
        hash_directory(root, cancel=cancel)


def test_cancel_midway_stops_remaining_work(tmp_path, monkeypatch):
    root = _tree_of_shards(tmp_path, n=8)
    cancel = threading.Event()
    opened: list[str] = []
    lock = threading.Lock()
    real_open = open

    def counting_open(path, *args, **kwargs):
        with lock:
            opened.append(Path(path).name)
            if len(opened) == 2:
                cancel.set()  # the operator presses "cancel" while file 2 starts
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(hashing, "open", counting_open, raising=False)
    with pytest.raises(HashCancelled):
        hash_directory(root, workers=2, cancel=cancel, chunk_size=16 * 1024)
    assert len(opened) < 10  # the remaining files were never opened


def test_largest_files_are_scheduled_first(tmp_path, monkeypatch):
    root = _tree_of_shards(tmp_path, n=5)
    opened: list[str] = []
    real_open = open

    def recording_open(path, *args, **kwargs):
        opened.append(Path(path).relative_to(root).as_posix())
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(hashing, "open", recording_open, raising=False)
    hash_directory(root, workers=1)
    sizes = {rel: size for rel, _, size in list_model_files(root)}
    assert opened == sorted(sizes, key=lambda rel: sizes[rel], reverse=True)


# --------------------------------------------------------------------------- compare


def test_changed_byte_changes_aggregate_and_compare_names_it(tmp_path):
    root = make_messy_tree(tmp_path / "model")
    base = hash_directory(root)
    for fh in base.files:
        if fh.size == 0 or fh.path == "linked.bin":
            continue
        target = root / fh.path
        original = target.read_bytes()
        mutated = bytearray(original)
        mutated[len(mutated) // 2] ^= 0x01
        target.write_bytes(bytes(mutated))
        try:
            after = hash_directory(root)
            assert after.aggregate_sha256 != base.aggregate_sha256, fh.path
            diff = compare_files(base.files_as_artifacts(), after.files_as_artifacts())
            assert diff.changed == [fh.path]
            assert diff.added == [] and diff.removed == []
            assert diff.has_differences
        finally:
            target.write_bytes(original)
    assert hash_directory(root).aggregate_sha256 == base.aggregate_sha256


def test_compare_files_added_removed_identical():
    a = {"path": "a.bin", "sha256": "1" * 64}
    b = {"path": "b.bin", "sha256": "2" * 64}
    c = {"path": "c.bin", "sha256": "3" * 64}
    b2 = {"path": "b.bin", "sha256": "4" * 64}
    diff = compare_files([a, b], [b2, c])
    assert (diff.changed, diff.added, diff.removed) == (["b.bin"], ["c.bin"], ["a.bin"])
    same = compare_files([a, b], [b, a])
    assert not same.has_differences
    assert compare_files([], []).changed == []


def test_renamed_file_changes_aggregate(tmp_path):
    write(tmp_path / "config.json", "{}")
    write(tmp_path / "weights.bin", "ABC")
    before = hash_directory(tmp_path)
    (tmp_path / "weights.bin").rename(tmp_path / "weights2.bin")
    after = hash_directory(tmp_path)
    assert after.aggregate_sha256 != before.aggregate_sha256
    diff = compare_files(before.files_as_artifacts(), after.files_as_artifacts())
    assert (diff.changed, diff.added, diff.removed) == (
        [],
        ["weights2.bin"],
        ["weights.bin"],
    )


# --------------------------------------------------------------------------- real data


@pytest.mark.skipif(not shared_fixtures_available(), reason="shared fixtures absent")
def test_stored_aggregates_in_real_fixtures_match_algorithm_a():
    verified = 0
    mismatches = []
    for path in sorted(FIXTURES_DIR.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data if isinstance(data, list) else data.get("models", [])
        for entry in entries:
            artifacts = entry.get("artifacts") or {}
            files = artifacts.get("files") or []
            if not files:
                continue
            stored = artifacts.get("aggregate_sha256")
            computed = aggregate_from_hashes((f["path"], f["sha256"]) for f in files)
            if computed == stored:
                verified += 1
            else:
                mismatches.append((path.name, entry.get("name"), stored, computed))
    assert mismatches == []
    # 35 entries carry file lists across the 8 fixture files at the time of writing.
    assert verified > 0


def test_non_utf8_file_name_hashes_with_original_bytes(tmp_path):
    raw_name = b"weights-\xff.bin"
    with open(os.path.join(os.fsencode(tmp_path), raw_name), "wb") as fh:
        fh.write(b"ABC")
    result = hash_directory(tmp_path)
    rel = os.fsdecode(raw_name)
    assert [f.path for f in result.files] == [rel]
    line = hashlib.sha256(b"ABC").hexdigest().encode() + b"  " + raw_name
    assert result.aggregate_sha256 == hashlib.sha256(line).hexdigest()
