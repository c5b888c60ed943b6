"""Faults: kill -9 at random points, a read-only or full registry folder, a file
replaced by another tool mid-operation.

Real processes run against a FILE-based SQLite database and a temp registry in a
temp dir (``IMAGEWORKS_SQLITE_PATH`` etc.; never the test database), with the ORM
broker. Trials are random but bounded; ``FAULT_SEED`` reproduces a run.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from registry import layers
from tests.backends.vllm_helpers import FAKE_ENV, FAKE_VLLM, free_port, kill_fakes

REPO = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("FAULT_SEED") or random.randrange(1 << 30))
LOCKABLE = "qwen2.5-vl-7b-instruct_(AWQ)"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A migrated file SQLite database + the sample registry, for subprocesses."""
    from registry.sample import write_sample_registry

    root = tmp_path_factory.mktemp("faults")
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "IMAGEWORKS_REDIS_URL", "DJANGO_SETTINGS_MODULE"}
        and not k.startswith("PYTEST")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="imageworks_site.settings",
        SECRET_KEY="fault-tests-" + "x" * 40,
        IMAGEWORKS_VAR_DIR=str(root / "var"),
        IMAGEWORKS_SQLITE_PATH=str(root / "db.sqlite3"),
        IMAGEWORKS_REGISTRY_DIR=str(root / "configs"),
        IMAGEWORKS_STAGING_DIR=str(root / "_staging"),
        IMAGEWORKS_LOG_DIR=str(root / "logs"),
        IMAGEWORKS_HASH_WORKERS="1",
        IMAGEWORKS_Q_WORKERS="1",
        IMAGEWORKS_OLLAMA_URL="",
        IMAGEWORKS_VLLM_LAUNCHER=f"{sys.executable} {FAKE_VLLM}",
        IMAGEWORKS_VLLM_PORT=str(port),
        IMAGEWORKS_VLLM_START_TIMEOUT="30",
        IMAGEWORKS_VLLM_STOP_GRACE="2",
        IMAGEWORKS_VLLM_ENV_ALLOWLIST=",".join(("PATH", *FAKE_ENV)),
        PYTHONPATH=str(REPO),
        LOG_LEVEL="WARNING",
    )
    write_sample_registry(root / "configs", root / "models", force=True)
    run = subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr
    sync = _cli(env, "sync", "--force")
    assert sync.returncode == 0, sync.stdout + sync.stderr
    yield {"root": root, "env": env, "registry": root / "configs", "port": port}
    kill_fakes()


