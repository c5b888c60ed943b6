"""Fault injection for registry.layers writes: kill -9 mid-write, read-only, ENOSPC."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import random
import re
import time
from pathlib import Path

import pytest

from registry.layers import (
    CURATED_FILE,
    DISCOVERED_FILE,
    READ_ONLY_MESSAGE,
    SNAPSHOT_FILE,
    RegistryWriteError,
    atomic_write,
    load_registry,
    read_layer,
    registry_lock,
    write_layer_entries,
)
from registry.layers import files as layers_files
from tests.registry.test_layers import curated_entry, make_registry, sample_entry

TRIALS = 40
ENTRIES = 80
# Our temp files: ".<target name>.<random>.tmp" (targets: layers, snapshot, backups).
TEMP_RE = re.compile(r"^\.model_registry[\w.-]*\.json\.\w+\.tmp$")


def _big_entry(i: int) -> dict:
    entry = sample_entry(f"model-{i:04d}")
    entry["download_files"] = [f"shard-{j:05d}-of-00050.safetensors" for j in range(40)]
    entry["metadata"]["embedded_chat_template_preview"] = "{{ messages }}" * 40
    return entry


def _toggle_entry_forever(folder: str) -> None:
    """Child process: flip one entry between two states until killed."""
    state = 0
    while True:
        state ^= 1
        raw = _big_entry(0)
        raw["metadata"]["state"] = state
        write_layer_entries(folder, "discovered", {raw["name"]: raw}, keep_backups=3)


def _toggle_bytes_forever(folder: str, first: bytes, second: bytes) -> None:
    """Child process: raw atomic writes only, so most kills land inside a write."""
    path = Path(folder) / DISCOVERED_FILE
    while True:
        atomic_write(path, first, keep_backups=3)
        atomic_write(path, second, keep_backups=3)


def _state_bytes(folder: Path, state: int) -> tuple[bytes, bytes]:
    raw = _big_entry(0)
    raw["metadata"]["state"] = state
    write_layer_entries(folder, "discovered", {raw["name"]: raw}, keep_backups=3)
    return (folder / DISCOVERED_FILE).read_bytes(), (
        folder / SNAPSHOT_FILE
    ).read_bytes()


@pytest.mark.slow
def test_kill_minus_nine_never_leaves_a_torn_file(tmp_path):
    folder = make_registry(
        tmp_path / "reg",
        curated=[curated_entry("model-0001")],
        discovered=[_big_entry(i) for i in range(ENTRIES)],
    )
    layer_states, snapshot_states = {}, {}
    for state in (1, 0):  # the entry-toggling child starts by writing state 1
        layer_states[state], snapshot_states[state] = _state_bytes(folder, state)
    assert len(layer_states[0]) > 250_000
    curated_bytes = (folder / CURATED_FILE).read_bytes()

    ctx = multiprocessing.get_context("fork")  # fast start: many trials, few seconds
    rng = random.Random(1234)
    deadline = time.monotonic() + 20
    killed_mid_write = 0
    for trial in range(TRIALS):
        if trial % 2:
            args = (str(folder), layer_states[1], layer_states[0])
            proc = ctx.Process(target=_toggle_bytes_forever, args=args)
            delay = rng.uniform(0.0, 0.05)
        else:
            proc = ctx.Process(target=_toggle_entry_forever, args=(str(folder),))
            delay = rng.uniform(0.0, 0.25)
        proc.start()
        time.sleep(delay)
        proc.kill()  # SIGKILL: no cleanup of any kind runs
        proc.join(5)
        assert proc.exitcode == -9
        leftovers = [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]
        killed_mid_write += bool(leftovers)
        assert all(TEMP_RE.match(name) for name in leftovers), leftovers

        assert (folder / DISCOVERED_FILE).read_bytes() in layer_states.values()
        assert (folder / SNAPSHOT_FILE).read_bytes() in snapshot_states.values()
        assert (folder / CURATED_FILE).read_bytes() == curated_bytes
        registry = load_registry(folder)  # temp files are never read as layers
        assert len(registry.entries) == ENTRIES
        assert registry.problems == []
        with registry_lock(folder, timeout=2):  # the kernel freed the dead lock
            pass
        if time.monotonic() > deadline:
            break
    # Sanity: the kill points did land inside writes (temp file left behind).
    assert killed_mid_write >= 1
    backups = list(folder.glob("model_registry.discovered.*.bak.json"))
    assert 1 <= len(backups) <= 3 + TRIALS  # pruning may lag a kill, never runs wild
    for backup in backups:
        assert backup.read_bytes() in layer_states.values()


# ------------------------------------------------------------------ read-only


@pytest.fixture
def small_reg(tmp_path: Path) -> Path:
    return make_registry(
        tmp_path / "reg",
        curated=[curated_entry("a")],
        discovered=[sample_entry("a"), sample_entry("b")],
    )


def _change(folder: Path, layer: str = "discovered"):
    return write_layer_entries(folder, layer, {"b": sample_entry("b", roles=["x"])})


def test_read_only_layer_file(small_reg):
    path = small_reg / DISCOVERED_FILE
    original = path.read_bytes()
    os.chmod(path, 0o444)
    with pytest.raises(RegistryWriteError) as info:
        _change(small_reg)
    assert str(info.value).startswith(READ_ONLY_MESSAGE)
    assert str(info.value) == f"{READ_ONLY_MESSAGE}: {path}"
    assert path.read_bytes() == original
    assert not [p for p in small_reg.iterdir() if p.name.endswith(".tmp")]
    assert not list(small_reg.glob("*.bak.json"))


def test_read_only_folder(small_reg):
    before = {p.name: p.read_bytes() for p in small_reg.iterdir()}
    os.chmod(small_reg, 0o555)
    try:
        with pytest.raises(RegistryWriteError) as info:
            _change(small_reg)
        assert str(info.value).startswith(READ_ONLY_MESSAGE)
        with pytest.raises(RegistryWriteError, match=re.escape(READ_ONLY_MESSAGE)):
            atomic_write(small_reg / CURATED_FILE, b"[]\n")
        assert {p.name: p.read_bytes() for p in small_reg.iterdir()} == before
        # Reading a read-only registry is fine.
        assert list(load_registry(small_reg).entries) == ["a", "b"]
    finally:
        os.chmod(small_reg, 0o755)


def test_read_only_snapshot_is_reported_not_raised(small_reg):
    write_layer_entries(small_reg, "discovered", {})
    os.chmod(small_reg / SNAPSHOT_FILE, 0o444)
    result = _change(small_reg)
    assert result.snapshot_error.startswith(READ_ONLY_MESSAGE)
    assert read_layer(small_reg / DISCOVERED_FILE, "discovered").entries["b"][
        "roles"
    ] == ["x"]


def test_permission_error_from_the_os_is_mapped(small_reg, monkeypatch):
    def deny(*args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(layers_files.os, "replace", deny)
    path = small_reg / DISCOVERED_FILE
    with pytest.raises(RegistryWriteError) as info:
        atomic_write(path, b"[]\n", keep_backups=0)
    assert str(info.value) == f"{READ_ONLY_MESSAGE}: {path}"
    assert not [p for p in small_reg.iterdir() if p.name.endswith(".tmp")]


def test_disk_full_leaves_nothing_partial(small_reg, monkeypatch):
    path = small_reg / DISCOVERED_FILE
    original = path.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(layers_files.os, "fsync", full)
    with pytest.raises(RegistryWriteError) as info:
        atomic_write(path, b"[]\n", keep_backups=0)
    assert str(info.value) == f"No space left on device while writing {path}"
    assert path.read_bytes() == original
    assert not [p for p in small_reg.iterdir() if p.name.endswith(".tmp")]


def test_other_os_errors_get_a_clear_message(small_reg, monkeypatch):
    def broken(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(layers_files.os, "fsync", broken)
    with pytest.raises(
        RegistryWriteError, match=r"Could not write .*: Input/output error"
    ):
        atomic_write(small_reg / CURATED_FILE, b"[]\n", keep_backups=0)
    json.loads((small_reg / CURATED_FILE).read_bytes())
