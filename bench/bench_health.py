"""Time the concurrent health probe: N fake servers, one hanging (prints figures).

    .venv/bin/python bench/bench_health.py [--servers 10] [--timeout 2.0] [--rounds 3]

Uses the probe layer of ``backends.health.check_all`` (``probe_all``: threads + cut-off), no database.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imageworks_site.settings.test")

import django  # noqa: E402

django.setup()

from backends import health  # noqa: E402
from tests.fakes.fake_openai import FakeOpenAI  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--servers", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    fakes = [FakeOpenAI(models=[f"m{i}"]).start() for i in range(args.servers - 1)]
    hanging = FakeOpenAI(models=["hang"], mode="slow", delay=600).start()
    endpoints = [
        health.Endpoint(
            key=f"lmdeploy:{f.url}",
            kind="lmdeploy",
            label=f.url,
            url=f.url,
            expected=[m],
        )
        for f, m in [*[(f, f"m{i}") for i, f in enumerate(fakes)], (hanging, "hang")]
    ]
    times = []
    try:
        for _ in range(args.rounds):
            start = time.monotonic()
            results = health.probe_all(endpoints, args.timeout)
            times.append(time.monotonic() - start)
        statuses = [r.status for r in results]
        healthy = [r.latency_ms for r in results[:-1]]
        print(
            f"servers={args.servers} (1 hanging) timeout={args.timeout}s rounds={args.rounds}"
        )
        print(
            f"total wall time: median {statistics.median(times):.3f}s, max {max(times):.3f}s"
        )
        print(f"healthy probe latency: max {max(healthy):.1f} ms")
        print(
            f"statuses: {statuses.count('online')} online, hanging -> {statuses[-1]} ({results[-1].error})"
        )
    finally:
        for f in [*fakes, hanging]:
            f.stop()


if __name__ == "__main__":
    main()
