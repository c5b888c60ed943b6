"""Unit tests for registry.layers with small, realistic sample entries (no Django)."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest

from registry.layers import (
    ABSENT_FINGERPRINT,
    CURATED_FILE,
    DISCOVERED_FILE,
    LEGACY_BACKUP_FILE,
    LOCK_FILE,
    SNAPSHOT_FILE,
    ConflictError,
    JsonStyle,
    LayerParseError,
    LockTimeout,
    RegistryNotFound,
    atomic_write,
    detect_style,
    dumps,
    entry_fingerprint,
    layer_signatures,
    load_registry,
    merge_entry_dicts,
    read_layer,
    registry_lock,
    write_layer_entries,
)

# ------------------------------------------------------------------ sample data


def sample_entry(name: str, backend: str = "vllm", **extra) -> dict:
    """A realistic (abridged) discovered-layer entry."""
    entry = {
        "name": name,
        "display_name": name.replace("_", " "),
        "backend": backend,
        "backend_config": {
            "port": 24001 if backend == "vllm" else 11434,
            "model_path": f"/models/{name}" if backend == "vllm" else f"ollama:/{name}",
            "extra_args": ["--max-model-len", "4096"],
        },
        "capabilities": {"text": True, "vision": False, "tools": False},
        "artifacts": {"aggregate_sha256": "", "files": []},
        "chat_template": {"source": "embedded", "path": None, "sha256": None},
        "version_lock": {
            "locked": False,
            "expected_aggregate_sha256": None,
            "last_verified": None,
        },
        "metadata": {"created_from_download": True},
        "served_model_id": "None",
        "model_aliases": [f"org/{name}"],
        "roles": [],
        "deprecated": False,
        "download_path": f"/models/{name}",
    }
    entry.update(extra)
    return entry


def curated_entry(name: str, **extra) -> dict:
    entry = {
        "name": name,
        "display_name": f"{name} (curated)",
        "backend": "vllm",
        "backend_config": {"port": 24002, "extra_args": ["--enforce-eager"]},
        "served_model_id": None,
        "roles": ["caption"],
        "metadata": {"registry_layer": "curated"},
    }
    entry.update(extra)
    return entry


def write_json(path: Path, items) -> bytes:
    data = (json.dumps(items, indent=2) + "\n").encode()
    path.write_bytes(data)
    return data


def make_registry(folder: Path, curated=(), discovered=(), snapshot=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / CURATED_FILE, list(curated))
    write_json(folder / DISCOVERED_FILE, list(discovered))
    if snapshot is not None:
        write_json(folder / SNAPSHOT_FILE, snapshot)
    return folder


@pytest.fixture
def reg_dir(tmp_path: Path) -> Path:
    return make_registry(
        tmp_path / "reg",
        curated=[curated_entry("alpha"), curated_entry("gamma")],
        discovered=[sample_entry("alpha"), sample_entry("beta", backend="ollama")],
    )


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {
        p.name: p.read_bytes()
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != LOCK_FILE
    }


# ------------------------------------------------------------------ style


@pytest.mark.parametrize(
    ("style", "items"),
    [
        (JsonStyle(2, True, True), [{"a": "caf\u00e9", "b": [1, 2]}]),
        (JsonStyle(4, False, True), [{"a": "caf\u00e9 \u2013"}]),
        (JsonStyle(None, True, False), [{"a": 1}, 2]),
        (JsonStyle("\t", True, True), [{"a": {"b": None}}]),
        (JsonStyle(2, True, False), []),
    ],
)
def test_detect_style_round_trips(style, items):
    data = dumps(items, style)
    detected = detect_style(data)
    assert dumps(json.loads(data), detected) == data
    if items:
        assert detected == style


def test_detect_style_ascii_rules():
    assert detect_style('[\n  "\\u2013"\n]\n').ensure_ascii is True
    assert detect_style('[\n  "\u2013"\n]\n').ensure_ascii is False
    assert detect_style("[]").trailing_newline is False


# ------------------------------------------------------------------ merge


def test_merge_rule_curated_wins_for_non_null_keys():
    curated = {
        "backend": "vllm",
        "served_model_id": None,
        "backend_config": {"port": 1, "extra_args": ["c"]},
    }
    discovered = {
        "backend": "ollama",
        "served_model_id": "d",
        "backend_config": {"port": 2, "extra_args": [], "host": "h"},
    }
    merged = merge_entry_dicts(discovered, curated)
    assert merged == {
        "backend": "vllm",
        "served_model_id": "d",
        "backend_config": {"port": 1, "extra_args": ["c"], "host": "h"},
    }
    assert discovered["backend"] == "ollama"  # inputs untouched


@pytest.mark.parametrize("value", [[], "", False, 0])
def test_merge_falsy_overlay_values_replace(value):
    assert merge_entry_dicts({"k": "base"}, {"k": value}) == {"k": value}


def test_merge_key_order_base_first():
    merged = merge_entry_dicts({"b": 1, "a": 2}, {"c": 3, "a": 4})
    assert list(merged) == ["b", "a", "c"]


def test_fingerprint_is_canonical():
    assert entry_fingerprint({"a": 1, "b": 2}, None) == entry_fingerprint(
        {"b": 2, "a": 1}, None
    )
    assert entry_fingerprint({"a": 1}, None) != entry_fingerprint(None, {"a": 1})
    assert entry_fingerprint(None, None) == ABSENT_FINGERPRINT


# ------------------------------------------------------------------ read / load


def test_read_missing_layer(tmp_path):
    layer = read_layer(tmp_path / CURATED_FILE, "curated")
    assert not layer.exists and layer.items == [] and layer.entries == {}
    assert layer.sha256 == ""


def test_malformed_json_names_the_file(tmp_path):
    (tmp_path / CURATED_FILE).write_text('[\n  {"name": "a"\n  "backend": "x"}\n]')
    with pytest.raises(LayerParseError) as info:
        read_layer(tmp_path / CURATED_FILE, "curated")
    assert str(info.value) == (
        f"The registry file is broken: {tmp_path / CURATED_FILE}, "
        "not valid JSON (Expecting ',' delimiter), line 3 column 3"
    )


def test_non_list_root_is_a_parse_error(tmp_path):
    (tmp_path / DISCOVERED_FILE).write_text('{"name": "a"}')
    with pytest.raises(LayerParseError, match="must be a JSON list"):
        load_registry(tmp_path)


def test_empty_and_missing_folders(tmp_path):
    with pytest.raises(RegistryNotFound, match="No registry files found in"):
        load_registry(tmp_path)
    with pytest.raises(RegistryNotFound):
        load_registry(tmp_path / "nope")


def test_load_merges_in_original_order(reg_dir):
    registry = load_registry(reg_dir)
    assert list(registry.entries) == ["alpha", "beta", "gamma"]
    alpha = registry.entries["alpha"]
    assert alpha.merged["backend_config"] == {
        "port": 24002,
        "model_path": "/models/alpha",
        "extra_args": ["--enforce-eager"],
    }
    assert alpha.merged["served_model_id"] == "None"  # curated null is skipped
    assert alpha.sources["backend_config"] == "both"
    assert alpha.sources["served_model_id"] == "discovered"
    assert alpha.sources["download_path"] == "discovered"
    assert registry.entries["gamma"].sources["roles"] == "curated"
    assert registry.entries["gamma"].discovered is None
    assert alpha.fingerprint == entry_fingerprint(alpha.curated, alpha.discovered)
    assert registry.problems == []
    assert not registry.migrated


def test_bad_entries_are_reported_and_skipped(tmp_path):
    items = [
        "just a string",
        {"backend": "vllm"},
        {"name": "   "},
        {"name": 42},
        sample_entry("dup", display_name="first"),
        sample_entry("nulls", metadata=None, roles=None, backend_config=None),
        sample_entry("strbool", deprecated="false"),
        sample_entry("badmeta", metadata=["not", "a", "dict"]),
        sample_entry("dup", display_name="second"),
        sample_entry("svc", served_model_id="None", download_path="ollama://None"),
        [1, 2],
    ]
    make_registry(tmp_path, discovered=items)
    registry = load_registry(tmp_path)
    assert list(registry.entries) == ["dup", "nulls", "strbool", "svc"]
    assert registry.entries["dup"].merged["display_name"] == "second"
    by_index = {p.index: p for p in registry.problems if p.skipped}
    assert by_index[0].reason == "not a JSON object (found string)"
    assert by_index[1].reason == "missing name"
    assert by_index[2].reason == "blank name"
    assert by_index[3].reason == "name must be a string (found number)"
    assert (
        by_index[4].name == "dup"
        and "superseded by the entry at index 8" in by_index[4].reason
    )
    assert (
        by_index[7].name == "badmeta"
        and "metadata must be an object" in by_index[7].reason
    )
    assert by_index[10].reason == "not a JSON object (found list)"
    warnings = {(p.name, p.reason) for p in registry.problems if not p.skipped}
    assert ("nulls", "metadata is null (read as empty)") in warnings
    assert ("nulls", "roles is null, not a list") in warnings
    assert ("strbool", "deprecated is the string 'false' (read as False)") in warnings
    assert all(p.file == DISCOVERED_FILE for p in registry.problems)
    assert "svc" not in {p.name for p in registry.problems}


def test_curated_duplicates_are_deep_merged(tmp_path):
    make_registry(
        tmp_path,
        curated=[
            curated_entry("a", roles=["caption"]),
            {"name": "a", "roles": ["keywords"], "backend_config": {"port": 9}},
        ],
    )
    registry = load_registry(tmp_path)
    merged = registry.entries["a"].merged
    assert merged["roles"] == ["keywords"]
    assert merged["backend_config"] == {"port": 9, "extra_args": ["--enforce-eager"]}
    (problem,) = registry.problems
    assert problem.index == 1 and problem.name == "a" and not problem.skipped


def test_snapshot_adoption(tmp_path):
    make_registry(
        tmp_path,
        curated=[curated_entry("cur")],
        discovered=[sample_entry("disc")],
        snapshot=[sample_entry("disc"), sample_entry("ghost"), curated_entry("cur")],
    )
    registry = load_registry(tmp_path)
    assert list(registry.entries) == ["disc", "ghost", "cur"]
    ghost = registry.entries["ghost"]
    assert ghost.from_snapshot and ghost.curated is None
    assert ghost.discovered["name"] == "ghost"
    assert not registry.entries["disc"].from_snapshot


def test_broken_snapshot_is_ignored(tmp_path):
    make_registry(tmp_path, discovered=[sample_entry("a")])
    (tmp_path / SNAPSHOT_FILE).write_text("{oops")
    registry = load_registry(tmp_path)
    assert list(registry.entries) == ["a"]
    assert registry.snapshot is None
    assert registry.problems[0].file == SNAPSHOT_FILE


def test_load_never_writes(reg_dir):
    before = file_bytes(reg_dir)
    load_registry(reg_dir)
    assert file_bytes(reg_dir) == before


def test_snapshot_only_without_migration_is_read_only(tmp_path):
    write_json(tmp_path / SNAPSHOT_FILE, [sample_entry("a"), curated_entry("b")])
    registry = load_registry(tmp_path, migrate_legacy=False)
    assert list(registry.entries) == ["a", "b"]
    assert all(e.from_snapshot for e in registry.entries.values())
    assert sorted(os.listdir(tmp_path)) == [SNAPSHOT_FILE]


def test_legacy_migration(tmp_path):
    legacy = [
        curated_entry("hand-made"),
        sample_entry("pulled", backend="ollama", metadata={}),
        {"name": "old", "backend": "unassigned"},
        sample_entry("downloaded"),
        sample_entry("pulled", backend="ollama", deprecated=True),
    ]
    write_json(tmp_path / SNAPSHOT_FILE, legacy)
    registry = load_registry(tmp_path)
    assert registry.migrated
    assert [e["name"] for e in registry.curated.items] == ["hand-made"]
    assert [e["name"] for e in registry.discovered.items] == [
        "pulled",
        "old",
        "downloaded",
        "pulled",
    ]
    assert registry.entries["pulled"].merged["deprecated"] is True  # last wins
    assert (tmp_path / LEGACY_BACKUP_FILE).exists()
    assert not (tmp_path / SNAPSHOT_FILE).exists()  # load never materializes
    assert not load_registry(tmp_path).migrated  # only once


def test_layer_signatures(reg_dir):
    sigs = layer_signatures(reg_dir)
    assert sigs["snapshot"] is None
    size = (reg_dir / CURATED_FILE).stat().st_size
    assert sigs["curated"][1] == size
    assert layer_signatures(reg_dir) == sigs


# ------------------------------------------------------------------ atomic write


def test_atomic_write_backups_and_noop(tmp_path):
    target = tmp_path / "model_registry.curated.json"
    assert atomic_write(target, b"[]\n") is None  # new file: nothing to back up
    assert atomic_write(target, b"[]\n") is None  # identical: nothing happens
    hand_made = tmp_path / "model_registry.curated.20251022-175925.bak.json"
    hand_made.write_text("[]")
    backups = []
    for i in range(5):
        backups.append(atomic_write(target, f"[{i}]\n".encode(), keep_backups=3))
    assert target.read_bytes() == b"[4]\n"
    assert backups[-1].read_bytes() == b"[3]\n"
    assert backups[-1].name.startswith("model_registry.curated.")
    kept = sorted(p.name for p in tmp_path.glob("model_registry.curated.*-*.bak.json"))
    assert len(kept) == 4  # 3 of ours + the hand-made one, never pruned
    assert hand_made.exists()
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_backup_is_a_link_to_the_old_file_or_a_copy_where_links_fail(
    tmp_path, monkeypatch
):
    """No copy of tens of megabytes per write: the old file itself becomes the
    backup. Where links are refused (another file system), the bytes are copied."""
    target = tmp_path / "model_registry.discovered.json"
    target.write_bytes(b"[1]\n")
    old_inode = target.stat().st_ino
    linked = atomic_write(target, b"[2]\n", keep_backups=5)
    assert linked.stat().st_ino == old_inode
    assert linked.read_bytes() == b"[1]\n"
    assert target.read_bytes() == b"[2]\n"
    assert target.stat().st_ino != old_inode

    def no_links(*_args):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    copied = atomic_write(target, b"[3]\n", keep_backups=5)
    assert copied.read_bytes() == b"[2]\n"
    assert target.read_bytes() == b"[3]\n"


def test_bytes_the_caller_read_are_not_read_again_but_still_guarded(
    tmp_path, monkeypatch
):
    """*current*: the caller's bytes (read under the lock) stand in for a second read
    of tens of megabytes; another program's replacement is still refused."""
    import hashlib

    from registry.layers import FileChangedError

    target = tmp_path / "model_registry.curated.json"
    target.write_bytes(b"[1]\n")
    reads = []
    real_read = Path.read_bytes
    monkeypatch.setattr(
        Path, "read_bytes", lambda self: reads.append(self) or real_read(self)
    )
    atomic_write(target, b"[2]\n", keep_backups=0, current=b"[1]\n")
    assert reads == []
    assert target.read_bytes() == b"[2]\n"

    target.write_bytes(b"[7]\n")  # another program, after the caller read [1]
    with pytest.raises(FileChangedError):
        atomic_write(
            target,
            b"[3]\n",
            keep_backups=3,
            expected_sha256=hashlib.sha256(b"[1]\n").hexdigest(),
            current=b"[1]\n",
        )
    assert target.read_bytes() == b"[7]\n"
    assert not list(tmp_path.glob(".*.tmp"))
    assert not list(tmp_path.glob("*.bak.json"))  # nothing replaced, nothing kept


