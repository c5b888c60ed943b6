"""Two real qcluster workers (Redis broker, PostgreSQL) and one activation at a time.

Runs when PostgreSQL and Redis answer on 127.0.0.1 (``IMAGEWORKS_TEST_PG_URL`` /
``IMAGEWORKS_TEST_REDIS_URL`` override the defaults); skipped otherwise. It creates
and migrates a database of its own, starts TWO ``manage.py qcluster`` processes
(one worker each, so neither can take every task: django-q2's queue limit is
workers**2) and queues six activation jobs for six different vLLM entries at once
(fake vLLM servers). While they run it samples the database and the process table:
never two live (starting/running/stopping) ``Activation`` rows, never two fake
servers. At the end exactly one fake server runs, it is the one live row, and
``_staging/active_vllm.json`` says so; every job either succeeded (activated,
possibly replacing the previous model) or failed with "X is already activating Y".
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PG_URL = os.environ.get(
    "IMAGEWORKS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("IMAGEWORKS_TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
JOBS = 6
LIVE = ("starting", "running", "stopping")


SETUP = """
import hashlib
from pathlib import Path
from registry.models import ModelEntry
from tests.backends.model_files import write_model
weights = Path({weights!r})
for i in range({n}):
    name = f"{prefix}-{{i}}"
    path = write_model(weights / name, shards=1)  # a small real model: passes preflight
    bc = {{"model_path": str(path), "extra_args": []}}
    ModelEntry.objects.create(
        name=name, backend="vllm", backend_config=bc,
        curated_raw={{"name": name, "backend": "vllm", "backend_config": bc}},
        provenance="curated", fingerprint=hashlib.sha256(name.encode()).hexdigest(),
    )
print("ok")
"""

ENQUEUE = """
from registry.audit import Actor
from registry.choices import JobKind
from registry.jobs import enqueue
from registry.models import ModelEntry
for entry in ModelEntry.objects.filter(name__startswith="two-workers-model-").order_by("name"):
    i = entry.name.rsplit("-", 1)[1]
    enqueue(JobKind.ACTIVATE, actor=Actor.system(f"user-{i}"), entry=entry,
            message="Queued")
