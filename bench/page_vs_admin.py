"""Bench: our Models page and partials against the Django admin, through real HTTP.

Usage (from the repo root)::

    .venv/bin/python bench/page_vs_admin.py [--entries 10000] [--samples 30]
        [--workers 1] [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--keep] [--baseline DIR]

What it does, all on 127.0.0.1, in a temp folder it creates and removes:

1. Writes a realistic registry of ``--entries`` entries in both layers (the shapes of
   ``bench/bench_sync.py``), migrates a new SQLite file (or, with ``--database-url``,
   a database it creates on that server and drops at the end), runs
   ``manage.py registry_sync`` and adds one superuser.
2. Starts ``gunicorn imageworks_site.wsgi`` on a free port with the production
   settings (``IMAGEWORKS_ENV=production``, ``DEBUG=0``); the client plays the TLS
   proxy (``X-Forwarded-Proto: https``) and keeps the Secure cookies itself.
3. Signs in once, warms both sides up, then takes ``--samples`` rounds. In each
   round every pair runs once, ours and the admin's back to back, the order
   alternating between rounds, so both see the same machine load:

   =====================  ====================================  ======================
   pair                   ours                                  Django admin
   =====================  ====================================  ======================
   Models page            ``/models/``                          changelist
   filtered partial       ``/models/?backend=..&lock=..`` (htmx) list filter
   search partial         ``/models/?q=..`` (htmx)              ``?q=`` (same text)
   search, new text       the same with a number no round used  the same
   drawer                 ``/models/<pk>/`` (htmx)              change view
   CSV export             ``/models/?_export=csv`` (all rows)   (none: absolute goal)
   =====================  ====================================  ======================

With ``--baseline DIR`` (another checkout with the same migrations, e.g.
``git archive BASE | tar -x -C DIR``), a second gunicorn serves DIR's code on the same
database and registry, and each of our requests alternates with the same request to
it: before and after a change, in one run.

Prints, per request: median, p95 and spread (min and max around the median) in ms,
the median response size, and the ratio ours/admin of the medians (and of each round's pair).
Cache-busting: each round uses a different search text, filter value and drawer row
from fixed lists, identical for both sides.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from bench.owned import free_port, own_pg_database  # noqa: E402
from bench.proc import manage  # noqa: E402

PY = sys.executable
VENV_BIN = Path(PY).parent
PASSWORD = "bench-" + secrets.token_urlsafe(12)
ADMIN = "/admin/registry/modelentry/"
SEARCHES = ["qwen vl awq", "florance", "llama 8b", "siglip", "gemma3", "gpt oss"]
FILTERS = [
    ("backend=vllm&lock=unlocked", "backend=vllm&locked__exact=0"),
    ("backend=ollama", "backend=ollama"),
    ("backend=vllm", "backend=vllm"),
    ("backend=ollama&lock=unlocked", "backend=ollama&locked__exact=0"),
]
HX = {"HX-Request": "true"}
NEW_TEXT = itertools.count(1)  # "search, new text": a number no request used before


class ServerCpu:
    """CPU time the server spent (gunicorn workers + their PostgreSQL backends), in
    ns, from ``/proc/<pid>/task/*/schedstat``: unlike wall time, it does not grow when
    other work on the machine delays the request."""

    def __init__(self, gunicorn_pid: int, db_name: str | None):
        import psutil

        self.master = psutil.Process(gunicorn_pid)
        self.db_marker = f" {db_name} " if db_name else None

    def pids(self) -> set[int]:
        import psutil

        pids = {p.pid for p in self.master.children(recursive=True)}
        if self.db_marker:
            for proc in psutil.process_iter(["name", "cmdline"]):
                cmd = " ".join(proc.info["cmdline"] or []) + " "
                if cmd.startswith("postgres: ") and self.db_marker in cmd:
                    pids.add(proc.pid)
        return pids

    @staticmethod
    def used(pids: set[int]) -> dict[int, int]:
        used = {}
        for pid in pids:
            total = 0
            for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
                try:
                    total += int(task.read_text().split()[0])
                except (OSError, ValueError, IndexError):
                    pass
            used[pid] = total
        return used


class Browser:
    """One signed-in browser behind a TLS proxy: Secure cookies kept by hand."""

    def __init__(self, base: str, cpu: ServerCpu | None = None):
        self.cpu = cpu
        self.cookies: dict[str, str] = {}
        self.client = httpx.Client(
            base_url=base,
            timeout=120,
            follow_redirects=False,
            headers={"X-Forwarded-Proto": "https", "User-Agent": "page-vs-admin"},
        )
        self.origin = "https://" + base.split("://", 1)[1]

    def request(self, method: str, url: str, headers=None, data=None):
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if method == "POST":
            headers["Origin"] = self.origin
        response = self.client.request(method, url, headers=headers, data=data)
        for header in response.headers.get_list("set-cookie"):
            jar = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                self.cookies[name] = morsel.value
        return response

    def login(self, username: str) -> None:
        page = self.request("GET", "/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        response = self.request(
            "POST",
            "/login/",
            data={
                "csrfmiddlewaretoken": token.group(1) if token else "",
                "username": username,
                "password": PASSWORD,
            },
        )
        if response.status_code != 302:
            raise SystemExit(f"login failed: {response.status_code}")

    def timed(self, url: str, headers=None) -> tuple[float, int, float]:
        """(wall ms, bytes, server CPU ms) of one GET."""
        pids = self.cpu.pids() if self.cpu else set()
        before = ServerCpu.used(pids)
        start = time.perf_counter()
        response = self.request("GET", url, headers=headers)
        elapsed = (time.perf_counter() - start) * 1000
        if response.status_code != 200:
            raise SystemExit(f"GET {url} -> {response.status_code}")
        cpu = 0.0
        if self.cpu:
            after = ServerCpu.used(pids | self.cpu.pids())
            cpu = sum(ns - before.get(pid, 0) for pid, ns in after.items()) / 1e6
        return elapsed, len(response.content), cpu


@dataclass
class Series:
    times: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)

    def add(self, sample: tuple[float, int, float]) -> None:
        self.times.append(sample[0])
        self.sizes.append(sample[1])
        self.cpus.append(sample[2])

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpus)

    @property
    def size(self) -> float:
        return statistics.median(self.sizes)

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def p95(self) -> float:
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]

    @property
    def spread(self) -> str:
        med = self.median
        return (
            f"{(min(self.times) - med) / med:+.0%}/{(max(self.times) - med) / med:+.0%}"
        )


def pairs(i: int, pks: list[int]) -> list[tuple[str, tuple, tuple | None]]:
    """(label, (our url, headers), (admin url, headers) or None) for round ``i``."""
    ours_filter, admin_filter = FILTERS[i % len(FILTERS)]
    query = SEARCHES[i % len(SEARCHES)]
    q = query.replace(" ", "+")
    pk = pks[i % len(pks)]
    fresh = next(NEW_TEXT)
    return [
        ("Models page", ("/models/", None), (ADMIN, None)),
        (
            "filtered partial",
            (f"/models/?{ours_filter}", HX),
            (f"{ADMIN}?{admin_filter}", None),
        ),
        ("search partial", (f"/models/?q={q}", HX), (f"{ADMIN}?q={q}", None)),
        # A text no earlier round used: nothing remembered from a previous ranking.
        (
            "search, new text",
            (f"/models/?q={q}+{fresh}", HX),
            (f"{ADMIN}?q={q}+{fresh}", None),
        ),
        ("drawer", (f"/models/{pk}/", HX), (f"{ADMIN}{pk}/change/", None)),
        ("CSV export (all rows)", ("/models/?_export=csv", None), None),
    ]


def measure(browser: Browser, samples: int, pks: list[int], base=None) -> dict:
    """Per label: (ours, admin, ours/admin wall ratios, the same of CPU, baseline,
    ours/baseline wall ratios); ``base`` is the ``--baseline`` site's browser."""
    results: dict[str, tuple] = {}
    for i in range(3):  # warm-up: templates, caches, connections
        for _label, ours, admin in pairs(i, pks):
            browser.timed(*ours)
            if admin:
                browser.timed(*admin)
            if base:
                base.timed(*ours)
    for i in range(samples):
        for label, ours, admin in pairs(i, pks):
            mine, theirs, ratios, cpu_ratios, based, base_ratios = results.setdefault(
                label, (Series(), Series(), [], [], Series(), [])
            )
            order = [("ours", browser, ours), ("admin", browser, admin)]
            if base:
                order.append(("base", base, ours))
            if i % 2:
                order.reverse()
            took = {}
            for side, client, target in order:
                if target is not None:
                    took[side] = client.timed(*target)
            mine.add(took["ours"])
            if "admin" in took:
                theirs.add(took["admin"])
                ratios.append(took["ours"][0] / took["admin"][0])
                cpu_ratios.append(took["ours"][2] / max(took["admin"][2], 0.001))
            if "base" in took:
                based.add(took["base"])
                base_ratios.append(took["ours"][0] / took["base"][0])
    return results


def report(results: dict, title: str) -> None:
    print(f"\n=== {title} ===")
    head = (
        f"{'request':<22}{'ours ms':>8}{'p95':>6}{'spread':>12}{'cpu':>6}{'KB':>6}"
        f"{'admin ms':>9}{'p95':>6}{'spread':>12}{'cpu':>6}{'KB':>6}"
        f"{'ratio':>7}{'pairs':>7}{'cpu':>7}"
    )
    print(head)
    print("-" * len(head))
    for label, (mine, theirs, ratios, cpu_ratios, *_base) in results.items():
        line = (
            f"{label:<22}{mine.median:8.1f}{mine.p95:6.0f}{mine.spread:>12}"
            f"{mine.cpu:6.0f}{mine.size / 1024:6.0f}"
        )
        if theirs.times:
            line += (
                f"{theirs.median:9.1f}{theirs.p95:6.0f}{theirs.spread:>12}"
                f"{theirs.cpu:6.0f}{theirs.size / 1024:6.0f}"
                f"{mine.median / theirs.median:6.2f}x"
                f"{statistics.median(ratios):6.2f}x"
                f"{statistics.median(cpu_ratios):6.2f}x"
            )
        print(line)
    print(
        "ms: wall time per request, median; cpu: server CPU ms (gunicorn worker + its "
        "PostgreSQL backend), median; ratio: ours/admin of the wall medians; pairs: "
        "median of each round's ours/admin wall; cpu: the same of server CPU.\n"
        f"Host load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs."
    )
    if not any(based.times for *_rest, based, _ratios in results.values()):
        return
    print(f"\n{'request':<22}{'ours ms':>8}{'base ms':>8}{'ratio':>7}  pairs (p25-p75)")
    for label, (mine, *_admin, based, base_ratios) in results.items():
        spread = ""
        if len(base_ratios) > 1:  # quartiles need two samples
            q1, _q2, q3 = statistics.quantiles(base_ratios, n=4)
            spread = f" ({q1:.2f}-{q3:.2f})"
        print(
            f"{label:<22}{mine.median:8.1f}{based.median:8.1f}"
            f"{mine.median / based.median:6.2f}x"
            f"  {statistics.median(base_ratios):.2f}x{spread}"
        )
    print("base: the --baseline checkout; pairs: each round's ours/base wall.")


def profile(browser: Browser, proc, label: str, seconds: float, tmp: Path, pks):
    """py-spy on the gunicorn worker while only ``label`` requests run; prints the
    functions with the most samples (self and total)."""
    import psutil

    from bench import spy

    workers = [p.pid for p in psutil.Process(proc.pid).children()]
    spies = spy.record(workers, seconds, tmp)
    i = 0
    while any(s.poll() is None for s in spies):
        target = next(t for lbl, t, _ in pairs(i, pks) if label.lower() in lbl.lower())
        browser.timed(*target)
        i += 1
    spy.report(
        [tmp / f"py-spy-{pid}.txt" for pid in workers], f"{i} requests of {label!r}"
    )


def wait_ready(base: str, proc, log: Path) -> None:
    """Until gunicorn at ``base`` answers the sign-in page (its log if it dies)."""
    for _ in range(300):
        try:
            login = httpx.get(base + "/login/", headers={"X-Forwarded-Proto": "https"})
            if login.status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(log.read_text()[-3000:])
        time.sleep(0.2)


def run(args, tmp: Path, database_url: str | None) -> None:
    from bench.bench_sync import build_registry
    from bench.load_test import start, stop_group

    reg, var = tmp / "configs", tmp / "var"
    reg.mkdir()
    var.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IMAGEWORKS_", "DATABASE_URL", "DJANGO_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="imageworks_site.settings",
        IMAGEWORKS_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1",
        DEBUG="0",
        LOG_LEVEL="WARNING",
        IMAGEWORKS_VAR_DIR=str(var),
        IMAGEWORKS_REGISTRY_DIR=str(reg),
        IMAGEWORKS_STAGING_DIR=str(tmp / "_staging"),
        IMAGEWORKS_LOG_DIR=str(var / "logs"),
        # Nothing listens there: the page's health flags stay "unknown", as offline.
        IMAGEWORKS_OLLAMA_URL=f"http://127.0.0.1:{free_port()}",
        BENCH_PASSWORD=PASSWORD,
        PYTHONUNBUFFERED="1",
    )
    if database_url:
        env["DATABASE_URL"] = database_url
    else:
        env["IMAGEWORKS_SQLITE_PATH"] = str(var / "bench.sqlite3")
    t0 = time.perf_counter()
    build_registry(reg, args.entries)
    manage(env, "migrate", "-v0")
    manage(env, "registry_sync")
    manage(env, "set_user", "bench", "--superuser", "--password-env", "BENCH_PASSWORD")
    pks = [
        int(pk)
        for pk in manage(
            env,
            "shell",
            "-v0",
            "-c",
            "from registry.models import ModelEntry as M;"
            "print(*M.objects.order_by('?').values_list('pk', flat=True)[:50])",
        ).split()
    ]
    print(
        f"prepared {args.entries} entries in {time.perf_counter() - t0:.0f} s ({tmp})"
    )

    def gunicorn(at: int) -> list[str]:
        return [
            str(VENV_BIN / "gunicorn"),
            "imageworks_site.wsgi",
            "-w",
            str(args.workers),
            "-b",
            f"127.0.0.1:{at}",
            "--timeout",
            "120",
        ]

    proc = start(gunicorn(port), env, var / "gunicorn.log")
    base_proc = None
    try:
        wait_ready(base, proc, var / "gunicorn.log")
        base_browser = None
        if args.baseline:
            tree = args.baseline.resolve()
            base_port = free_port()
            base_proc = start(
                gunicorn(base_port),
                {**env, "PYTHONPATH": str(tree)},
                var / "gunicorn-baseline.log",
                cwd=tree,
            )
            base_url = f"http://127.0.0.1:{base_port}"
            wait_ready(base_url, base_proc, var / "gunicorn-baseline.log")
        db_name = database_url.rsplit("/", 1)[1] if database_url else None
        browser = Browser(base, ServerCpu(proc.pid, db_name))
        browser.login("bench")
        if base_proc:
            base_browser = Browser(base_url, ServerCpu(base_proc.pid, db_name))
            base_browser.login("bench")
        if args.profile:
            measure(browser, 1, pks)  # warm up
            profile(browser, proc, args.profile, args.profile_seconds, tmp, pks)
            return
        results = measure(browser, args.samples, pks, base_browser)
        vendor = "PostgreSQL" if database_url else "SQLite"
        report(
            results,
            f"{vendor}, {args.entries} entries, gunicorn -w {args.workers}, "
            f"{args.samples} samples each",
        )
    finally:
        stop_group(proc)
        if base_proc:
            stop_group(base_proc)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers")
    parser.add_argument(
        "--database-url",
        help="PostgreSQL server to use (the bench creates its own database there "
        "and drops it at the end), e.g. postgresql://postgres@127.0.0.1:5432/postgres",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir / DB")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout with the same migrations: its site runs too, on the "
        "same database, each request alternating with ours",
    )
    parser.add_argument(
        "--profile",
        metavar="LABEL",
        help="instead of timing, py-spy (pip install py-spy) the worker during "
        "requests whose label contains LABEL (e.g. search); prints the hottest "
        "functions",
    )
    parser.add_argument("--profile-seconds", type=float, default=20)
    args = parser.parse_args()
    if args.samples < 1 or args.entries < 50:
        parser.error("--samples must be >= 1 and --entries >= 50")
    tmp = Path(tempfile.mkdtemp(prefix="page-vs-admin-"))
    try:
        if args.database_url:
            with own_pg_database(
                args.database_url, "bench_page", keep=args.keep
            ) as url:
                run(args, tmp, url)
        else:
            run(args, tmp, None)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
