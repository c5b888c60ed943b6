"""10 OS processes (like web workers, qcluster workers and CLI runs) race to activate.

They share one file SQLite database (the embedded production setup), one staging
folder and one port. Exactly one server may survive; every loser is told who is
activating what. Slow-ish (each process imports Django), hence its own file.
"""

from __future__ import annotations

import json

import pytest

from tests.backends.vllm_helpers import fake_processes, wait_until

pytestmark = pytest.mark.slow


def test_ten_concurrent_processes_leave_exactly_one_server(tmp_path):
    """10 OS processes (like web workers + CLI) race on one file SQLite database."""
    import os
    import sqlite3
    import subprocess
    import sys
    from pathlib import Path

    from tests.backends.vllm_helpers import (
        FAKE_ENV,
        FAKE_LAUNCHER,
        free_port,
        kill_fakes,
    )

    repo = Path(__file__).resolve().parents[2]
    helper = Path(__file__).with_name("concurrent_activate.py")
    port = free_port()
    db = tmp_path / "race.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "imageworks_site.settings",
        "SECRET_KEY": "race-test",
        "IMAGEWORKS_VAR_DIR": str(tmp_path / "var"),
        "IMAGEWORKS_SQLITE_PATH": str(db),
        "IMAGEWORKS_STAGING_DIR": str(tmp_path / "_staging"),
        "IMAGEWORKS_LOG_DIR": str(tmp_path / "logs"),
        "IMAGEWORKS_REGISTRY_DIR": str(tmp_path / "configs"),
        "IMAGEWORKS_VLLM_LAUNCHER": FAKE_LAUNCHER,
        "IMAGEWORKS_VLLM_PORT": str(port),
        "IMAGEWORKS_VLLM_START_TIMEOUT": "60",
        "IMAGEWORKS_VLLM_STOP_GRACE": "2",
        "IMAGEWORKS_VLLM_ENV_ALLOWLIST": ",".join(["PATH", *FAKE_ENV]),
        "FAKE_VLLM_READY_DELAY": "0.2",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("DATABASE_URL", None)
    try:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"],
            cwd=repo,
            env=env,
            check=True,
            timeout=120,
        )
        subprocess.run(
            [sys.executable, str(helper), "setup", "10", str(tmp_path / "w")],
            env=env,
            check=True,
            timeout=60,
        )
        go = tmp_path / "go"
        procs = [
            subprocess.Popen(
                [sys.executable, str(helper), "activate", f"model-{i}", str(go)],
                env=env,
                stdout=subprocess.PIPE,
                text=True,
            )
            for i in range(10)
        ]
        # Every process imports Django first and waits at the start line.
        assert wait_until(
            lambda: len(list(tmp_path.glob("ready-*"))) == 10, timeout=120
        )
        go.touch()
        results = [
            json.loads(p.communicate(timeout=120)[0].strip().splitlines()[-1])
            for p in procs
        ]
        errors = [r for r in results if r["outcome"] == "error"]
        assert not errors, errors
        busy = [r for r in results if r["outcome"] == "busy"]
        # A loser names who holds the slot: still starting ("alice is already
        # activating X") or, if it lost the replace race after X became ready,
        # "X is active (started by alice)".
        assert busy and all(
            "is already activating" in r["message"]
            or "is active (started by" in r["message"]
            for r in busy
        ), results
        with sqlite3.connect(db) as conn:
            live = conn.execute(
                "SELECT logical_name, pid, state FROM backends_activation "
                "WHERE state IN ('starting','running','stopping')"
            ).fetchall()
            n_audit = conn.execute(
                "SELECT COUNT(*) FROM registry_actionlog WHERE action='activate'"
            ).fetchone()[0]
        assert len(live) == 1 and live[0][2] == "running", live
        assert [p.pid for p in fake_processes()] == [live[0][1]]
        state = json.loads((tmp_path / "_staging" / "active_vllm.json").read_text())
        assert (state["logical_name"], state["pid"]) == live[0][:2]
        assert n_audit == 10
    finally:
        kill_fakes()