print("ok")
"""


def _services_up() -> str | None:
    try:
        import psycopg
        import redis
    except ImportError as exc:
        return f"driver missing: {exc}"
    try:
        with psycopg.connect(PG_URL, connect_timeout=2):
            pass
    except Exception as exc:  # noqa: BLE001 - any failure means "not available"
        return f"PostgreSQL not reachable at {PG_URL}: {exc}"
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001
        return f"Redis not reachable at {REDIS_URL}: {exc}"
    return None


def _manage(env: dict, *args: str, timeout: float = 120) -> str:
    out = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, (
        f"manage.py {args[0]} failed:\n{out.stdout}\n{out.stderr}"
    )
    return out.stdout


def _stop_group(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    except ProcessLookupError:
        pass


@contextmanager
def qcluster_site(
    tmp_path: Path, label: str, queues: tuple[str, ...], **env_extra: str
) -> Iterator[dict]:
    """A site of our own for real ``qcluster`` processes: a migrated-later PostgreSQL
    database, Redis queue keys named *queues* (the first is ``Q_CLUSTER["name"]``),
    fake vLLM settings and a ``tags`` folder. Yields ``env``, ``tmp``, ``dsn`` and
    ``procs`` (processes to stop); drops the database and the queue keys after.
    Skips when PostgreSQL or Redis is not there."""
    reason = _services_up()
    if reason:
        pytest.skip(reason)
    import psycopg
    import redis

    from tests.backends.vllm_helpers import FAKE_ENV, FAKE_LAUNCHER, free_port

    db_name = f"imageworks_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db_name}"')
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IMAGEWORKS_", "DATABASE_URL", "DJANGO_", "Q_CLUSTER"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "imageworks_site.settings",
            "SECRET_KEY": f"{label}-test",
            "DATABASE_URL": PG_URL.rsplit("/", 1)[0] + "/" + db_name,
            "IMAGEWORKS_REDIS_URL": REDIS_URL,
            "IMAGEWORKS_Q_CLUSTER_NAME": queues[0],  # our own queue key in Redis
            "IMAGEWORKS_Q_WORKERS": "1",
            "IMAGEWORKS_VAR_DIR": str(tmp_path / "var"),
            "IMAGEWORKS_REGISTRY_DIR": str(tmp_path / "configs"),
            "IMAGEWORKS_STAGING_DIR": str(tmp_path / "_staging"),
            "IMAGEWORKS_LOG_DIR": str(tmp_path / "logs"),
            "IMAGEWORKS_VLLM_LAUNCHER": FAKE_LAUNCHER,
            "IMAGEWORKS_VLLM_PORT": str(free_port()),
            "IMAGEWORKS_VLLM_START_TIMEOUT": "30",
            "IMAGEWORKS_VLLM_STOP_GRACE": "3",
            "IMAGEWORKS_VLLM_ENV_ALLOWLIST": ",".join(["PATH", *FAKE_ENV]),
            "IMAGEWORKS_OLLAMA_URL": f"http://127.0.0.1:{free_port()}",
            "FAKE_VLLM_READY_DELAY": "0.5",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **env_extra,
        }
    )
    (tmp_path / "tags").mkdir()
    procs: list[subprocess.Popen] = []
    try:
        yield {"env": env, "tmp": tmp_path, "dsn": env["DATABASE_URL"], "procs": procs}
    finally:
        from tests.backends.vllm_helpers import kill_fakes

        for proc in procs:
            _stop_group(proc)
        kill_fakes()
        r = redis.Redis.from_url(REDIS_URL)
        for queue in queues:
            keys = list(r.scan_iter(f"django_q:{queue}:*"))
            if keys:
                r.delete(*keys)
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')


@pytest.fixture
def deployment(tmp_path):
    """A migrated PostgreSQL database + Redis queue of our own; torn down after."""
    cluster = f"iw-two-workers-{uuid.uuid4().hex[:8]}"
    with qcluster_site(
        tmp_path,
        "two_workers",
        (cluster,),
        TWO_WORKERS_TAG_DIR=str(tmp_path / "tags"),
    ) as site:
        yield {**site, "cluster": cluster}


class Monitor:
    """Samples live Activation rows (DB, every 20 ms) and fake servers (process table)."""

    def __init__(self, dsn: str):
        self.dsn = dsn
        self.halt = threading.Event()
        self.max_live_rows = self.max_fakes = 0
        self.db_samples = self.proc_samples = 0
        self.bad: list[str] = []
        self.threads = [
            threading.Thread(target=self._db, daemon=True),
            threading.Thread(target=self._procs, daemon=True),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self.halt.set()
        for thread in self.threads:
            thread.join(5)

    def _db(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.halt.is_set():
                rows = conn.execute(
                    "SELECT id, logical_name, state FROM backends_activation "
                    "WHERE state = ANY(%s)",
                    (list(LIVE),),
                ).fetchall()
                self.db_samples += 1
                self.max_live_rows = max(self.max_live_rows, len(rows))
                if len(rows) > 1:
                    self.bad.append(f"live rows: {rows}")
                time.sleep(0.02)

    def _procs(self) -> None:
        from tests.backends.vllm_helpers import fake_processes

        while not self.halt.is_set():
            fakes = [p.pid for p in fake_processes()]
            self.proc_samples += 1
            self.max_fakes = max(self.max_fakes, len(fakes))
            if len(fakes) > 1:
                self.bad.append(f"fake servers: {fakes}")
            time.sleep(0.05)


def test_two_qclusters_keep_one_activation_at_a_time(deployment):
    import psycopg
    import redis

    from tests.backends.vllm_helpers import fake_processes, wait_until

    env, tmp = deployment["env"], deployment["tmp"]
    _manage(env, "migrate", "-v0", timeout=180)
    _manage(
        env,
        "shell",
        "-c",
        SETUP.format(weights=str(tmp / "weights"), n=JOBS, prefix="two-workers-model"),
    )

    for worker in ("A", "B"):
        deployment["procs"].append(
            subprocess.Popen(
                # qcluster, with a tag file per activation saying which worker ran it
                [
                    sys.executable,
                    "-m",
                    "tests.hardening.tagged_qcluster",
                    "TWO_WORKERS_TAG_DIR",
                    "TWO_WORKERS_ID",
                    "activate",
                ],
                cwd=REPO,
                env={**env, "TWO_WORKERS_ID": worker},
                stdout=(tmp / f"qcluster-{worker}.log").open("wb"),
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as a whole
            )
        )
    # Both clusters are up once each has published its stats in Redis.
    r = redis.Redis.from_url(REDIS_URL)
    stat_keys = f"django_q:{deployment['cluster']}:cluster:*"
    assert wait_until(lambda: len(list(r.scan_iter(stat_keys))) >= 2, timeout=60), (
        "both qclusters should start: "
        + " | ".join((tmp / f"qcluster-{w}.log").read_text()[-500:] for w in ("A", "B"))
    )

    monitor = Monitor(deployment["dsn"])
    monitor.start()
    _manage(env, "shell", "-c", ENQUEUE)  # six jobs at once

    def jobs():
        with psycopg.connect(deployment["dsn"]) as conn:
            return conn.execute(
                "SELECT id, entry_name, status, error FROM registry_job "
                "WHERE kind = 'activate' ORDER BY id"
            ).fetchall()

    done = wait_until(
        lambda: (
            (rows := jobs())
            and len(rows) == JOBS
            and all(s in ("succeeded", "failed", "cancelled") for _, _, s, _ in rows)
        ),
        timeout=60,
        interval=0.2,
    )
    time.sleep(0.5)  # a last few samples after the final job
    monitor.stop()
    rows = jobs()
    assert done, f"jobs did not finish: {rows}"

    # One at a time, all the way through.
    assert monitor.db_samples > 50 and monitor.proc_samples > 5
    assert not monitor.bad, monitor.bad[:5]
    assert monitor.max_live_rows == 1 and monitor.max_fakes == 1

    # Both workers took jobs (so the race really crossed processes).
    ran_by = {p.name.split(".")[1] for p in (tmp / "tags").iterdir()}
    assert ran_by == {"A", "B"}, ran_by

    # Every job either activated its model or was refused with who/what.
    succeeded = [row for row in rows if row[2] == "succeeded"]
    refused = [row for row in rows if row[2] != "succeeded"]
    assert succeeded, rows
    for _pk, name, status, error in refused:
        assert status == "failed" and "is already activating" in error, (
            name,
            status,
            error,
        )

    # The end state: one running row, one fake server, a matching state file.
    with psycopg.connect(deployment["dsn"]) as conn:
        live = conn.execute(
            "SELECT logical_name, pid, port, state FROM backends_activation "
            "WHERE state = ANY(%s)",
            (list(LIVE),),
        ).fetchall()
        audits = conn.execute(
            "SELECT COUNT(*) FROM registry_actionlog WHERE action = 'activate'"
        ).fetchone()[0]
    assert len(live) == 1 and live[0][3] == "running", live
    assert live[0][0] in {name for _pk, name, _s, _e in succeeded}
    assert [p.pid for p in fake_processes()] == [live[0][1]]
    state = json.loads((tmp / "_staging" / "active_vllm.json").read_text())
    assert (state["logical_name"], state["pid"], state["port"]) == live[0][:3]
    assert audits == JOBS  # one audit row per activation attempt
    print(
        f"{monitor.db_samples} DB / {monitor.proc_samples} process samples, max live rows {monitor.max_live_rows}, "
        f"max fake servers {monitor.max_fakes}; ran by {sorted(ran_by)}; "
        f"succeeded {[n for _p, n, _s, _e in succeeded]}; "
        f"refused {[e for _p, _n, _s, e in refused]}; live {live[0][0]}"
    )
