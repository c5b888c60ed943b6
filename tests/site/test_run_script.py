"""``scripts/run`` for real: it starts runserver and a worker, prints the login last,
and SIGTERM stops both of them and their children (no orphans left serving the port).

Runs the real script against temporary folders (database, registry, password) on a
free port, with ``IMAGEWORKS_SKIP_INSTALL=1`` so it reuses this checkout's ``.venv``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 180  # migrate + sample registry on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def process_table() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, state, command line), read from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may contain spaces, so split after ")".
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        table[int(entry.name)] = (int(ppid), state, cmdline)
    return table


def descendants(pid: int) -> dict[int, str]:
    table = process_table()
    found, todo = {}, [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, _state, cmdline) in table.items():
            if ppid == parent and child not in found:
                found[child] = cmdline
                todo.append(child)
    return found


def alive(pids) -> list[int]:
    table = process_table()
    return [p for p in pids if p in table and table[p][1] != "Z"]


@pytest.fixture
def run_env(tmp_path):
    if not (ROOT / ".venv" / "bin" / "python").exists():
        pytest.skip(
            "scripts/run needs the checkout's .venv (./scripts/test creates it)"
        )
    env = {
        key: value
        for key, value in os.environ.items()
        # The script's own defaults: SQLite in its var dir, the ORM broker, real settings.
        if key not in ("DATABASE_URL", "IMAGEWORKS_REDIS_URL", "DEBUG")
        and not key.startswith("DJANGO_")
    }
    port = free_port()
    env.update(
        IMAGEWORKS_SKIP_INSTALL="1",
        IMAGEWORKS_PORT=str(port),
        IMAGEWORKS_VAR_DIR=str(tmp_path / "var"),
        IMAGEWORKS_REGISTRY_DIR=str(tmp_path / "configs"),
        IMAGEWORKS_STAGING_DIR=str(tmp_path / "_staging"),
        IMAGEWORKS_Q_CLUSTER_NAME=f"runscript{port}",
        IMAGEWORKS_HEALTH_INTERVAL="3600",
    )
    return env, port


@pytest.mark.slow  # real processes, migrate included: the full lane (--all) only
def test_sigterm_stops_the_web_server_and_the_worker(run_env):
    env, port = run_env
    proc = subprocess.Popen(
        [str(ROOT / "scripts" / "run")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True
    )
    reader.start()
    children: dict[int, str] = {}
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not any("Login:" in line for line in lines):
            assert proc.poll() is None, "scripts/run exited early:\n" + "".join(lines)
            assert time.monotonic() < deadline, "no login line:\n" + "".join(lines)
            time.sleep(0.2)
        time.sleep(0.5)
        output = "".join(lines)

        # The login comes last: after migrate, runserver's banner and the worker's start.
        login_at = output.index("Login:")
        assert output.index("Starting development server") < login_at
        assert output.index("Q Cluster") < login_at
        assert f"http://127.0.0.1:{port}/" in output
        assert "admin / " in output[login_at:]
        banner = output[output.index("ImageWorks Model Registry Console") :]
        assert banner.index("Site:") < banner.index("Stop:") < banner.index("Login:")

        children = descendants(proc.pid)
        commands = " | ".join(children.values())
        assert "runserver" in commands and "qcluster" in commands, commands
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # the server answers

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM  # after stopping both
        deadline = time.monotonic() + 20
        while alive(children) and time.monotonic() < deadline:
            time.sleep(0.2)
        left = {pid: children[pid] for pid in alive(children)}
        assert not left, f"still running after SIGTERM: {left}"
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        assert "stopping the web server and the worker" in "".join(lines)
    finally:
        for pid in alive(set(children) | {proc.pid}):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=10)