def test_a_spliced_write_is_the_joined_bytes_and_a_same_span_is_no_write(tmp_path):
    """A one-entry change is handed over as (old bytes, span, new middle): the file
    gets exactly the joined bytes; a middle equal to the span writes nothing."""
    import hashlib

    from registry.layers import FileChangedError
    from registry.layers.files import Spliced

    target = tmp_path / "model_registry.discovered.json"
    old = b'[\n  {"name": "a"},\n  {"name": "b"}\n]\n'
    target.write_bytes(old)
    start, end = old.index(b'{"name": "b"}'), old.index(b"}\n]") + 1
    before = target.stat().st_mtime_ns

    same = Spliced(old, start, end, b'{"name": "b"}')
    assert same.same_as(old) and same.same_as(bytes(old))  # by identity and by value
    assert atomic_write(target, same, current=old) is None
    assert target.stat().st_mtime_ns == before
    assert not list(tmp_path.glob("*.bak.json"))

    new = Spliced(old, start, end, b'{"name": "b", "x": "\xc3\xa9"}')
    assert not new.same_as(old)
    sha = hashlib.sha256(old).hexdigest()
    backup = atomic_write(target, new, keep_backups=3, expected_sha256=sha, current=old)
    assert target.read_bytes() == old[:start] + new.middle + old[end:]
    assert bytes(new) == target.read_bytes()
    assert backup.read_bytes() == old

    # Another program rewrote the file after the caller read it: nothing renamed.
    target.write_bytes(b"[]\n")
    with pytest.raises(FileChangedError):
        atomic_write(target, new, expected_sha256=sha, current=old)
    assert target.read_bytes() == b"[]\n"
    assert not list(tmp_path.glob(".*.tmp"))


