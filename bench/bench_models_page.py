"""Benchmark: the Models page at 10,000 entries vs the Django admin changelist.

Usage (from the repo root):

    .venv/bin/python bench/bench_models_page.py [--entries 10000] [--runs 15]

Seeds ``--entries`` realistic rows (names with / ( ) . :, 47-key capability maps,
roles, aliases, backend configs, merged JSON of a few KB) in a throwaway SQLite
database under a temporary IMAGEWORKS_VAR_DIR, signs in a superuser with the test
Client and times, in one run: the full page, a filtered htmx partial, a fuzzy-search
htmx partial, the CSV export of all rows, and the admin changelist with a comparable
``?q=`` search as the baseline. Prints median and p95 (ms) and the query count.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

TMP = Path(tempfile.mkdtemp(prefix="imageworks-bench-page-"))
os.environ["IMAGEWORKS_VAR_DIR"] = str(TMP)
os.environ["IMAGEWORKS_SQLITE_PATH"] = str(TMP / "bench.sqlite3")
os.environ["IMAGEWORKS_REGISTRY_DIR"] = str(TMP / "configs")
os.environ["IMAGEWORKS_STAGING_DIR"] = str(TMP / "_staging")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imageworks_site.settings")
os.environ.setdefault("DATABASE_URL", "")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

FAMILIES = [
    ("qwen2.5-vl", "Qwen2.5-VL", ["caption", "keywords", "description"], "vision"),
    ("llama-3.1", "Llama 3.1", ["chat", "code"], "tools"),
    ("mistral-small", "Mistral Small", ["chat", "reasoning"], "tools"),
    ("internvl3", "InternVL3", ["caption", "ocr"], "vision"),
    ("gemma3", "Gemma 3", ["chat"], "text"),
    ("bge-m3", "BGE-M3", ["embedding"], "embedding"),
    ("whisper-large", "Whisper large", ["narration"], "audio"),
    ("deepseek-r1-distill", "DeepSeek R1 Distill", ["reasoning"], "thinking"),
    ("florence-2", "Florence 2", ["caption", "object_detection"], "vision"),
    ("siglip", "SigLIP", ["embedding", "vision_general"], "embedding"),
]
QUANTS = ["AWQ", "FP8", "FP16", "Q4_K_M", "Q3_K_M", "GPTQ", "MXFP4"]
BACKENDS = ["vllm", "vllm", "ollama", "lmdeploy", "triton"]


def seed(n: int) -> None:
    from registry.models import ModelEntry
    from registry.normalize import normalize_capabilities

    rows = []
    for i in range(n):
        slug, display, roles, cap = FAMILIES[i % len(FAMILIES)]
        quant = QUANTS[i % len(QUANTS)]
        size = (i % 70) + 1
        backend = BACKENDS[i % len(BACKENDS)]
        name = f"{slug}-{size}b-v{i}_({quant})"
        display_name = f"{display} {size}B v{i} ({quant})"
        aliases = [f"{slug}-{i}"] if i % 4 == 0 else []
        caps = normalize_capabilities({"text": True, cap: True})
        merged = {
            "name": name,
            "display_name": display_name,
            "backend": backend,
            "backend_config": {
                "port": 24001,
                "model_path": f"/srv/models/vendor{i % 50}/{slug}/{quant}",
                "extra_args": [
                    "--max-model-len",
                    "8192",
                    "--gpu-memory-utilization",
                    "0.9",
                ],
                "host": "localhost",
            },
            "capabilities": caps,
            "roles": roles,
            "model_aliases": aliases,
            "served_model_id": f"vendor{i % 50}/{slug}:{quant.lower()}",
            "download_path": f"/srv/models/vendor{i % 50}/{slug}/{quant}",
            "metadata": {
                "registry_layer": "curated",
                "family": slug,
                "notes": "x" * 200,
            },
        }
        rows.append(
            ModelEntry(
                name=name,
                display_name=display_name,
                backend=backend,
                roles=roles,
                roles_key="|" + "|".join(roles) + "|",
                capabilities=caps,
                cap_text=True,
                **{f"cap_{cap}": True} if cap != "text" else {},
                served_model_id=merged["served_model_id"],
                aliases=aliases,
                search_text="\n".join([name.lower(), display_name.lower(), *aliases]),
                backend_config=merged["backend_config"],
                download_path=merged["download_path"],
                aggregate_sha256=hashlib.sha256(name.encode()).hexdigest(),
                locked=i % 7 == 0,
                testing=i % 97 == 0,
                deprecated=i % 211 == 0,
                installed=(True, False, None)[i % 3],
                provenance=("curated", "discovered", "both")[i % 3],
                in_curated=i % 3 != 1,
                in_discovered=i % 3 != 0,
                field_sources={
                    "display_name": "curated",
                    "download_path": "discovered",
                },
                curated_raw=merged,
                fingerprint=hashlib.sha256(f"fp{i}".encode()).hexdigest(),
            )
        )
    ModelEntry.objects.bulk_create(rows, batch_size=1000)


def measure(
    client: Client, url: str, runs: int, **headers
) -> tuple[float, float, int, int]:
    client.get(url, **headers)  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        response = client.get(url, **headers)
        if hasattr(response, "streaming_content"):
            b"".join(response.streaming_content)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url, **headers)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return (
        statistics.median(times),
        p95,
        len(ctx.captured_queries),
        len(response.content),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument(
        "--profile",
        metavar="TEXT",
        help="cProfile 5 requests of the first case whose label contains TEXT",
    )
    args = parser.parse_args()

    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model

    t0 = time.perf_counter()
    seed(args.entries)
    print(
        f"seeded {args.entries} entries in {time.perf_counter() - t0:.1f}s into {TMP}"
    )
    user = get_user_model().objects.create_superuser("bench", "b@example.invalid", "x")
    client = Client()
    client.force_login(user)
    hx = {"HTTP_HX_REQUEST": "true"}
    cases = [
        ("Models page (full, 50 rows)", "/models/", {}),
        (
            "Filtered partial (vllm+caption+unlocked)",
            "/models/?backend=vllm&role=caption&lock=unlocked",
            hx,
        ),
        ("Fuzzy search partial (q=qwen vl awq)", "/models/?q=qwen+vl+awq", hx),
        ("Fuzzy search partial, typo (q=florance)", "/models/?q=florance", hx),
        ("Drawer partial", "/models/5000/", hx),
        ("CSV export (all matching rows)", "/models/?_export=csv", {}),
        (
            "Admin changelist (baseline, q=qwen)",
            "/admin/registry/modelentry/?q=qwen",
            {},
        ),
        (
            "Admin changelist (baseline, q=florance)",
            "/admin/registry/modelentry/?q=florance",
            {},
        ),
    ]
    if args.profile:
        import cProfile
        import pstats

        label, url, headers = next(c for c in cases if args.profile in c[0])
        client.get(url, **headers)
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(5):
            client.get(url, **headers)
        prof.disable()
        print(f"profile of 5 x {label}")
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        return
    print(f"{'case':45} {'median ms':>10} {'p95 ms':>9} {'queries':>8} {'bytes':>9}")
    for label, url, headers in cases:
        median, p95, queries, size = measure(client, url, args.runs, **headers)
        print(f"{label:45} {median:10.1f} {p95:9.1f} {queries:8d} {size:9d}")


if __name__ == "__main__":
    main()
