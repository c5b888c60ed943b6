"""Per-host queues for real: a site qcluster and a GPU-host qcluster (Redis, PostgreSQL).

Runs when PostgreSQL and Redis answer on 127.0.0.1 (same variables as
``test_two_workers.py``); skipped otherwise. Two ``manage.py qcluster`` processes
share one site (same ``Q_CLUSTER["name"]``, database and Redis) but play different
machines: the site worker (``IMAGEWORKS_HOST_NAME=site-a-…``) serves the site
queue, the GPU worker (``Q_CLUSTER_NAME=gpu-b-… IMAGEWORKS_HOST_NAME=gpu-b-…``)
serves its own. Every process has ``IMAGEWORKS_VLLM_QUEUE`` pointing at the GPU
queue. Six activation jobs and a verify job are queued at once (fake vLLM servers):

* every activation ran on the GPU worker (``Activation.host_name`` and
  django-q2's record of the executing cluster), the verify on the site worker;
* never two live activations or two fake servers, sampled throughout;
* ``vllm_reconcile`` run as the site host leaves the GPU host's activation alone,
  even after its server crashed, and says where it runs;
* a stop job, routed to the GPU worker, finds the crashed server dead there.
"""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from tests.hardening.test_two_workers import (
    LIVE,
    REDIS_URL,
    REPO,
    SETUP,
    Monitor,
    _manage,
    qcluster_site,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

JOBS = 6


# What the Activate button and the drawer's Verify do, from a web process.
ENQUEUE = """
from backends.tasks import enqueue_activation
from registry.audit import Actor
from registry.choices import JobKind
from registry.jobs import enqueue
from registry.models import ModelEntry
entries = list(ModelEntry.objects.filter(name__startswith="gpu-queue-model-").order_by("name"))
for entry in entries:
    enqueue_activation(entry, Actor.system("user-" + entry.name.rsplit("-", 1)[1]))
enqueue(JobKind.VERIFY, actor=Actor.system("verifier"), entry=entries[0],
        message="Queued")
print("ok")
"""

STOP = """
from backends.tasks import enqueue_stop
from registry.audit import Actor
enqueue_stop(Actor.system("stopper"), name="")
print("ok")
"""


@pytest.fixture
def site(tmp_path):
    """A migrated PostgreSQL database, a site queue and a GPU queue of our own."""
    tag = uuid.uuid4().hex[:8]
    names = {
        "site": f"iw-gpu-site-{tag}",  # Q_CLUSTER["name"]: the site queue and salt
        "queue": f"gpu-b-{tag}",  # IMAGEWORKS_VLLM_QUEUE / Q_CLUSTER_NAME
        "site_host": f"site-a-{tag}",
        "gpu_host": f"gpu-b-host-{tag}",
    }
    with qcluster_site(
        tmp_path,
        "gpu_queue",
        (names["site"], names["queue"]),
        IMAGEWORKS_Q_WORKERS="2",
        IMAGEWORKS_VLLM_QUEUE=names["queue"],
        IMAGEWORKS_HOST_NAME=names["site_host"],
        GPU_QUEUE_TAG_DIR=str(tmp_path / "tags"),
    ) as deployed:
        yield {**deployed, **names}


def _start(site, label: str, **extra: str) -> None:
    tmp = site["tmp"]
    site["procs"].append(
        subprocess.Popen(
            # qcluster, with a tag file per verify job saying which host ran it
            [
                sys.executable,
                "-m",
                "tests.hardening.tagged_qcluster",
                "GPU_QUEUE_TAG_DIR",
                "IMAGEWORKS_HOST_NAME",
                "verify",
            ],
            cwd=REPO,
            env={**site["env"], **extra},
            stdout=(tmp / f"qcluster-{label}.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as a whole
        )
    )


def _logs(site) -> str:
    return " | ".join(
        (site["tmp"] / f"qcluster-{w}.log").read_text()[-800:] for w in ("site", "gpu")
    )


def test_activation_jobs_run_only_on_the_gpu_hosts_queue(site):
    import psycopg
    import redis

    from tests.backends.vllm_helpers import fake_processes, wait_until

    env, tmp = site["env"], site["tmp"]
    _manage(env, "migrate", "-v0", timeout=180)
    _manage(
        env,
        "shell",
        "-c",
        SETUP.format(weights=str(tmp / "weights"), n=JOBS, prefix="gpu-queue-model"),
    )

    _start(site, "site")
    _start(
        site,
        "gpu",
        Q_CLUSTER_NAME=site["queue"],
        IMAGEWORKS_HOST_NAME=site["gpu_host"],
    )
    # Both clusters publish their stats under the site's name once they run.
    r = redis.Redis.from_url(REDIS_URL)
    stat_keys = f"django_q:{site['site']}:cluster:*"
    assert wait_until(lambda: len(list(r.scan_iter(stat_keys))) >= 2, timeout=60), (
        "both qclusters should start: " + _logs(site)
    )

    def query(sql: str, *args):
        with psycopg.connect(site["dsn"]) as conn:
            return conn.execute(sql, args).fetchall()

    def jobs():
        return query(
            "SELECT id, kind, entry_name, status, error FROM registry_job ORDER BY id"
        )

    def finished(rows, count):
        return len(rows) == count and all(
            r[3] in ("succeeded", "failed", "cancelled") for r in rows
        )

    monitor = Monitor(site["dsn"])
    monitor.start()
    _manage(env, "shell", "-c", ENQUEUE)  # six activations and a verify at once
    done = wait_until(lambda: finished(jobs(), JOBS + 1), timeout=90, interval=0.2)
    monitor.stop()
    rows = jobs()
    assert done, f"jobs did not finish: {rows}\n{_logs(site)}"

    # One at a time, all the way through, across both workers.
    assert monitor.max_live_rows == 1 and monitor.max_fakes == 1, monitor.bad[:5]
    assert not monitor.bad, monitor.bad[:5]

    activations = [row for row in rows if row[1] == "activate"]
    succeeded = [row for row in activations if row[3] == "succeeded"]
    assert succeeded, rows
    for _pk, _kind, name, status, error in activations:
        assert status == "succeeded" or "is already activating" in error, (
            name,
            status,
            error,
        )

    # Every activation was launched by the GPU host's worker ...
    hosts = query("SELECT DISTINCT host_name FROM backends_activation")
    assert hosts == [(site["gpu_host"],)], hosts
    # ... and django-q2 records which queue's cluster ran each job: activations the
    # GPU queue, the verify the site queue (on the site host's worker).
    ran_on = dict(query("SELECT name, cluster FROM django_q_task"))
    for pk, kind, *_ in rows:
        want = site["queue"] if kind == "activate" else site["site"]
        assert ran_on.get(f"{kind}-{pk}") == want, (kind, pk, ran_on)
    verify_pk = next(pk for pk, kind, *_ in rows if kind == "verify")
    assert [p.name for p in (tmp / "tags").iterdir()] == [
        f"{verify_pk}.{site['site_host']}"
    ]

    live = query(
        "SELECT logical_name, pid, state, host_name FROM backends_activation "
        "WHERE state = ANY(%s)",
        list(LIVE),
    )
    assert len(live) == 1 and live[0][2] == "running", live
    assert [p.pid for p in fake_processes()] == [live[0][1]]

    # The site host may look, but a server on the GPU host is judged there only:
    # even after it crashes, reconciling from the site host leaves the row alone.
    for proc in fake_processes():
        proc.kill()
    assert wait_until(lambda: not fake_processes())
    out = _manage(env, "vllm_reconcile")
    assert (
        f"{live[0][0]} is running on host {site['gpu_host']}; checked from there"
        in (out)
    ), out
    assert query(
        "SELECT state FROM backends_activation WHERE pid = %s", live[0][1]
    ) == [("running",)]

    # A stop goes to the GPU host's worker, which finds the server dead.
    monitor = Monitor(site["dsn"])
    monitor.start()
    _manage(env, "shell", "-c", STOP)
    assert wait_until(lambda: finished(jobs(), JOBS + 2), timeout=60, interval=0.2), (
        jobs()
    )
    monitor.stop()
    stop_pk, _kind, _name, status, error = jobs()[-1]
    assert status == "succeeded", error
    ran_on = dict(query("SELECT name, cluster FROM django_q_task"))
    assert ran_on[f"stop-{stop_pk}"] == site["queue"]
    assert query(
        "SELECT state, error FROM backends_activation WHERE pid = %s", live[0][1]
    ) == [("failed", "Process found dead (exited or killed outside the console).")]
    assert not (tmp / "_staging" / "active_vllm.json").exists()
    assert query(
        "SELECT COUNT(*) FROM backends_activation WHERE state = ANY(%s)", list(LIVE)
    ) == [(0,)]
    print(
        f"{monitor.db_samples} DB samples after the stop; activations by "
        f"{hosts[0][0]}; succeeded {[r[2] for r in succeeded]}; live was {live[0][0]}"
    )