def test_atomic_write_keeps_permission_bits(tmp_path):
    target = tmp_path / "f.json"
    target.write_bytes(b"[]")
    os.chmod(target, 0o640)
    atomic_write(target, b"[1]", keep_backups=0)
    assert (target.stat().st_mode & 0o777) == 0o640


# ------------------------------------------------------------------ write-back


def test_noop_write_leaves_every_file_byte_identical(reg_dir):
    registry = load_registry(reg_dir)
    write_layer_entries(reg_dir, "discovered", {})  # materializes the snapshot once
    before = file_bytes(reg_dir)
    alpha = registry.entries["alpha"]
    result = write_layer_entries(
        reg_dir,
        "discovered",
        {"alpha": alpha.discovered},
        expected={"alpha": alpha.fingerprint},
    )
    assert result.backup_path is None and not result.changed
    assert file_bytes(reg_dir) == before
    assert result.fingerprints["alpha"] == alpha.fingerprint


@pytest.mark.parametrize(
    "value,words",
    [
        ("a\ud800b", "lone UTF-16 surrogate"),
        ("a\x00b", "NUL"),
        (2**64, "64 bits"),
        (float("inf"), "too large for a float"),
    ],
)
def test_write_refuses_unwritable_values(reg_dir, value, words):
    """What the reader refuses in a file is never written into one."""
    registry = load_registry(reg_dir)
    write_layer_entries(reg_dir, "discovered", {})
    before = file_bytes(reg_dir)
    alpha = dict(registry.entries["alpha"].discovered)
    alpha["notes"] = {"deep": [value]}
    with pytest.raises(ValueError, match=words):
        write_layer_entries(
            reg_dir,
            "discovered",
            {"alpha": alpha},
            expected={"alpha": registry.entries["alpha"].fingerprint},
        )
    assert file_bytes(reg_dir) == before


