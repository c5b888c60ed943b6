"""Helpers for the vLLM activation tests: free ports, fake launcher, cleanup."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
import uuid
from pathlib import Path

import psutil

from backends.vllm.command import VllmConfig

FAKES = Path(__file__).resolve().parent.parent / "fakes"
FAKE_VLLM = FAKES / "fake_vllm.py"
FAKE_ADMIN = FAKES / "fake_admin.py"
FAKE_LAUNCHER = f"{sys.executable} {FAKE_VLLM}"
# Every fake started by this test process carries this token (through the env
# allow-list), so cleanup and counting never touch another run's fakes.
OWNER = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
os.environ["FAKE_VLLM_OWNER"] = OWNER

FAKE_ENV = [
    "FAKE_VLLM_OWNER",
    "FAKE_VLLM_READY_DELAY",
    "FAKE_VLLM_CRASH_DURING_START",
    "FAKE_VLLM_CRASH_DELAY",
    "FAKE_VLLM_CRASH_AFTER_READY",
    "FAKE_VLLM_IGNORE_SIGTERM",
    "FAKE_VLLM_SERVE_NAME",
    "FAKE_VLLM_WORKERS",
    "FAKE_VLLM_WORKER_SESSION",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fake_config(tmp: Path, port: int, **kw) -> VllmConfig:
    base = dict(
        launcher=(sys.executable, str(FAKE_VLLM)),
        host="127.0.0.1",
        port=port,
        gpu_memory_utilization="0.75",
        start_timeout=10.0,
        stop_grace=2.0,
        staging_dir=tmp / "_staging",
        log_dir=tmp / "logs",
        env_allowlist=("PATH", *FAKE_ENV),
    )
    base.update(kw)
    return VllmConfig(**base)


def model_dir(tmp: Path, name: str = "model") -> Path:
    path = tmp / "weights" / name
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text("{}")
    return path


def entry_dict(name: str, path: Path | str, **kw) -> dict:
    data = {
        "name": name,
        "backend": "vllm",
        "backend_config": {"port": 24002, "model_path": str(path), "extra_args": []},
        "served_model_id": "None",
    }
    data.update(kw)
    return data


def _ours(proc: psutil.Process) -> bool:
    try:
        return proc.environ().get("FAKE_VLLM_OWNER") == OWNER
    except psutil.Error:
        return False


def _fakes(scripts) -> list[psutil.Process]:
    out = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            cmd = proc.info["cmdline"] or []
            if (
                any(str(s) in cmd for s in scripts)
                and proc.status() != psutil.STATUS_ZOMBIE
                and _ours(proc)
            ):
                out.append(proc)
        except psutil.Error:
            continue
    return out


def kill_fakes(extra_pids=()) -> None:
    """Kill the process groups of the fakes *this* test process started (owner token)."""
    for proc in _fakes([FAKE_VLLM, FAKE_ADMIN]):
        try:
            os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    for pid in extra_pids:
        try:
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def fake_processes() -> list[psutil.Process]:
    """Live fake vLLM servers started by this test process."""
    return _fakes([FAKE_VLLM])


def wait_until(predicate, timeout: float = 5.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
