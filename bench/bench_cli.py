"""Benchmark: ``imageworks-models`` start-up (``--help``, ``current-model``, ``list``).

Usage (from the repo root):

    .venv/bin/python bench/bench_cli.py [--runs 20] [--warmup 3] [--importtime CMD]

Copies the 16-entry fixture registry (``../shared/fixtures``) into a temp folder it
owns, migrates a new SQLite file there, then runs each command ``--runs`` times (after
``--warmup`` runs), the commands alternating round by round, like ``hyperfine -N``:
wall time and CPU (user + system of the child) per run, median and min-max. Also
times ``python -c pass`` as the interpreter's floor. ``--importtime list`` prints
the imports of one run that took 5 ms or more, to ``--depth`` levels of nesting
(``python -X importtime``). ``--baseline DIR`` runs another checkout's CLI too
(same interpreter, database and registry), alternating with this one. Deletes only its
temp folder.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
FIXTURES = REPO.parent / "shared" / "fixtures" / "imageworks-registry"
COMMANDS = {
    "python -c pass": [PY, "-c", "pass"],
    "--help": [PY, "-m", "imageworks_site.cli", "--help"],
    "current-model": [PY, "-m", "imageworks_site.cli", "current-model"],
    "list": [PY, "-m", "imageworks_site.cli", "list"],
}


def environment(tmp: Path) -> dict:
    reg = tmp / "configs"
    reg.mkdir()
    for name in (
        "model_registry.curated.json",
        "model_registry.discovered.json",
        "model_registry.json",
    ):
        shutil.copy(FIXTURES / name, reg / name)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IMAGEWORKS_", "DATABASE_URL", "DJANGO_"))
    }
    env.update(
        IMAGEWORKS_VAR_DIR=str(tmp / "var"),
        IMAGEWORKS_SQLITE_PATH=str(tmp / "var" / "cli.sqlite3"),
        IMAGEWORKS_REGISTRY_DIR=str(reg),
        IMAGEWORKS_STAGING_DIR=str(tmp / "_staging"),
        IMAGEWORKS_LOG_DIR=str(tmp / "logs"),
        PYTHONPATH=str(REPO),
    )
    subprocess.run(
        [PY, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO,
        env=env,
        check=True,
    )
    return env


def timed(argv: list[str], env: dict, cwd: Path = REPO) -> tuple[float, float]:
    """(wall ms, child CPU ms) of one run; a non-zero exit stops the bench."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(argv, cwd=cwd, env=env, capture_output=True)
    wall = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(f"{argv[3:]} exited {out.returncode}: {out.stderr[-500:]!r}")
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return wall, cpu


def fmt(values: list[float]) -> str:
    return f"{statistics.median(values):7.1f} ms ({min(values):.0f}-{max(values):.0f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--importtime", choices=[c for c in COMMANDS if c[0] != "p"])
    parser.add_argument("--depth", type=int, default=1, help="--importtime nesting")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout of the project (e.g. `git archive BASE | tar -x -C DIR`):"
        " its CLI runs too, alternating with this one, same interpreter and database",
    )
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="imageworks-bench-cli-"))
    try:
        env = environment(tmp)
        if args.importtime:
            argv = COMMANDS[args.importtime]
            out = subprocess.run(
                [argv[0], "-X", "importtime", *argv[1:]],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
            )
            rows = []
            for line in out.stderr.splitlines():
                if line.startswith("import time:") and "|" in line:
                    self_us, cum_us, raw = line[12:].split("|", 2)
                    self_us, cum_us = self_us.strip(), cum_us.strip()
                    depth = (len(raw) - len(raw.lstrip()) - 1) // 2
                    name = "  " * depth + raw.strip()
                    if self_us.isdigit() and depth <= args.depth:
                        rows.append((int(cum_us), int(self_us), name))
            total = sum(cum for cum, _, name in rows if not name.startswith(" "))
            print(f"{total / 1000:8.1f} ms in top-level imports")
            for cum, own, name in [r for r in rows if r[0] >= 5000]:
                print(
                    f"{cum / 1000:8.1f} ms cumulative {own / 1000:7.1f} ms self  {name}"
                )
            return 0
        sides = {"": (REPO, env)}
        if args.baseline:
            base_env = {**env, "PYTHONPATH": str(args.baseline.resolve())}
            sides["baseline "] = (args.baseline.resolve(), base_env)
        for argv in COMMANDS.values():
            for cwd, side_env in sides.values():
                for _ in range(args.warmup):
                    timed(argv, side_env, cwd)
        samples = {
            side + key: ([], [])
            for key in COMMANDS
            for side in sides
            if key[0] != "p" or not side
        }
        for _ in range(args.runs):
            for key, argv in COMMANDS.items():
                for side, (cwd, side_env) in sides.items():
                    if side and key[0] == "p":
                        continue
                    wall, cpu = timed(argv, side_env, cwd)
                    samples[side + key][0].append(wall)
                    samples[side + key][1].append(cpu)
        print(f"load average {os.getloadavg()[0]:.1f}; {args.runs} runs each")
        print(
            f"{'command':24} {'wall: median (min-max)':>26} {'CPU: median (min-max)':>26}"
        )
        for key, (wall, cpu) in samples.items():
            print(f"{key:24} {fmt(wall):>26} {fmt(cpu):>26}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