def test_editing_one_entry_changes_only_its_bytes(reg_dir):
    registry = load_registry(reg_dir)
    beta = registry.entries["beta"]
    old_bytes = (reg_dir / DISCOVERED_FILE).read_bytes()
    edited = json.loads(json.dumps(beta.discovered))
    edited["roles"] = ["keywords"]
    result = write_layer_entries(
        reg_dir, "discovered", {"beta": edited}, expected={"beta": beta.fingerprint}
    )
    new_bytes = (reg_dir / DISCOVERED_FILE).read_bytes()
    alpha_part = dumps([registry.discovered.items[0]])[:-4]  # drop "}\n]\n"
    assert old_bytes.startswith(alpha_part) and new_bytes.startswith(alpha_part)
    assert new_bytes.count(b'"keywords"') == 1
    assert json.loads(new_bytes)[1] == edited
    assert result.backup_path.read_bytes() == old_bytes
    assert result.before["beta"]["roles"] == []
    assert result.after["beta"]["roles"] == ["keywords"]
    # The snapshot now holds the merged result.
    snapshot = json.loads((reg_dir / SNAPSHOT_FILE).read_bytes())
    assert [e["name"] for e in snapshot] == ["alpha", "beta", "gamma"]
    assert snapshot[1]["roles"] == ["keywords"]
    assert (
        load_registry(reg_dir).entries["beta"].fingerprint
        == result.fingerprints["beta"]
    )


