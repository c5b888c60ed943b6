"""Benchmark: the loader protocol (/v1/select, /v1/models) at 10,000 entries, over HTTP.

Usage (from the repo root):

    .venv/bin/python bench/bench_api.py [--entries 10000] [--runs 200] [--db sqlite]
    .venv/bin/python bench/bench_api.py --db postgres --pg-url postgresql://postgres@127.0.0.1:5432/postgres

Builds a throwaway deployment in a temp folder (real-sized entries from
``bench/bench_sync.py``; SQLite there, or a fresh PostgreSQL database
``api_bench_<random>``), syncs it, creates an operator and a read token with
``manage.py``, starts ``gunicorn -w 1`` on a free 127.0.0.1 port, and then times,
alternating request by request:

* ``POST /v1/select`` (token auth, capability check, endpoint) vs a bare Django
  ``JsonResponse`` of the same row (``bench/api_baseline.py``);
* ``GET /v1/models`` (token auth, every entry with its 47-key capability map), gzipped
  as httpx asks for it and plain (``Accept-Encoding: identity``), vs a bare
  ``JsonResponse`` of the same columns; plus the first ``/v1/models`` after a
  registry change (the payload is rebuilt, not served from the per-process copy),
  and a poll that sends the last ``ETag`` back (``If-None-Match``: 304, no body).

Prints median, p10-p90 and p95 in ms, and for our requests also the time to the
response headers (the server's time plus one loopback round trip: what is left
is the client reading and decoding the body). Deletes only the temp folder and the database
it created.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.owned import create_pg_database, drop_pg_database  # noqa: E402
from bench.proc import manage  # noqa: E402

PY = sys.executable
GUNICORN = Path(PY).parent / "gunicorn"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stats(samples: list[float]) -> str:
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=20)
    return (
        f"median {statistics.median(ordered):7.2f}  p10-p90 {q[1]:7.2f}-{q[17]:7.2f}"
        f"  p95 {q[18]:7.2f}  (n={len(ordered)})"
    )


#: Time to the response headers of the last ``timed`` call (ms): gunicorn's sync
#: worker sends them once the view returned, so this is the server's time plus one
#: loopback round trip, without the client reading and decoding the body.
LAST_TTFB: list[float] = []


def timed(
    client: httpx.Client, method: str, url: str, *, expect: int = 200, **kwargs
) -> tuple[float, int]:
    start = time.perf_counter()
    with client.stream(method, url, **kwargs) as response:
        LAST_TTFB[:] = [(time.perf_counter() - start) * 1000]
        body = response.read()  # the whole body has arrived (and is decoded)
    elapsed = (time.perf_counter() - start) * 1000
    if response.status_code != expect:
        raise SystemExit(f"{method} {url} -> {response.status_code}: {body[:300]!r}")
    return elapsed, len(body)


def prepare(tmp: Path, args) -> dict:
    from bench.bench_sync import build_registry

    reg = tmp / "configs"
    reg.mkdir(parents=True)
    build_registry(reg, args.entries)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IMAGEWORKS_", "DATABASE_URL", "DJANGO_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="bench.api_baseline",
        IMAGEWORKS_VAR_DIR=str(tmp / "var"),
        IMAGEWORKS_SQLITE_PATH=str(tmp / "var" / "bench.sqlite3"),
        IMAGEWORKS_REGISTRY_DIR=str(reg),
        IMAGEWORKS_STAGING_DIR=str(tmp / "_staging"),
        IMAGEWORKS_LOG_DIR=str(tmp / "logs"),
        SECRET_KEY=secrets.token_urlsafe(40),
        PYTHONPATH=str(REPO),
    )
    if args.db == "postgres":
        args.db_name, env["DATABASE_URL"] = create_pg_database(args.pg_url, "api_bench")
    manage(env, "migrate", "--noinput")
    manage(env, "registry_sync", "--force")
    manage(
        env,
        "set_user",
        "bench",
        "--role",
        "operator",
        "--password",
        secrets.token_urlsafe(16),
    )
    env["BENCH_TOKEN"] = manage(
        env, "api_token", "create", "bench", "--label", "bench", "--scope", "read"
    ).strip()
    return env


def run(base: str, env: dict, args) -> None:
    auth = {"Authorization": f"Bearer {env['BENCH_TOKEN']}"}
    names = []
    for offset in (0, args.entries // 3, args.entries // 2, args.entries - 1):
        page = httpx.get(
            f"{base}/api/v1/entries?limit=1&offset={offset}&testing=1&deprecated=1",
            headers=auth,
            timeout=120,
            trust_env=False,
        ).json()
        names += [item["name"] for item in page["items"]]
    with httpx.Client(base_url=base, timeout=60, trust_env=False) as client:
        # Warm both paths (imports, the per-process /v1/models copy).
        for _ in range(3):
            timed(client, "POST", "/v1/select", json={"name": names[0]}, headers=auth)
            timed(client, "GET", "/bench/select/" + names[0])
            timed(client, "GET", "/v1/models", headers=auth)
            timed(client, "GET", "/bench/models")
        ours, base_sel, ours_ttfb = [], [], []
        for i in range(args.runs):
            name = names[i % len(names)]
            ours.append(
                timed(
                    client,
                    "POST",
                    "/v1/select",
                    json={"name": name, "require_capabilities": ["text"]},
                    headers=auth,
                )[0]
            )
            ours_ttfb.append(LAST_TTFB[0])
            base_sel.append(timed(client, "GET", "/bench/select/" + name)[0])
        print(f"POST /v1/select        {stats(ours)}")
        print(f"  to the headers       {stats(ours_ttfb)}")
        print(f"baseline JsonResponse  {stats(base_sel)}")
        models, plain, base_models, size = [], [], [], 0
        models_ttfb, plain_ttfb, polls = [], [], []
        identity = {**auth, "Accept-Encoding": "identity"}
        etag = client.get("/v1/models", headers=auth).headers.get("ETag")
        for _ in range(max(10, args.runs // 10)):
            ms, size = timed(client, "GET", "/v1/models", headers=auth)
            models.append(ms)
            models_ttfb.append(LAST_TTFB[0])
            plain.append(timed(client, "GET", "/v1/models", headers=identity)[0])
            plain_ttfb.append(LAST_TTFB[0])
            base_models.append(timed(client, "GET", "/bench/models")[0])
            if etag:
                polls.append(
                    timed(
                        client,
                        "GET",
                        "/v1/models",
                        expect=304,
                        headers={**auth, "If-None-Match": etag},
                    )[0]
                )
        print(f"GET /v1/models (gzip)  {stats(models)}  body {size / 1e6:.1f} MB")
        print(f"  to the headers       {stats(models_ttfb)}")
        print(f"GET /v1/models (plain) {stats(plain)}")
        print(f"  to the headers       {stats(plain_ttfb)}")
        if polls:
            print(f"GET /v1/models, If-None-Match (304) {stats(polls)}")
        print(f"baseline JsonResponse  {stats(base_models)}")
    cold = []
    for _ in range(args.cold_runs):
        # Another tool changes one entry: the next /v1/models rebuilds its payload.
        bump = (
            "from registry.models import ModelEntry;"
            "e=ModelEntry.objects.order_by('?').first(); e.save(update_fields=['last_updated'])"
        )
        manage(env, "shell", "-c", bump)
        with httpx.Client(base_url=base, timeout=60, trust_env=False) as client:
            cold.append(timed(client, "GET", "/v1/models", headers=auth)[0])
    print(
        f"GET /v1/models, first after a change  {stats(cold) if len(cold) >= 2 else cold}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres"
    )
    args = parser.parse_args()
    args.db_name = None  # set once the bench has created its own database
    tmp = Path(tempfile.mkdtemp(prefix="imageworks-bench-api-"))
    server = None
    try:
        print(f"preparing {args.entries} entries ({args.db}) in {tmp} ...", flush=True)
        env = prepare(tmp, args)
        port = free_port()
        server = subprocess.Popen(
            [
                str(GUNICORN),
                "imageworks_site.wsgi",
                "-w",
                "1",
                "-b",
                f"127.0.0.1:{port}",
                "--timeout",
                "120",
            ],
            cwd=REPO,
            env=env,
            stdout=(tmp / "gunicorn.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                httpx.get(base + "/login/", timeout=1, trust_env=False)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        print(f"gunicorn -w 1 on {base}; {args.runs} alternating runs", flush=True)
        run(base, env, args)
    finally:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(15)
        if args.db_name:
            drop_pg_database(args.pg_url, args.db_name)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