def _cli(env, *args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "imageworks_site.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _worker(env, *args, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.hardening.fault_worker", *args],
        cwd=REPO,
        env={**env, **kw.pop("extra_env", {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _report(env, *args) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "tests.hardening.fault_worker", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=10)


def _layers(registry: Path) -> dict[str, list]:
    out = {}
    for name in (layers.CURATED_FILE, layers.DISCOVERED_FILE):
        text = (registry / name).read_text()
        data = json.loads(text)  # never torn: always valid JSON
        assert isinstance(data, list), name
        out[name] = data
    return out


def _assert_old_or_new(before: dict, after: dict, target: str, keys: set[str]):
    """Every entry but ``target`` unchanged; ``target`` differs only in ``keys``."""
    for layer, items in before.items():
        old = {i["name"]: i for i in items}
        new = {i["name"]: i for i in after[layer]}
        assert set(old) == set(new), f"{layer}: entries lost or added"
        for name, item in old.items():
            if name != target:
                assert new[name] == item, f"{layer}: {name} changed"
            else:
                changed = {
                    k
                    for k in set(item) | set(new[name])
                    if item.get(k) != new[name].get(k)
                }
                assert changed <= keys, f"{layer}: {name} changed {changed - keys}"


def _ready(proc: subprocess.Popen) -> None:
    line = proc.stdout.readline()
    assert line.strip() == "READY", line + proc.stderr.read()


# --- (a) kill -9 the CLI / a writer --------------------------------------------------


# Keys a lock/verify write may change in an entry (old-or-new checks compare the rest).
LOCK_KEYS = {
    "version_lock",
    "artifacts",
    "download_size_bytes",
    "download_files",
    "last_verified",
    "metadata",
}


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode,target,keys",
    [
        ("edit-loop", LOCKABLE, {"display_name"}),
        (
            "lock-loop",
            LOCKABLE,
            LOCK_KEYS,
        ),
    ],
)
def test_kill_9_during_writes_leaves_old_or_new_files(site, mode, target, keys):
    rng = random.Random(f"{SEED}-{mode}")
    registry = site["registry"]
    before = _layers(registry)
    for trial in range(4):
        proc = _worker(site["env"], mode, target)
        _ready(proc)
        time.sleep(rng.uniform(0.05, 0.6))
        _kill_group(proc)
        after = _layers(registry)
        _assert_old_or_new(before, after, target, keys)
        # a temp file left by the kill is never read as a layer
        assert layers.load_registry(registry).entries, f"trial {trial} (seed {SEED})"
    # the next CLI sync recovers: the lock was released by the kernel
    result = _cli(site["env"], "sync", "--force")
    assert result.returncode == 0, f"seed {SEED}: {result.stdout}{result.stderr}"


@pytest.mark.slow
def test_kill_9_the_cli_during_sync_lock_and_unlock(site):
    rng = random.Random(f"{SEED}-cli")
    registry = site["registry"]
    before = _layers(registry)
    plan = [("sync", "--force"), ("lock", LOCKABLE), ("unlock", LOCKABLE)]
    for args in plan:
        proc = subprocess.Popen(
            [sys.executable, "-m", "imageworks_site.cli", *args],
            cwd=REPO,
            env=site["env"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(rng.uniform(0.3, 2.0))
        _kill_group(proc)
        _assert_old_or_new(
            before,
            _layers(registry),
            LOCKABLE,
            LOCK_KEYS,
        )
    result = _cli(site["env"], "sync", "--force")
    assert result.returncode == 0, f"seed {SEED}: {result.stdout}{result.stderr}"
    listed = _cli(site["env"], "list", "--json")
    assert listed.returncode == 0
    assert len(json.loads(listed.stdout)) >= len(before[layers.CURATED_FILE])


# --- (b) kill -9 a qcluster worker mid-verify ----------------------------------------


@pytest.mark.slow
def test_a_job_of_a_killed_worker_does_not_stay_running(site):
    env = site["env"]
    # a big-ish model: sparse files cost no disk but take seconds to hash
    big = "google/siglip-large-patch16-384"
    folder = site["root"] / "models" / big
    for i in range(3):
        with open(folder / f"shard-{i}.bin", "wb") as fh:
            fh.truncate(1500 * 1024 * 1024)
    cluster = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        job = _report(env, "enqueue-verify", "siglip-large-patch16-384_(FP32)")["job"]
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline:
            jobs = {j["pk"]: j for j in _report(env, "state")["jobs"]}
            status = jobs[job]["status"]
            if status != "queued":
                break
            time.sleep(0.3)
        assert status == "running", f"the worker did not start the job: {status}"
        time.sleep(0.5)
    finally:
        _kill_group(cluster)
        for i in range(3):
            (folder / f"shard-{i}.bin").unlink(missing_ok=True)
    jobs = {j["pk"]: j for j in _report(env, "state")["jobs"]}
    assert jobs[job]["status"] == "running"  # the kill left it behind...
    # ...until the reaper (scheduled with the registry sync; also `manage.py jobs_reap`)
    time.sleep(1.1)
    out = subprocess.run(
        [sys.executable, "manage.py", "jobs_reap", "--max-silence", "1"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    jobs = {j["pk"]: j for j in _report(env, "state")["jobs"]}
    assert jobs[job]["status"] == "failed"
    assert "Worker stopped reporting" in jobs[job]["error"]


# --- (c) kill -9 the activating process --------------------------------------------


@pytest.mark.slow
def test_killed_activation_leaves_no_starting_row_and_a_true_state_file(site):
    from backends.vllm import process

    env = site["env"]
    name = "qwen2.5-vl-7b-instruct_(AWQ)"
    # 1) killed while the fake vLLM is still starting
    act = _worker(env, "activate", name, extra_env={"FAKE_VLLM_READY_DELAY": "25"})
    _ready(act)
    pid = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and pid is None:
        rows = _report(env, "state")["activations"]
        if rows and rows[-1]["state"] == "starting" and rows[-1]["pid"]:
            pid = rows[-1]["pid"]
        time.sleep(0.1)
    assert pid, "the activation never recorded its process"
    _kill_group(act)
    state = _report(env, "state", "reconcile")
    assert state["state_file"] is None  # not up yet -> no state file
    # the server's process dies too (its own session: kill it like an OOM would)
    os.killpg(os.getpgid(pid), signal.SIGKILL)
    time.sleep(0.2)
    time.sleep(10.5)  # service.DEAD_START_GRACE_S
    state = _report(env, "state", "reconcile")
    last = state["activations"][-1]
    assert last["state"] == "failed", state
    assert state["state_file"] is None

    # 2) killed after the server came up: the state file stays true
    act = _worker(env, "activate", name, extra_env={"FAKE_VLLM_READY_DELAY": "0.2"})
    _ready(act)
    assert act.stdout.readline().strip() == "ACTIVE", act.stderr.read()
    _kill_group(act)
    state = _report(env, "state", "reconcile")
    last = state["activations"][-1]
    assert last["state"] == "running"
    assert state["state_file"]["pid"] == last["pid"]
    assert process.ProcessIdentity.of(last["pid"]) is not None
    os.killpg(os.getpgid(last["pid"]), signal.SIGKILL)
    time.sleep(0.3)
    state = _report(env, "state", "reconcile")
    assert state["activations"][-1]["state"] == "failed"
    assert state["state_file"] is None
    assert not any(a["state"] == "starting" for a in state["activations"])


# --- (d) read-only, replaced mid-operation, disk full ---------------------------------


@pytest.fixture
def synced(settings, tmp_path, db):
    from tests.hardening.common import sync_sample

    settings.IMAGEWORKS_REGISTRY_DIR = tmp_path / "configs"
    settings.IMAGEWORKS_STAGING_DIR = tmp_path / "_staging"
    sync_sample(tmp_path / "configs", tmp_path / "models")
    return tmp_path / "configs"


def _edit(name: str, display: str, fingerprint=None):
    from registry.audit import Actor
    from registry.choices import Action
    from registry.services.writeback import change_entry

    return change_entry(
        Actor.system("tests"),
        Action.EDIT,
        name,
        layers.CURATED,
        mutate=lambda raw: {**(raw or {}), "display_name": display},
        expected_fingerprint=fingerprint,
    )


def test_a_read_only_registry_gives_a_clear_error_and_loses_nothing(synced):
    from registry.audit import Actor
    from registry.models import ActionLog
    from registry.services.sync import sync_registry

    before = {p.name: p.read_bytes() for p in synced.glob("*.json")}
    mode = synced.stat().st_mode
    files = list(synced.glob("*.json"))
    try:
        synced.chmod(0o555)
        for f in files:
            f.chmod(0o444)
        with pytest.raises(layers.RegistryWriteError) as exc:
            _edit(LOCKABLE, "read-only attempt")
        assert layers.READ_ONLY_MESSAGE in str(exc.value)
        row = ActionLog.objects.filter(action="edit").first()
        assert row.outcome == "failed" and layers.READ_ONLY_MESSAGE in row.message
        assert sync_registry(
            Actor.system("tests"), force=True
        ).ok  # reading still works
    finally:
        synced.chmod(mode)
        for f in files:
            f.chmod(0o644)
    assert {p.name: p.read_bytes() for p in synced.glob("*.json")} == before
    _edit(LOCKABLE, "writable again")


@pytest.mark.parametrize("with_fingerprint", [True, False])
def test_a_file_replaced_by_another_tool_mid_operation_is_not_lost(
    synced, monkeypatch, with_fingerprint
):
    """Between our read and our rename another tool os.replace()s the layer: we
    either refuse (conflict, nothing written) or re-read and merge; the other
    tool's change is never overwritten."""
    from registry.models import ModelEntry
    from registry.services.writeback import EntryConflict

    curated = synced / layers.CURATED_FILE
    entry = ModelEntry.objects.get(name=LOCKABLE)
    other = "florence-2-large_(FP16)"
    original = layers.atomic_write
    replaced: list = []

    def other_tool_then_write(path, data, **kw):
        # another tool swaps in its version after we read the layer, before we write
        if Path(path).name == layers.CURATED_FILE and not replaced:
            items = json.loads(curated.read_text())
            for item in items:
                if item["name"] == other:
                    item["display_name"] = "changed by another tool"
            tmp = curated.with_name("other-tool.tmp")
            tmp.write_text(json.dumps(items, indent=2))
            os.replace(tmp, curated)
            replaced.append(True)
        return original(path, data, **kw)

    from registry.layers import splice, write

    for module in (write, splice):  # both layer-write paths look it up there
        monkeypatch.setattr(module, "atomic_write", other_tool_then_write)
    fingerprint = entry.fingerprint if with_fingerprint else None
    try:
        _edit(LOCKABLE, "my edit", fingerprint=fingerprint)
        conflict = False
    except EntryConflict:
        conflict = True
    assert replaced, "the other tool never ran"
    items = {i["name"]: i for i in json.loads(curated.read_text())}
    assert items[other]["display_name"] == "changed by another tool"
    if with_fingerprint:
        assert conflict or items[LOCKABLE]["display_name"] == "my edit"
    else:
        assert not conflict  # no fingerprint: re-read and merged
        assert items[LOCKABLE]["display_name"] == "my edit"


def test_disk_full_is_a_clear_error_nothing_torn_and_the_next_sync_recovers(
    synced, monkeypatch
):
    from registry.audit import Actor
    from registry.models import ActionLog, ModelEntry
    from registry.services.sync import sync_registry

    before = {p.name: p.read_bytes() for p in synced.glob("*.json")}
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(Exception) as exc:
        _edit(LOCKABLE, "no space")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert "No space left" in str(exc.value) or "ENOSPC" in repr(exc.value)
    row = ActionLog.objects.filter(action="edit").first()
    assert row is not None and row.outcome == "failed"
    assert "space" in row.message.lower()
    after = {p.name: p.read_bytes() for p in synced.glob("*.json")}
    assert after == before, "a failed write changed a layer"
    leftovers = [p.name for p in synced.iterdir() if ".tmp" in p.name]
    assert leftovers == [], leftovers
    result = sync_registry(Actor.system("tests"), force=True)
    assert result.ok
    assert ModelEntry.objects.get(name=LOCKABLE).display_name != "no space"
    _edit(LOCKABLE, "space again")
    assert ModelEntry.objects.get(name=LOCKABLE).display_name == "space again"