def test_update_keeps_key_order_and_position(reg_dir):
    registry = load_registry(reg_dir)
    alpha = registry.entries["alpha"].discovered
    shuffled = dict(reversed(list(alpha.items())))
    shuffled["notes"] = "new key goes last"
    write_layer_entries(reg_dir, "discovered", {"alpha": shuffled})
    items = json.loads((reg_dir / DISCOVERED_FILE).read_bytes())
    assert list(items[0]) == [*alpha, "notes"]


def test_add_and_remove_entries(reg_dir):
    write_layer_entries(
        reg_dir,
        "discovered",
        {"delta": sample_entry("delta"), "beta": None},
        expected={"delta": None},
    )
    names = [e["name"] for e in json.loads((reg_dir / DISCOVERED_FILE).read_bytes())]
    assert names == ["alpha", "delta"]
    assert list(load_registry(reg_dir).entries) == ["alpha", "delta", "gamma"]


def test_removed_entry_is_not_readopted_from_snapshot(reg_dir):
    write_layer_entries(reg_dir, "discovered", {})
    assert "beta" in json.dumps(json.loads((reg_dir / SNAPSHOT_FILE).read_bytes()))
    write_layer_entries(reg_dir, "discovered", {"beta": None})
    assert "beta" not in load_registry(reg_dir).entries


