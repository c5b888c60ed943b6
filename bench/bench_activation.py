"""Activation overhead: request -> "Active" on the status endpoint, minus the server's delay.

Runs the real stack in one process: Django test client (as an operator) POSTs to
``backends:activate``; the job runs in a worker thread (django-q2 "sync" mode,
as a qcluster worker would, minus the broker's poll interval); the main thread
polls ``backends:status`` every 20 ms like the UI does (it polls every 1 s) and
stops the clock when the partial says Active. The fake vLLM becomes ready after
``--delay`` seconds, which is subtracted. Same for stop (until "No model active").

    .venv/bin/python bench/bench_activation.py [--runs 7] [--delay 1.0]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--delay", type=float, default=1.0, help="fake server's own ready delay (s)"
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="iw-bench-"))
    from tests.backends.vllm_helpers import (
        FAKE_ENV,
        FAKE_LAUNCHER,
        free_port,
        kill_fakes,
    )

    os.environ.update(
        DJANGO_SETTINGS_MODULE="imageworks_site.settings",
        SECRET_KEY="bench",
        IMAGEWORKS_VAR_DIR=str(tmp / "var"),
        IMAGEWORKS_SQLITE_PATH=str(tmp / "bench.sqlite3"),
        IMAGEWORKS_STAGING_DIR=str(tmp / "_staging"),
        IMAGEWORKS_LOG_DIR=str(tmp / "logs"),
        IMAGEWORKS_REGISTRY_DIR=str(tmp / "configs"),
        IMAGEWORKS_VLLM_LAUNCHER=FAKE_LAUNCHER,
        IMAGEWORKS_VLLM_PORT=str(free_port()),
        IMAGEWORKS_VLLM_ENV_ALLOWLIST=",".join(["PATH", *FAKE_ENV]),
        IMAGEWORKS_VLLM_STOP_GRACE="5",
        FAKE_VLLM_READY_DELAY=str(args.delay),
        LOG_LEVEL="WARNING",
        ALLOWED_HOSTS="testserver,localhost",
    )
    os.environ.pop("DATABASE_URL", None)
    import django
    from django.conf import settings

    # Before setup: django_q reads its configuration when its app loads.
    settings.Q_CLUSTER["sync"] = True  # run jobs in the requesting thread
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.test import Client
    from django.urls import reverse

    from registry.models import ModelEntry
    from tests.base import make_user

    user = make_user("bench-operator", "operator")
    path = tmp / "weights" / "bench-model"
    path.mkdir(parents=True)
    bc = {"model_path": str(path), "extra_args": []}
    entry = ModelEntry.objects.create(
        name="bench-model",
        backend="vllm",
        backend_config=bc,
        curated_raw={"name": "bench-model", "backend": "vllm", "backend_config": bc},
        provenance="curated",
        fingerprint=hashlib.sha256(b"bench").hexdigest(),
    )
    poller = Client()
    poller.force_login(user)
    status_url = reverse("backends:status") + f"?entry={entry.pk}"

    def timed(url: str, data: dict, done_text: str) -> float:
        worker = Client()
        worker.force_login(user)
        t0 = time.monotonic()
        thread = threading.Thread(
            target=lambda: worker.post(url, data, HTTP_HX_REQUEST="true")
        )
        thread.start()
        while True:
            body = poller.get(status_url).content.decode()
            if (
                done_text in body
                and "Activating" not in body
                and "Stopping" not in body
            ):
                elapsed = time.monotonic() - t0
                break
            if time.monotonic() - t0 > 60:
                raise SystemExit(f"timed out waiting for {done_text!r}: {body[:300]}")
            time.sleep(0.02)
        thread.join()
        return elapsed

    def fake_startup() -> float:
        """Baseline: the fake server's own interpreter start (spawn -> ready, delay 0)."""
        import subprocess

        from backends.clients import vllm_ready
        from tests.backends.vllm_helpers import FAKE_VLLM

        port = free_port()
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [
                sys.executable,
                str(FAKE_VLLM),
                "--model",
                "m",
                "--served-model-name",
                "m",
                "--port",
                str(port),
            ],
            env={**os.environ, "FAKE_VLLM_READY_DELAY": "0"},
            stdout=subprocess.DEVNULL,
        )
        while not vllm_ready(f"http://127.0.0.1:{port}", "m", timeout=0.5).ready:
            time.sleep(0.005)
        elapsed = time.monotonic() - t0
        proc.kill()
        proc.wait()
        return elapsed

    baseline = [fake_startup() for _ in range(args.runs)]
    act_overheads, stop_times = [], []
    try:
        for _ in range(args.runs):
            t = timed(
                reverse("backends:activate", args=[entry.pk]), {}, 'badge ok">Active'
            )
            act_overheads.append(t - args.delay)
            stop_times.append(
                timed(reverse("backends:stop"), {"entry": entry.pk}, "No model active")
            )
    finally:
        kill_fakes()
        shutil.rmtree(tmp, ignore_errors=True)  # our own mkdtemp()

    def fmt(values):
        return f"median {statistics.median(values) * 1000:.0f} ms (min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f})"

    print(
        f"runs={args.runs} fake ready delay={args.delay:.2f}s load={os.getloadavg()[0]:.1f} cpus={os.cpu_count()}"
    )
    print(
        f"activation overhead (request -> Active on status endpoint, minus delay): {fmt(act_overheads)}"
    )
    net = [a - statistics.median(baseline) for a in act_overheads]
    print(
        f"fake server's own start (spawn -> ready, delay 0, no console): {fmt(baseline)}"
    )
    print(f"console overhead net of that start:                            {fmt(net)}")
    print(
        f"stop (request -> 'No model active' on status endpoint):                 {fmt(stop_times)}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
