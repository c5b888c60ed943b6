"""Bounded load test: 50 signed-in users on a 10,000-entry registry, the production way.

Usage (from the repo root)::

    .venv/bin/python bench/load_test.py --db postgres   # PostgreSQL + Redis broker
    .venv/bin/python bench/load_test.py --db sqlite     # SQLite (WAL) + ORM broker

Options: ``--duration 60 --users 50 --workers 3 --threads 1 --entries 10000
--think 0.2:1.0``
``--keep`` (keep the temp folder / database), ``--pg-url``, ``--redis-url``,
``--py-spy`` (sample the workers during the window and print where the time goes),
``--summary FILE`` / ``--against FILE`` (keep a one-user run's medians, then print
another run's p95 over them: the issue's "p95 <= 3x the single-user median"),
``--timeline FILE`` (every request and background event with its start, to see what
a slow request ran beside).

What it does, all on 127.0.0.1 and stopping by itself:

1. Prepares a temp deployment: the sample registry (real little model folders, a
   locked entry to verify, vLLM entries to activate) plus ``--entries`` realistic
   entries copied from the real fixtures (``bench/bench_sync.py``) in a temp
   ``IMAGEWORKS_REGISTRY_DIR``; ``migrate``, ``registry_sync``, users via
   ``manage.py set_user`` (viewers + one operator).
2. Starts the site the production way: ``IMAGEWORKS_ENV=production`` (SECRET_KEY,
   ALLOWED_HOSTS=127.0.0.1, secure cookies, SSL redirect and HSTS all left ON),
   ``gunicorn imageworks_site.wsgi -w N`` and one ``manage.py qcluster``.
   The client plays the TLS-terminating reverse proxy: it sends
   ``X-Forwarded-Proto: https`` (settings trust it via SECURE_PROXY_SSL_HEADER)
   and an ``Origin: https://127.0.0.1:PORT`` header, and keeps the Secure cookies
   itself (an HTTP client will not send Secure cookies over plain http). No
   setting is weakened for the test; see docs/deploy.md.
3. ``--users`` virtual users log in through /login/ (CSRF) and, for ``--duration``
   seconds, open the Models page, filter (backend/role/lock/testing), fuzzy-search,
   open drawers (htmx partials), page through, poll the activation status and
   export CSV, with a random think time. In the background, as an operator:
   a sync (another tool rewrites the curated layer, then Reload is POSTed), a
   verify of a locked entry with real files, and an activation (fake vLLM from
   tests/fakes/fake_vllm.py) followed by a stop, each in a loop.
4. Prints requests/s, median and p95 latency per kind of request and the error
   counts; exits 1 on any 5xx or transport error (a proxy would show a 502).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.owned import (  # noqa: E402
    create_pg_database,
    drop_pg_database,
    free_port,
)
from bench.proc import manage  # noqa: E402

PY = sys.executable
VENV_BIN = Path(PY).parent
FAKE_VLLM = REPO / "tests" / "fakes" / "fake_vllm.py"
PASSWORD = "load-" + secrets.token_urlsafe(12)

SEARCHES = [
    "qwen",
    "qwen vl awq",
    "florance",
    "llama 8b",
    "siglip",
    "gemma3",
    "internvl",
    "gpt oss",
    "mistral",
    "00042",
    "caption",
]
ROLES = ["caption", "keywords", "description", "narration", "object_detection"]
BACKENDS = ["vllm", "ollama", "lmdeploy"]
LOCKS = ["locked", "unlocked"]


# --------------------------------------------------------------------------- setup


def build_registry(
    reg: Path, models: Path, entries: int, *, snapshot: bool = True
) -> None:
    """Sample registry (real model folders) + ``entries`` bench entries, both layers.

    With *snapshot*, the merged snapshot is written as the original writes it after
    every save; without it, the first write in the window materializes it (a one-time
    full rewrite of a 10k registry, not the steady state this test measures).
    """
    from bench.bench_sync import build_registry as build_bench
    from registry import layers, sample
    from registry.layers.style import snapshot_bytes

    sample.write_sample_registry(reg, models, force=True)
    bench_dir = reg.parent / "bench-layers"
    bench_dir.mkdir()
    build_bench(bench_dir, entries)
    for file_name in (layers.CURATED_FILE, layers.DISCOVERED_FILE):
        items = json.loads((reg / file_name).read_text())
        items += json.loads((bench_dir / file_name).read_text())
        (reg / file_name).write_bytes(layers.dumps(items))
    (reg / layers.SNAPSHOT_FILE).unlink(missing_ok=True)
    if snapshot:
        merged = layers.export_merged(layers.load_registry(reg))
        (reg / layers.SNAPSHOT_FILE).write_bytes(snapshot_bytes(merged))
    shutil.rmtree(bench_dir)


LOOKUP = """
import json
from registry.models import ModelEntry
qs = ModelEntry.objects
pks = list(qs.filter(testing=False).values_list("pk", flat=True))
print(json.dumps({
    "verify": qs.get(name="siglip-large-patch16-384_(FP32)").pk,
    "activate": qs.get(name="qwen2.5-vl-7b-instruct_(AWQ)").pk,
    "total": qs.count(),
    "pks": pks,
}))
"""


def start(argv: list[str], env: dict, log: Path, cwd: Path = REPO) -> subprocess.Popen:
    return subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # own process group: stopped as a whole
    )


def stop_group(proc: subprocess.Popen, grace: float = 15.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    except ProcessLookupError:
        pass


def kill_fakes(owner: str) -> int:
    """SIGKILL the process groups of fake vLLM servers started for this run."""
    import psutil

    killed = 0
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if str(FAKE_VLLM) in (proc.info["cmdline"] or []) and (
                proc.environ().get("FAKE_VLLM_OWNER") == owner
            ):
                os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
                killed += 1
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    return killed


# --------------------------------------------------------------------------- client


@dataclass
class Stats:
    lat: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    codes: dict[str, dict[int, int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(int))
    )
    errors: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    notes: list[str] = field(default_factory=list)
    started: float = 0.0
    deadline: float = 0.0
    ended: float = 0.0
    users: int = 0
    #: (wall-clock start, kind, ms, status) of every request, for ``--timeline``
    timeline: list[tuple[float, str, float, int]] = field(default_factory=list)

    def add(self, kind: str, status: int, seconds: float) -> None:
        self.lat[kind].append(seconds * 1000)
        self.codes[kind][status] += 1
        self.timeline.append((time.time() - seconds, kind, seconds * 1000, status))

    def note(self, text: str) -> None:
        """A background event, stamped with the wall clock (for ``--timeline``)."""
        self.notes.append(text)
        self.timeline.append((time.time(), "event: " + text, 0.0, 0))


class Session:
    """One browser: its own connection, Secure cookies kept by hand, CSRF token."""

    def __init__(self, base: str, stats: Stats, expected: dict[str, set[int]]):
        self.base = base
        self.stats = stats
        self.expected = expected
        self.cookies: dict[str, str] = {}
        self.client = httpx.AsyncClient(
            base_url=base,
            timeout=httpx.Timeout(120.0),
            follow_redirects=False,
            headers={
                # The reverse proxy terminating TLS says so (SECURE_PROXY_SSL_HEADER).
                "X-Forwarded-Proto": "https",
                "User-Agent": "imageworks-load-test",
            },
        )
        self.origin = "https://" + base.split("://", 1)[1]

    async def close(self) -> None:
        await self.client.aclose()

    def _keep_cookies(self, response: httpx.Response) -> None:
        for header in response.headers.get_list("set-cookie"):
            jar = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value

    async def request(
        self,
        kind: str,
        method: str,
        url: str,
        *,
        htmx: bool = False,
        data: dict | None = None,
        extra: dict | None = None,
    ) -> httpx.Response | None:
        headers = dict(extra or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if htmx:
            headers["HX-Request"] = "true"
        if method == "POST":
            headers["Origin"] = self.origin
            headers["X-CSRFToken"] = self.cookies.get("csrftoken", "")
        t0 = time.perf_counter()
        try:
            response = await self.client.request(
                method, url, headers=headers, data=data
            )
            await response.aread()
        except httpx.HTTPError as exc:
            self.stats.add(kind, 599, time.perf_counter() - t0)
            self.stats.errors[kind].append(f"{method} {url}: {exc!r}")
            return None
        self.stats.add(kind, response.status_code, time.perf_counter() - t0)
        self._keep_cookies(response)
        if response.status_code not in self.expected.get(kind, {200}):
            self.stats.errors[kind].append(
                f"{method} {url} -> {response.status_code} {response.text[:200]!r}"
            )
        return response

    async def login(self, username: str) -> bool:
        page = await self.request("login page", "GET", "/login/")
        if page is None:
            return False
        m = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        response = await self.request(
            "login POST",
            "POST",
            "/login/",
            data={
                "csrfmiddlewaretoken": m.group(1) if m else "",
                "username": username,
                "password": PASSWORD,
            },
        )
        return response is not None and response.status_code == 302


EXPECTED = {
    "login POST": {302},
    "models page": {200},
    "filter (htmx)": {200},
    "search (htmx)": {200},
    "page through (htmx)": {200},
    "drawer (htmx)": {200},
    "csv export (filtered)": {200},
    "csv export (all)": {200},
    "status poll (htmx)": {200, 204, 286},
    "backend card (htmx)": {200, 286},
    "reload POST": {302},
    "verify POST": {302, 409},
    "job poll (htmx)": {200, 286},
    "activate POST": {202, 409},
    "stop POST": {202, 409},
}


def pick_action(rng: random.Random, pks: list[int]) -> tuple[str, str, bool]:
    r = rng.random()
    if r < 0.14:
        return "models page", "/models/", False
    if r < 0.36:
        params = []
        if rng.random() < 0.7:
            params.append(f"backend={rng.choice(BACKENDS)}")
        if rng.random() < 0.5:
            params.append(f"role={rng.choice(ROLES)}")
        if rng.random() < 0.5:
            params.append(f"lock={rng.choice(LOCKS)}")
        if rng.random() < 0.2:
            params.append("testing=on")
        return "filter (htmx)", "/models/?" + "&".join(params or ["lock=locked"]), True
    if r < 0.56:
        q = rng.choice(SEARCHES).replace(" ", "+")
        return "search (htmx)", f"/models/?q={q}", True
    if r < 0.68:
        page = rng.randint(2, 150)
        sort = rng.choice(["", "&sort=name", "&sort=-backend"])
        return "page through (htmx)", f"/models/?page={page}{sort}", True
    if r < 0.86:
        return "drawer (htmx)", f"/models/{rng.choice(pks)}/", True
    if r < 0.93:
        return "status poll (htmx)", "/backends/vllm/status/", True
    if r < 0.97:
        return "backend card (htmx)", f"/models/cards/{rng.choice(BACKENDS)}/", True
    if r < 0.995:
        return (
            "csv export (filtered)",
            f"/models/?_export=csv&backend={rng.choice(BACKENDS)}&lock={rng.choice(LOCKS)}",
            False,
        )
    return "csv export (all)", "/models/?_export=csv", False


async def user_loop(
    i: int, session: Session, pks: list[int], deadline: float, think
) -> None:
    rng = random.Random(i)
    # Users arrive spread over one think time, as people do (and as load tools ramp
    # up): all 50 opening a page in the same millisecond measures a burst, not a load.
    await asyncio.sleep(rng.uniform(0, think[1]))
    while time.monotonic() < deadline:
        kind, url, htmx = pick_action(rng, pks)
        await session.request(kind, "GET", url, htmx=htmx)
        await asyncio.sleep(rng.uniform(*think))


async def wait_job(session: Session, job_id: int, deadline: float) -> str:
    """Poll the job status partial (like htmx does) until it ends; its final text."""
    while time.monotonic() < deadline + 30:
        r = await session.request(
            "job poll (htmx)", "GET", f"/jobs/{job_id}/status/", htmx=True
        )
        if r is not None and r.status_code == 286:
            text = re.sub(r"<[^>]+>", " ", r.text)
            return " ".join(text.split())[:160]
        await asyncio.sleep(0.5)
    return "still running at the deadline"


def rewrite_curated(reg: Path, index: int) -> None:
    """Another tool edits the curated layer (temp file + rename, as editors do)."""
    path = reg / "model_registry.curated.json"
    items = json.loads(path.read_text())
    target = items[-1 - (index % 50)]
    target["display_name"] = f"{target['name']} (edited by another tool #{index})"
    tmp = path.with_suffix(".other-tool.tmp")
    tmp.write_text(json.dumps(items, indent=2) + "\n")
    os.replace(tmp, path)


async def sync_loop(session, stats, reg: Path, deadline, every: float) -> None:
    n = 0
    if every <= 0:
        stats.note("background sync disabled (--sync-every 0)")
        return
    await asyncio.sleep(3)
    while time.monotonic() < deadline:
        n += 1
        stats.note(f"sync #{n}: another tool rewrites the curated layer")
        # Another tool is another process: parsing and writing 66 MB of JSON in this
        # one would hold the GIL and stall every simulated user's event loop, and the
        # measured latencies with it.
        tool = await asyncio.create_subprocess_exec(
            PY,
            "-c",
            "import sys; sys.path.insert(0, sys.argv[1]);"
            "from pathlib import Path; from bench.load_test import rewrite_curated;"
            "rewrite_curated(Path(sys.argv[2]), int(sys.argv[3]))",
            str(REPO),
            str(reg),
            str(n),
        )
        if await tool.wait():
            stats.note(f"sync #{n}: the outside rewrite failed ({tool.returncode})")
        r = await session.request(
            "reload POST", "POST", "/models/reload/", data={"next": "/models/"}
        )
        if r is not None:
            stats.note(f"sync #{n}: reload -> {r.status_code}")
        await asyncio.sleep(every)


async def verify_loop(session, stats, pk: int, deadline) -> None:
    n = 0
    while time.monotonic() < deadline:
        n += 1
        stats.note(f"verify #{n}: POST")
        r = await session.request("verify POST", "POST", f"/models/{pk}/verify/")
        m = re.search(r"/jobs/(\d+)/", r.headers.get("location", "")) if r else None
        if m:
            result = await wait_job(session, int(m.group(1)), deadline)
            stats.note(f"verify #{n}: {result}")
        await asyncio.sleep(2)


async def activation_loop(session, stats, pk: int, deadline) -> None:
    n = 0
    while time.monotonic() < deadline:
        n += 1
        for kind, url, data in (
            # The sample's vLLM entries are placeholders (no weights): the activation
            # overrides the failed preflight with a reason, as an operator would.
            (
                "activate POST",
                f"/backends/vllm/activate/{pk}/",
                {"override_preflight": "1", "reason": "load test: sample entry"},
            ),
            ("stop POST", "/backends/vllm/stop/", {"entry": str(pk)}),
        ):
            stats.note(f"{kind.split()[0]} #{n}: POST")
            r = await session.request(kind, "POST", url, htmx=True, data=data)
            m = re.search(r"job=(\d+)", r.text) if r is not None else None
            if r is not None and r.status_code == 202 and m:
                result = await wait_job(session, int(m.group(1)), deadline)
                stats.note(f"{kind.split()[0]} #{n}: {result}")
            elif r is not None:
                stats.note(f"{kind.split()[0]} #{n}: {r.status_code}")
            await asyncio.sleep(2)


def write_timeline(stats: Stats, path: Path) -> None:
    """Every request and background event in start order, seconds from the window's
    start: where a slow request sits next to a sync, verify or activation."""
    start = time.time() - (time.monotonic() - stats.started)
    rows = sorted(stats.timeline)
    with path.open("w") as fh:
        fh.write("t_s\tkind\tms\tstatus\n")
        for at, kind, ms, status in rows:
            fh.write(f"{at - start:.3f}\t{kind}\t{ms:.1f}\t{status}\n")
    print(f"timeline of {len(rows)} requests and events: {path}")


class HostSampler(threading.Thread):
    """For ``--timeline``: what else ran on the host during the window.

    Every 0.25 s: PostgreSQL's autovacuum workers on the run's database (an event when
    one starts or ends) and every process that used more than 40 % of a CPU since the
    last look (psutil), so a slow request can be put beside what competed with it.
    """

    def __init__(self, stats: Stats, db_url: str | None):
        super().__init__(daemon=True)
        self.stats, self.db_url = stats, db_url
        self.halt = threading.Event()

    def run(self) -> None:
        import psutil

        conn = None
        if self.db_url:
            import psycopg

            conn = psycopg.connect(self.db_url, autocommit=True)
        procs: dict[int, psutil.Process] = {}
        vacuuming: set[str] = set()
        while not self.halt.wait(0.25):
            if conn is not None:
                rows = conn.execute(
                    "SELECT query FROM pg_stat_activity "
                    "WHERE backend_type = 'autovacuum worker' "
                    "AND datname = current_database()"
                ).fetchall()
                now = {q for (q,) in rows}
                for q in now - vacuuming:
                    self.stats.note(f"host: {q} started")
                for q in vacuuming - now:
                    self.stats.note(f"host: {q} ended")
                vacuuming = now
            for proc in psutil.process_iter(["name"]):
                seen = procs.setdefault(proc.pid, proc)
                try:
                    busy = seen.cpu_percent(None)
                except psutil.Error:
                    continue
                if busy > 40:
                    try:
                        what = " ".join(seen.cmdline()[:3])[-60:] or seen.name()
                    except psutil.Error:
                        what = str(proc.pid)
                    self.stats.note(f"host: {busy:.0f}% cpu {proc.pid} {what}")
        if conn is not None:
            conn.close()


def spy_on_workers(parent: subprocess.Popen, seconds: float, folder: Path):
    """py-spy every worker process of *parent* (gunicorn's workers, or the task
    cluster's) for the measured window (``--py-spy``)."""
    import psutil

    from bench import spy

    workers = [p.pid for p in psutil.Process(parent.pid).children(recursive=True)]
    spy.record(workers, seconds, folder)
    return [folder / f"py-spy-{pid}.txt" for pid in workers]


async def run_load(
    args, base: str, reg: Path, lookup: dict, on_start=None, on_stats=None
) -> Stats:
    stats = Stats(users=args.users)
    if on_stats is not None:
        on_stats(stats)
    think = tuple(float(x) for x in args.think.split(":"))
    # Phase 1: everyone signs in (staggered over ~5 s; PBKDF2 makes logins CPU-heavy).
    sessions = [Session(base, stats, EXPECTED) for _ in range(args.users + 1)]

    async def sign_in(i: int, session: Session) -> None:
        await asyncio.sleep(i * 5.0 / len(sessions))
        name = "loadop" if i == args.users else f"load{i % 10:02d}"
        if not await session.login(name):
            stats.note(f"{name}: login failed")

    t0 = time.monotonic()
    await asyncio.gather(*(sign_in(i, s) for i, s in enumerate(sessions)))
    stats.note(
        f"{len(sessions)} sign-ins took {time.monotonic() - t0:.1f} s (not in the window)"
    )
    # Phase 2: the measured window.
    if on_start is not None:
        on_start()
    stats.started = time.monotonic()
    deadline = stats.deadline = stats.started + args.duration
    operator = sessions[-1]
    tasks = [
        user_loop(i, sessions[i], lookup["pks"], deadline, think)
        for i in range(args.users)
    ]
    tasks += [
        sync_loop(operator, stats, reg, deadline, args.sync_every),
        verify_loop(operator, stats, lookup["verify"], deadline),
        activation_loop(operator, stats, lookup["activate"], deadline),
    ]
    await asyncio.gather(*tasks)
    stats.ended = time.monotonic()
    for session in sessions:
        await session.close()
    return stats


def report(stats: Stats, title: str) -> tuple[int, int]:
    wall = stats.deadline - stats.started  # users stop at the deadline
    total = sum(len(v) for k, v in stats.lat.items() if not k.startswith("login"))
    print(f"\n=== {title} ===")
    print(
        f"{total} requests (sign-ins excluded) in {wall:.1f} s = {total / wall:.1f} requests/s "
        f"(background jobs drained {stats.ended - stats.deadline:.1f} s after); "
        f"host load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    header = f"{'kind':<24}{'count':>7}{'rps':>8}{'median ms':>11}{'p95 ms':>9}{'max ms':>9}  statuses"
    print(header)
    print("-" * len(header))
    n5xx = transport = 0
    for kind in sorted(stats.lat, key=lambda k: -len(stats.lat[k])):
        times = sorted(stats.lat[kind])
        p95 = percentile_95(times)
        codes = " ".join(f"{c}:{n}" for c, n in sorted(stats.codes[kind].items()))
        print(
            f"{kind:<24}{len(times):>7}{len(times) / wall:>8.2f}"
            f"{statistics.median(times):>11.0f}{p95:>9.0f}{times[-1]:>9.0f}  {codes}"
        )
        n5xx += sum(n for c, n in stats.codes[kind].items() if 500 <= c < 599)
        transport += stats.codes[kind].get(599, 0)
    unexpected = sum(len(v) for v in stats.errors.values())
    print(f"errors: 5xx={n5xx} transport={transport} unexpected-status={unexpected}")
    for kind, errs in stats.errors.items():
        for err in errs[:3]:
            print(f"  {kind}: {err}")
    print("background:")
    for note in stats.notes:
        if not note.startswith("host: "):  # the sampler's, for the timeline only
            print(f"  {note}")
    return n5xx, transport


def percentile_95(times: list[float]) -> float:
    """The p95 the report prints: the sample at 95 % of the sorted list."""
    times = sorted(times)
    return times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]


def summarize(stats: Stats) -> dict[str, dict[str, float]]:
    return {
        kind: {
            "count": len(times),
            "median_ms": round(statistics.median(times), 2),
            "p95_ms": round(percentile_95(times), 2),
        }
        for kind, times in stats.lat.items()
    }


#: The issue's goal: under load, p95 at most this many times the one-user median.
RATIO_GOAL = 3.0
GOAL_KINDS = ("models page", "filter (htmx)", "search (htmx)", "drawer (htmx)")


def print_ratios(loaded: dict, alone: dict) -> None:
    """Each kind's p95 under this run's load over its median in a one-user run."""
    print(f"\np95 here / one-user median (goal <= {RATIO_GOAL:.0f}x):")
    for kind in GOAL_KINDS + tuple(k for k in loaded if k not in GOAL_KINDS):
        if kind not in loaded or kind not in alone:
            continue
        ratio = loaded[kind]["p95_ms"] / alone[kind]["median_ms"]
        mark = (
            ("meets" if ratio <= RATIO_GOAL else "MISSES") if kind in GOAL_KINDS else ""
        )
        print(
            f"  {kind:<24}{loaded[kind]['p95_ms']:>8.1f} / "
            f"{alone[kind]['median_ms']:>6.1f} ms = {ratio:4.2f}x  {mark}"
        )


# --------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads per gunicorn worker (> 1: the gthread worker class)",
    )
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--think", default="0.2:1.0", help="think time range (s)")
    parser.add_argument(
        "--sync-every", type=float, default=30.0, help="0 disables the background sync"
    )
    parser.add_argument(
        "--pg-url", default="postgresql://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--keep", action="store_true", help="keep temp dir and DB")
    parser.add_argument(
        "--no-snapshot",
        action="store_true",
        help="start without the merged snapshot: the first write in the window rebuilds it",
    )
    parser.add_argument(
        "--timeline",
        metavar="FILE",
        help="write every request and background event (start, kind, ms) to FILE",
    )
    parser.add_argument(
        "--summary",
        metavar="FILE",
        help="write each kind's count, median and p95 (ms, unrounded) to FILE as JSON",
    )
    parser.add_argument(
        "--against",
        metavar="FILE",
        help="a --summary of a one-user run: print each kind's p95 over its median",
    )
    parser.add_argument(
        "--py-spy",
        action="store_true",
        help="sample the gunicorn workers during the window (pip install py-spy)",
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix=f"imageworks-load-{args.db}-"))
    reg, models, var = tmp / "configs", tmp / "models", tmp / "var"
    var.mkdir()
    owner = f"load-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    port, vllm_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IMAGEWORKS_", "DATABASE_URL", "DJANGO_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "imageworks_site.settings",
            "IMAGEWORKS_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "127.0.0.1",
            "DEBUG": "0",
            "LOG_LEVEL": "WARNING",
            "IMAGEWORKS_VAR_DIR": str(var),
            "IMAGEWORKS_REGISTRY_DIR": str(reg),
            "IMAGEWORKS_STAGING_DIR": str(tmp / "_staging"),
            "IMAGEWORKS_LOG_DIR": str(var / "logs"),
            "IMAGEWORKS_MODEL_ROOTS": str(models),
            "IMAGEWORKS_VLLM_LAUNCHER": f"{PY} {FAKE_VLLM}",
            "IMAGEWORKS_VLLM_PORT": str(vllm_port),
            "IMAGEWORKS_VLLM_START_TIMEOUT": "30",
            "IMAGEWORKS_VLLM_STOP_GRACE": "5",
            "IMAGEWORKS_VLLM_ENV_ALLOWLIST": "PATH,FAKE_VLLM_OWNER,FAKE_VLLM_READY_DELAY",
            "FAKE_VLLM_OWNER": owner,
            "FAKE_VLLM_READY_DELAY": "1.0",
            "IMAGEWORKS_OLLAMA_URL": f"http://127.0.0.1:{free_port()}",
            "IMAGEWORKS_Q_WORKERS": "2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    db_name = ""
    # Our own task queue name: the Redis list ``django_q:<name>:q`` is ours alone,
    # whoever else uses that Redis database; only that key is deleted at the end.
    env["IMAGEWORKS_Q_CLUSTER_NAME"] = owner.replace("-", "_")
    if args.db == "postgres":
        db_name, env["DATABASE_URL"] = create_pg_database(args.pg_url, "iw_load")
        env["IMAGEWORKS_REDIS_URL"] = args.redis_url
    else:
        env["IMAGEWORKS_SQLITE_PATH"] = str(var / "load.sqlite3")

    procs: list[subprocess.Popen] = []
    code = 0
    try:
        t0 = time.perf_counter()
        build_registry(reg, models, args.entries, snapshot=not args.no_snapshot)
        manage(env, "migrate", "-v0")
        t1 = time.perf_counter()
        sync_out = manage(env, "registry_sync").strip().splitlines()[-1]
        t2 = time.perf_counter()
        env["LOAD_PASSWORD"] = PASSWORD
        manage(
            env,
            "set_user",
            "loadop",
            "--role",
            "operator",
            "--password-env",
            "LOAD_PASSWORD",
        )
        for i in range(min(10, args.users)):
            manage(
                env,
                "set_user",
                f"load{i:02d}",
                "--role",
                "viewer",
                "--password-env",
                "LOAD_PASSWORD",
            )
        lookup = json.loads(manage(env, "shell", "-c", LOOKUP).strip().splitlines()[-1])
        print(
            f"prepared {tmp}: {lookup['total']} entries, db={args.db}; "
            f"build+migrate {t1 - t0:.1f}s, cold registry_sync {t2 - t1:.1f}s ({sync_out})"
        )
        gunicorn = [
            str(VENV_BIN / "gunicorn"),
            "imageworks_site.wsgi",
            "-w",
            str(args.workers),
            "-b",
            f"127.0.0.1:{port}",
            "--timeout",
            "120",
            "--graceful-timeout",
            "10",
        ]
        if args.threads > 1:
            # Idle keep-alive connections must outlive the client's own expiry
            # (httpx: 5 s): with gunicorn's default of 2 s the server closes a
            # connection the client is about to reuse, and that request fails with
            # "server disconnected" (a proxy in front handles this the same way).
            gunicorn += ["-k", "gthread", "--threads", str(args.threads)]
            gunicorn += ["--keep-alive", "10"]
        procs.append(start(gunicorn, env, var / "gunicorn.log"))
        procs.append(start([PY, "manage.py", "qcluster"], env, var / "qcluster.log"))
        for _ in range(300):
            try:
                r = httpx.get(
                    base + "/login/", headers={"X-Forwarded-Proto": "https"}, timeout=2
                )
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if procs[0].poll() is not None:
                raise SystemExit(f"gunicorn exited; see {var / 'gunicorn.log'}")
            time.sleep(0.2)
        print(
            f"site on {base} (gunicorn -w {args.workers}, IMAGEWORKS_ENV=production), "
            f"qcluster up; {args.users} users for {args.duration:.0f}s; "
            f"host load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        spied: list[Path] = []
        spied_jobs: list[Path] = []

        sampler = None

        def on_start() -> None:
            nonlocal sampler
            if args.py_spy:
                spied.extend(spy_on_workers(procs[0], args.duration, var))
                spied_jobs.extend(spy_on_workers(procs[1], args.duration, var))
            if args.timeline:
                sampler = HostSampler(stats_box[0], env.get("DATABASE_URL"))
                sampler.start()

        stats_box: list[Stats] = []
        stats = asyncio.run(
            run_load(args, base, reg, lookup, on_start, stats_box.append)
        )
        if sampler is not None:
            sampler.halt.set()
            sampler.join()
        title = (
            "PostgreSQL + Redis broker"
            if args.db == "postgres"
            else "SQLite (WAL) + ORM broker"
        )
        n5xx, transport = report(
            stats, f"{title}, gunicorn -w {args.workers}, {args.users} users"
        )
        if args.timeline:
            write_timeline(stats, Path(args.timeline))
        summary = summarize(stats)
        if args.summary:
            Path(args.summary).write_text(json.dumps(summary, indent=2) + "\n")
        if args.against:
            print_ratios(summary, json.loads(Path(args.against).read_text()))
        if spied:
            from bench import spy

            time.sleep(3)  # py-spy writes its file when its duration ends
            spy.report(spied, f"all {args.workers} gunicorn workers, measured window")
            spy.report(spied_jobs, "the task cluster's processes, measured window")
        if n5xx or transport:
            print(f"FAIL: {n5xx} 5xx responses, {transport} transport errors")
            code = 1
    finally:
        for proc in reversed(procs):
            stop_group(proc)
        killed = kill_fakes(owner)
        if killed:
            print(f"killed {killed} leftover fake vLLM process(es)")
        if args.db == "postgres":
            import redis

            queue_key = f"django_q:{env['IMAGEWORKS_Q_CLUSTER_NAME']}:q"
            redis.Redis.from_url(args.redis_url).delete(queue_key)
        if db_name and not args.keep:
            drop_pg_database(args.pg_url, db_name)
        if args.keep:
            print(
                f"kept {tmp}"
                + (f" and database {db_name}" if args.db == "postgres" else "")
            )
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