def test_writing_into_a_missing_layer_creates_it(tmp_path):
    write_json(tmp_path / CURATED_FILE, [curated_entry("a")])
    result = write_layer_entries(tmp_path, "discovered", {"b": sample_entry("b")})
    assert result.backup_path is None
    assert (tmp_path / DISCOVERED_FILE).read_bytes() == dumps([sample_entry("b")])
    write_layer_entries(tmp_path, "curated", {"zz": None})
    assert list(load_registry(tmp_path).entries) == ["b", "a"]


def test_invalid_items_are_preserved_and_duplicates_collapse(tmp_path):
    items = [
        "junk",
        sample_entry("a", roles=["old"]),
        {"no": "name"},
        sample_entry("a"),
    ]
    make_registry(tmp_path, discovered=items)
    write_layer_entries(tmp_path, "discovered", {"a": sample_entry("a", roles=["new"])})
    stored = json.loads((tmp_path / DISCOVERED_FILE).read_bytes())
    assert stored == ["junk", sample_entry("a", roles=["new"]), {"no": "name"}]


def test_bad_updates_are_rejected_before_writing(reg_dir):
    before = file_bytes(reg_dir)
    with pytest.raises(ValueError):
        write_layer_entries(reg_dir, "snapshot", {})
    with pytest.raises(ValueError):
        write_layer_entries(reg_dir, "discovered", {"a": {"name": "b"}})
    with pytest.raises(ValueError):
        write_layer_entries(reg_dir, "discovered", {"a": {"name": "a", "x": object()}})
    assert file_bytes(reg_dir) == before


def test_conflict_between_two_writers(reg_dir):
    first = load_registry(reg_dir).entries["beta"]
    second = load_registry(reg_dir).entries["beta"]
    write_layer_entries(
        reg_dir,
        "discovered",
        {"beta": dict(first.discovered, roles=["one"])},
        expected={"beta": first.fingerprint},
    )
    before = file_bytes(reg_dir)
    with pytest.raises(ConflictError) as info:
        write_layer_entries(
            reg_dir,
            "discovered",
            {"beta": dict(second.discovered, roles=["two"])},
            expected={"beta": second.fingerprint},
        )
    err = info.value
    assert err.name == "beta" and err.layer == "discovered"
    assert err.expected_fingerprint == second.fingerprint
    assert err.current_discovered["roles"] == ["one"]
    assert err.current_curated is None
    assert "'beta'" in str(err) and DISCOVERED_FILE in str(err)
    assert file_bytes(reg_dir) == before


def test_conflict_after_outside_edit(reg_dir):
    alpha = load_registry(reg_dir).entries["alpha"]
    curated = json.loads((reg_dir / CURATED_FILE).read_bytes())
    curated[0]["roles"] = ["edited-by-hand"]
    write_json(reg_dir / CURATED_FILE, curated)
    with pytest.raises(ConflictError) as info:
        write_layer_entries(
            reg_dir,
            "discovered",
            {"alpha": alpha.discovered},
            expected={"alpha": alpha.fingerprint},
        )
    assert info.value.current_curated["roles"] == ["edited-by-hand"]


def test_conflict_when_a_new_name_already_exists(reg_dir):
    with pytest.raises(ConflictError):
        write_layer_entries(
            reg_dir, "curated", {"beta": curated_entry("beta")}, expected={"beta": None}
        )


def test_snapshot_error_is_reported_not_raised(reg_dir):
    (reg_dir / SNAPSHOT_FILE).mkdir()  # cannot be replaced by a file
    result = write_layer_entries(reg_dir, "discovered", {"x": sample_entry("x")})
    assert result.snapshot_error
    assert "x" in load_registry(reg_dir).entries


