"""Verify service overhead: ``registry.services.verify.verify`` end to end vs bare ``hash_directory``.

Uses the ~2 GiB folder that ``bench/bench_hashing.py`` builds (``var/bench-hashing/``;
run that first, or pass ``--dir``). Everything else (database, registry files) lives
in a throwaway temp folder, so the real database and registry are never touched.

    .venv/bin/python bench/bench_verify.py [--dir PATH] [--repeat 2]

Prints, per contender, the first and best later run: the bare hash, the verify
service (read layers, hash, write-back with backup, sync, audit row), and the verify
job (the same plus job progress rows every 0.2 s).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def setup_django(tmp: Path) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "imageworks_site.settings"
    os.environ["IMAGEWORKS_VAR_DIR"] = str(tmp / "var")
    os.environ["IMAGEWORKS_SQLITE_PATH"] = str(tmp / "bench.sqlite3")
    os.environ["IMAGEWORKS_REGISTRY_DIR"] = str(tmp / "configs")
    os.environ["IMAGEWORKS_STAGING_DIR"] = str(tmp / "_staging")
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dir", type=Path, default=REPO / "var" / "bench-hashing" / "model-2gib-5"
    )
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args(argv)
    folder = args.dir.resolve()
    if not folder.is_dir():
        print(f"{folder} not found: run bench/bench_hashing.py first", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmpdir:
        tmp = Path(tmpdir)
        setup_django(tmp)
        from django.db import transaction

        from registry import hashing
        from registry.audit import Actor
        from registry.choices import JobKind, JobStatus
        from registry.jobs import enqueue, run_job
        from registry.models import Job, ModelEntry
        from registry.services import verify
        from registry.services.sync import sync_registry

        name = "bench-model_(BF16)"
        (tmp / "configs").mkdir()
        entry = {
            "name": name,
            "backend": "vllm",
            "backend_config": {"port": 24001, "model_path": str(folder)},
            "metadata": {"registry_layer": "curated"},
        }
        (tmp / "configs" / "model_registry.curated.json").write_text(
            json.dumps([entry], indent=2)
        )
        (tmp / "configs" / "model_registry.discovered.json").write_text("[]")
        actor = Actor.system("bench")
        sync_registry(actor, force=True)
        total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())

        def bare():
            return hashing.hash_directory(folder).aggregate_sha256

        def service():
            return verify.verify(name, actor).aggregate_sha256

        def job():
            with transaction.atomic():
                j = enqueue(
                    JobKind.VERIFY,
                    actor=actor,
                    entry=ModelEntry.objects.get(name=name),
                )
            run_job(j.pk)  # what a qcluster worker runs
            j = Job.objects.get(pk=j.pk)
            assert j.status == JobStatus.SUCCEEDED, j.error
            return j.result["aggregate_sha256"]

        rows = []
        results = set()
        for label, fn in (
            ("hash_directory (bare)", bare),
            ("verify() service", service),
            ("verify job (progress rows)", job),
        ):
            times = []
            for _ in range(max(1, args.repeat)):
                t0 = time.perf_counter()
                results.add(fn())
                times.append(time.perf_counter() - t0)
            rows.append((label, times[0], min(times[1:] or times)))
        assert len(results) == 1, "contenders disagree"
        base = rows[0][2]
        print(f"folder: {folder} ({total / 1e9:.2f} GB)")
        print(
            f"{'contender':<30} {'first s':>8} {'best s':>8} {'GB/s':>6} {'vs bare':>8}"
        )
        for label, first, best in rows:
            print(
                f"{label:<30} {first:8.2f} {best:8.2f} {total / best / 1e9:6.2f} "
                f"{best / base:7.2f}x"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
