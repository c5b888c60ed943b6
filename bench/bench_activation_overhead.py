"""Activation overhead beyond the server's own readiness (issue 13 §5), CLI and service.

Against the fake vLLM with a fixed readiness delay (``--delay``), alternating per run:

* **server alone** (the baseline): spawn the fake directly and poll it every 5 ms
  until it serves its model: interpreter start + the delay, nothing of ours;
* **service**: ``service.activate(entry)`` in this process (as a worker runs it),
  also with the readiness polling of before issue 13 (0.1 s growing to 0.2 s);
* **CLI**: ``imageworks-models activate-model NAME`` as a new process, start to exit;
* **CLI start-up**: ``imageworks-models current-model`` (Django set-up, plugin
  imports, registry presync, one reconcile) to show how much of the CLI figure
  is start-up; a bare ``python -c "import django; django.setup()"``; and
  ``import psycopg`` alone (django_tables2's JSONColumn imports
  ``django.contrib.postgres.fields``, which imports psycopg when it is installed).

Overhead = activation time minus the baseline of the same round; printed as
median (min..max). Every round stops the model again. Everything lives in a temp
folder removed at the end (only what this bench created).

    .venv/bin/python bench/bench_activation_overhead.py [--runs 9] [--delay 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CLI = str(Path(sys.executable).parent / "imageworks-models")
NAME = "bench-model"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--delay", type=float, default=1.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="iw-bench-overhead-"))
    from tests.backends.vllm_helpers import kill_fakes

    try:
        return run(tmp, args)
    finally:
        kill_fakes()  # only the fakes this process's runs started (owner token)
        shutil.rmtree(tmp, ignore_errors=True)


def setup_env(tmp: Path, delay: float) -> None:
    from tests.backends.vllm_helpers import FAKE_ENV, FAKE_LAUNCHER, free_port

    configs = tmp / "configs"
    configs.mkdir()
    model = tmp / "weights" / NAME
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    entry = {
        "name": NAME,
        "backend": "vllm",
        "backend_config": {"port": 24002, "model_path": str(model), "extra_args": []},
    }
    (configs / "model_registry.curated.json").write_text(json.dumps([entry]))
    (configs / "model_registry.discovered.json").write_text("[]")
    os.environ.update(
        DJANGO_SETTINGS_MODULE="imageworks_site.settings",
        SECRET_KEY="bench",
        IMAGEWORKS_VAR_DIR=str(tmp / "var"),
        IMAGEWORKS_SQLITE_PATH=str(tmp / "bench.sqlite3"),
        IMAGEWORKS_STAGING_DIR=str(tmp / "_staging"),
        IMAGEWORKS_LOG_DIR=str(tmp / "logs"),
        IMAGEWORKS_REGISTRY_DIR=str(configs),
        IMAGEWORKS_VLLM_LAUNCHER=FAKE_LAUNCHER,
        IMAGEWORKS_VLLM_PORT=str(free_port()),
        IMAGEWORKS_VLLM_ENV_ALLOWLIST=",".join(["PATH", *FAKE_ENV]),
        IMAGEWORKS_VLLM_STOP_GRACE="5",
        FAKE_VLLM_READY_DELAY=str(delay),
        LOG_LEVEL="WARNING",
    )
    os.environ.pop("DATABASE_URL", None)


def server_alone(delay: float) -> float:
    """The baseline: the fake's own spawn -> ready, polled every 5 ms."""
    from backends.clients import vllm_ready
    from tests.backends.vllm_helpers import FAKE_VLLM, free_port

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
        env={**os.environ, "FAKE_VLLM_READY_DELAY": str(delay)},
        stdout=subprocess.DEVNULL,
    )
    while not vllm_ready(f"http://127.0.0.1:{port}", "m", timeout=0.5).ready:
        time.sleep(0.005)
    elapsed = time.monotonic() - t0
    proc.kill()
    proc.wait()
    return elapsed


def timed_cli(*argv: str) -> float:
    t0 = time.monotonic()
    done = subprocess.run([CLI, *argv], capture_output=True, text=True)
    elapsed = time.monotonic() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return elapsed


def run(tmp: Path, args) -> int:
    setup_env(tmp, args.delay)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from backends.vllm import service
    from registry.audit import Actor
    from registry.models import ModelEntry
    from registry.services.sync import sync_registry

    actor = Actor.system("bench")
    sync_registry(actor, explicit=True)
    entry = ModelEntry.objects.get(name=NAME)
    # warm this process once, as a long-running worker is
    service.activate(entry, actor)
    service.stop(actor)

    from backends.vllm import process

    new_polling = dict(process.wait_ready.__kwdefaults__)
    old_polling = {**new_polling, "interval": 0.1, "max_interval": 0.2}
    keys = ("base", "service", "service_old", "cli", "cli_start", "django", "psycopg")
    rows = {k: [] for k in keys}
    for _ in range(args.runs):
        base = server_alone(args.delay)
        rows["base"].append(base)
        for key, polling in (("service", new_polling), ("service_old", old_polling)):
            process.wait_ready.__kwdefaults__.update(polling)
            t0 = time.monotonic()
            service.activate(entry, actor)
            rows[key].append(time.monotonic() - t0 - base)
            service.stop(actor)
        process.wait_ready.__kwdefaults__.update(new_polling)
        rows["cli"].append(timed_cli("activate-model", NAME) - base)
        service.stop(actor)
        rows["cli_start"].append(timed_cli("current-model"))
        t0 = time.monotonic()
        subprocess.run(
            [sys.executable, "-c", "import django; django.setup()"], check=True
        )
        rows["django"].append(time.monotonic() - t0)
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", "import psycopg"], check=True)
        rows["psycopg"].append(time.monotonic() - t0)

    def fmt(values):
        return (
            f"median {statistics.median(values) * 1000:6.0f} ms "
            f"(min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f})"
        )

    print(
        f"runs={args.runs} fake ready delay={args.delay:.2f}s "
        f"load={os.getloadavg()[0]:.1f} cpus={os.cpu_count()}"
    )
    print(f"server alone (spawn -> ready, baseline)       {fmt(rows['base'])}")
    print(f"service.activate overhead beyond baseline     {fmt(rows['service'])}")
    print(f"  same, polling as before (0.1 -> 0.2 s)      {fmt(rows['service_old'])}")
    print(f"CLI activate-model overhead beyond baseline   {fmt(rows['cli'])}")
    print(f"CLI start-up alone (current-model)            {fmt(rows['cli_start'])}")
    print(f"python + django.setup() alone                 {fmt(rows['django'])}")
    print(f"python + import psycopg alone                 {fmt(rows['psycopg'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