# ------------------------------------------------------------------ locking


def test_lock_is_reentrant_and_times_out_for_other_threads(reg_dir):
    outcome = {}

    def other_thread():
        try:
            with registry_lock(reg_dir, timeout=0.2):
                outcome["got"] = True
        except LockTimeout as exc:
            outcome["error"] = str(exc)

    with registry_lock(reg_dir), registry_lock(reg_dir, timeout=0.1):
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join()
    assert "got" not in outcome
    assert LOCK_FILE in outcome["error"]
    with registry_lock(reg_dir, timeout=0.1):
        pass  # released again


def _hold_lock(folder: str, ready, release) -> None:
    with registry_lock(folder):
        ready.set()
        release.wait(10)


def test_write_waits_for_another_process_and_times_out(reg_dir):
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(str(reg_dir), ready, release))
    proc.start()
    try:
        assert ready.wait(20)
        start = time.monotonic()
        with pytest.raises(LockTimeout):
            write_layer_entries(reg_dir, "discovered", {}, lock_timeout=0.3)
        assert time.monotonic() - start < 5
    finally:
        release.set()
        proc.join(20)
    write_layer_entries(reg_dir, "discovered", {}, lock_timeout=5)


def _increment(folder: str, worker: str, rounds: int) -> None:
    """Read-modify-write with conflict detection and retry, like the service layer."""
    done = 0
    while done < rounds:
        entry = load_registry(folder).entries["counter"]
        raw = json.loads(json.dumps(entry.discovered))
        raw["metadata"]["count"] += 1
        raw["metadata"]["log"].append(f"{worker}-{done}")
        try:
            write_layer_entries(
                folder,
                "discovered",
                {"counter": raw},
                expected={"counter": entry.fingerprint},
                keep_backups=2,
            )
        except ConflictError:
            continue
        # A blind append (no expected fingerprint) must not be lost either.
        write_layer_entries(
            folder, "discovered", {f"{worker}-{done}": sample_entry(f"{worker}-{done}")}
        )
        done += 1


def test_two_processes_never_lose_an_update(tmp_path):
    counter = sample_entry("counter", metadata={"count": 0, "log": []})
    make_registry(tmp_path, discovered=[counter])
    ctx = multiprocessing.get_context("spawn")
    rounds = 15
    procs = [
        ctx.Process(target=_increment, args=(str(tmp_path), w, rounds)) for w in "ab"
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    registry = load_registry(tmp_path)
    meta = registry.entries["counter"].merged["metadata"]
    assert meta["count"] == 2 * rounds
    assert sorted(meta["log"]) == sorted(
        f"{w}-{i}" for w in "ab" for i in range(rounds)
    )
    assert len(registry.entries) == 1 + 2 * rounds
    assert registry.problems == []


def test_dead_writers_temp_files_are_cleaned_when_the_lock_is_taken(tmp_path):
    """Writers make temp files only under the lock: one older than the moment the lock
    was taken belongs to a writer that died; one made since is a live writer's."""
    target = tmp_path / DISCOVERED_FILE
    stale = tmp_path / f".{DISCOVERED_FILE}.dead1234.tmp"
    stale.write_bytes(b"[")
    past = time.time() - 1
    os.utime(stale, (past, past))
    other = tmp_path / "other-tool.tmp"
    other.write_text("not ours\n")
    folder = tmp_path / f".{DISCOVERED_FILE}.afolder1.tmp"
    folder.mkdir()
    with registry_lock(tmp_path, timeout=1):
        assert not stale.exists()
        fresh = tmp_path / f".{DISCOVERED_FILE}.busy5678.tmp"
        fresh.write_bytes(b"[")
        atomic_write(target, b"[]\n")
        assert fresh.exists()
    assert other.exists() and folder.is_dir()
    assert read_layer(target, "discovered").items == []


def test_write_inside_an_outer_lock_does_not_deadlock(reg_dir):
    # The service layer may hold the lock across the file write and its DB update.
    with registry_lock(reg_dir, timeout=1):
        result = write_layer_entries(
            reg_dir,
            "curated",
            {"gamma": curated_entry("gamma", roles=["x"])},
            lock_timeout=1,
        )
    assert result.after["gamma"]["roles"] == ["x"]
