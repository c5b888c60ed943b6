"""Local process driver against a real fake vLLM process (no Django)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import replace

import psutil
import pytest

from backends import clients
from backends.vllm import process
from backends.vllm.command import build_launch
from tests.backends.vllm_helpers import (
    FAKE_VLLM,
    entry_dict,
    fake_config,
    free_port,
    kill_fakes,
    model_dir,
)


@pytest.fixture(autouse=True)
def cleanup():
    yield
    kill_fakes()


def start(tmp_path, env_extra=None, name="m1", **cfg_kw):
    port = free_port()
    cfg = fake_config(tmp_path, port, **cfg_kw)
    spec = build_launch(entry_dict(name, model_dir(tmp_path, name)), cfg)
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "SECRET_TOKEN": "x",
        "FAKE_VLLM_OWNER": os.environ["FAKE_VLLM_OWNER"],
        **(env_extra or {}),
    }
    env = process.build_env(cfg.env_allowlist, environ)
    log = process.new_log_path(cfg.log_dir, name)
    spawned = process.spawn(spec.argv, log_path=log, env=env)
    return cfg, spec, spawned


def wait(cfg, spec, spawned, timeout=10.0):
    return process.wait_ready(
        lambda t: clients.vllm_ready(
            cfg.base_url(spec.port), spec.served_model_id, timeout=t
        ),
        timeout=timeout,
        exited=lambda: process.exit_status(spawned.popen, spawned.identity),
        log_path=spawned.log_path,
    )


def test_spawn_ready_and_stop_leaves_no_group_member(tmp_path):
    cfg, spec, sp = start(
        tmp_path, {"FAKE_VLLM_WORKERS": "2", "FAKE_VLLM_READY_DELAY": "0.3"}
    )
    result = wait(cfg, spec, sp)
    assert (
        result.ready and result.served_models == ["m1"] and result.max_model_len == 4096
    )
    assert sp.identity.pgid == sp.popen.pid  # own session / group
    assert sp.identity.is_alive()
    members = process.group_members(sp.identity.pgid)
    assert len(members) >= 1
    res = process.stop_group(sp.identity, grace=2.0, popen=sp.popen)
    assert res.clean and not res.killed
    assert process.group_members(sp.identity.pgid) == []
    assert not sp.identity.is_alive()
    assert sp.log_path.exists() and sp.log_path.parent.name == "vllm"


def test_env_is_allow_listed(tmp_path):
    env = process.build_env(
        ["PATH", "FAKE_*"], {"PATH": "/bin", "FAKE_A": "1", "SECRET": "s"}
    )
    assert env == {
        "PATH": "/bin",
        "FAKE_A": "1",
        "VLLM_WORKER_MULTIPROC_START_METHOD": "forkserver",
    }
    cfg, spec, sp = start(tmp_path)
    wait(cfg, spec, sp)
    environ = psutil.Process(sp.popen.pid).environ()
    assert "SECRET_TOKEN" not in environ and "PATH" in environ


def test_crash_during_start_reported_fast_with_exit_code(tmp_path):
    cfg, spec, sp = start(
        tmp_path, {"FAKE_VLLM_CRASH_DURING_START": "7", "FAKE_VLLM_CRASH_DELAY": "0.2"}
    )
    t0 = time.monotonic()
    with pytest.raises(process.StartFailed) as info:
        wait(cfg, spec, sp, timeout=30)
    assert time.monotonic() - t0 < 2.0
    assert info.value.exit_code == 7
    assert "exited early (code 7)" in str(info.value)
    assert "CUDA error" in str(info.value)  # hint from the log tail
    assert "Traceback" in info.value.log_tail


def test_wrong_served_name_never_counts_as_ready(tmp_path):
    cfg, spec, sp = start(tmp_path, {"FAKE_VLLM_SERVE_NAME": "someone-else"})
    with pytest.raises(process.StartFailed, match="serves someone-else, expected m1"):
        wait(cfg, spec, sp, timeout=1.5)
    process.stop_group(sp.identity, grace=1.0, popen=sp.popen)


def test_port_holder_is_named(tmp_path):
    port = free_port()
    orphan = subprocess.Popen(
        [sys.executable, str(FAKE_VLLM), "--model", "x", "--port", str(port)],
        start_new_session=True,
    )
    try:
        assert _wait_listening(port)
        with pytest.raises(process.PortInUse) as info:
            process.check_port("127.0.0.1", port)
        assert f"port {port} is in use by PID {orphan.pid} (" in str(info.value)
        assert "fake_vllm.py" in str(info.value)
        # The current activation's own process may hold it: that port can be freed.
        process.check_port("127.0.0.1", port, allowed_pids=[orphan.pid])
    finally:
        orphan.kill()
        orphan.wait()
    process.check_port("127.0.0.1", port)


def test_sigterm_ignoring_server_is_killed_after_grace(tmp_path):
    cfg, spec, sp = start(tmp_path, {"FAKE_VLLM_IGNORE_SIGTERM": "1"})
    wait(cfg, spec, sp)
    t0 = time.monotonic()
    res = process.stop_group(sp.identity, grace=0.7, popen=sp.popen)
    elapsed = time.monotonic() - t0
    assert res.killed and res.clean
    assert 0.6 < elapsed < 4.0
    assert res.exit_code == -9
    assert "SIGTERM ignored" in sp.log_path.read_text()


def test_identity_rejects_reused_pid(tmp_path):
    cfg, spec, sp = start(tmp_path)
    ident = sp.identity
    assert ident.is_alive()
    assert not replace(ident, create_time=ident.create_time - 100).is_alive()
    # A retitled process (setproctitle) is still ours while it leads its group...
    assert replace(ident, cmdline_hash="0" * 64).is_alive()
    # ...but not if it is not the group leader we recorded.
    assert not replace(ident, cmdline_hash="0" * 64, pgid=1).is_alive()
    process.stop_group(ident, grace=1.0, popen=sp.popen)
    assert not ident.is_alive()
    assert process.ProcessIdentity.of(sp.popen.pid) is None


def test_timeout_uses_monotonic_deadline(tmp_path):
    cfg, spec, sp = start(tmp_path, {"FAKE_VLLM_READY_DELAY": "30"})
    t0 = time.monotonic()
    with pytest.raises(process.StartFailed, match="did not become ready within 0.8s"):
        wait(cfg, spec, sp, timeout=0.8)
    assert time.monotonic() - t0 < 2.5
    process.stop_group(sp.identity, grace=1.0, popen=sp.popen)


def test_failure_hint_prefers_specific_lines():
    tail = (
        "INFO loading\nOSError: [Errno 98] Address already in use\nINFO shutting down\n"
    )
    assert process.failure_hint(tail) == "OSError: [Errno 98] Address already in use"
    assert process.failure_hint("a\nlast line\n") == "last line"
    assert process.failure_hint("") is None


def test_log_tail_reads_only_the_end(tmp_path):
    p = tmp_path / "x.log"
    p.write_text("".join(f"line {i}\n" for i in range(5000)))
    tail = process.log_tail(p, max_bytes=100)
    assert tail.endswith("line 4999\n") and not tail.startswith("ine")
    assert process.log_tail(tmp_path / "missing.log") == ""


def _wait_listening(port, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.port_is_free("127.0.0.1", port):
            return True
        time.sleep(0.05)
    return False


# --- whose process group is it? (issue 13 §1) ------------------------------------


def test_spawned_server_owns_its_group_and_adopted_ones_do_not(tmp_path):
    cfg, spec, sp = start(tmp_path)
    wait(cfg, spec, sp)
    assert sp.identity.owns_group is True
    assert process.owned_group(sp.identity) == sp.identity.pgid
    # A row recorded before ownership was stored: decided by looking (own session).
    assert process.owned_group(replace(sp.identity, owns_group=None)) == sp.popen.pid
    # Found rather than launched (adoption): never its group, whatever it looks like.
    found = process.ProcessIdentity.of(sp.popen.pid)
    assert found.owns_group is False and process.owned_group(found) is None
    # A group whose leader pid now belongs to another process is not ours.
    reused = replace(sp.identity, create_time=sp.identity.create_time - 100)
    assert process.owned_group(reused) is None
    process.stop_group(sp.identity, grace=1.0, popen=sp.popen)


def test_server_inside_someone_elses_group_is_stopped_alone(tmp_path):
    """Legacy identity (owns_group unknown) of a server sharing its parent's group."""
    port = free_port()
    parent = subprocess.Popen(
        [
            sys.executable,
            str(FAKE_VLLM.parent / "fake_chat_proxy.py"),
            "--state",
            str(tmp_path / "active_vllm.json"),
            "--name",
            "m",
            "--port",
            str(port),
            "--workers",
            "1",
            "--sibling",
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        pids = {}
        for line in parent.stdout:
            word, _, rest = line.strip().partition(" ")
            if word == "READY":
                break
            pids[word] = int(rest)
        ident = process.ProcessIdentity.of(pids["SERVER"], owns_group=None)
        assert ident.pgid == parent.pid != ident.pid
        assert process.owned_group(ident) is None
        workers = [p.pid for p in psutil.Process(ident.pid).children()]
        res = process.stop_group(ident, grace=2.0)
        assert res.clean and not res.group_signalled
        assert parent.poll() is None
        assert psutil.pid_exists(pids["SIBLING"])
        assert not any(_running(p) for p in [ident.pid, *workers])
    finally:
        os.killpg(parent.pid, 9)
        parent.wait()


def test_descendants_that_left_our_group_are_stopped_too(tmp_path):
    cfg, spec, sp = start(
        tmp_path, {"FAKE_VLLM_WORKERS": "2", "FAKE_VLLM_WORKER_SESSION": "1"}
    )
    wait(cfg, spec, sp)
    server = psutil.Process(sp.popen.pid)
    deadline = time.monotonic() + 5
    while len(server.children()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = server.children()
    try:
        assert all(os.getpgid(w.pid) != sp.identity.pgid for w in workers)
        res = process.stop_group(sp.identity, grace=2.0, popen=sp.popen)
        assert res.clean and res.group_signalled
        assert not any(_running(w) for w in workers)
    finally:
        for w in workers:
            try:
                w.kill()
            except psutil.Error:
                pass


def _running(proc: psutil.Process | int) -> bool:
    """Alive and not a zombie (an orphan may wait a moment to be reaped)."""
    try:
        if isinstance(proc, int):
            proc = psutil.Process(proc)
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
