"""Benchmark: the reconcile scanner vs ``du -s`` and ``os.walk`` + ``lstat``.

Usage (from the repo root):

    .venv/bin/python bench/bench_scan.py [--folders 200] [--files 20000] [--rounds 7]

Builds a model root of ``--folders`` model folders holding ``--files`` files in all
(config/tokenizer JSON, sparse weight shards of realistic sizes, a Hugging Face
cache layout with symlinks into ``blobs/`` for one folder in ten, hard-linked
copies for one in twenty) in a fresh temporary folder, and deletes only that folder
at the end. Each round runs every contender once, in a rotating order (so none is
always first or last); the first round warms the page cache and is not counted.
Reported: median and spread (min-max) of the remaining rounds.

* ``scan``: ``inventory.scan.scan`` (scandir, one lstat per file, inode-once sizes,
  symlinks resolved, partials detected) -- what the reconcile job does.
* ``scan+attribute``: the above plus model-folder detection and attribution to one
  registry entry per folder (the whole disk part of a reconcile, no database).
* ``du -s``: coreutils, the C baseline (sizes with hard links once).
* ``os.walk+lstat``: the straightforward Python baseline.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

from inventory import scan, usage  # noqa: E402

MARKER = ".iw-bench-scan"  # only a folder holding this marker is ever deleted


def build(root: Path, folders: int, files: int) -> list[Path]:
    """Create the model root; returns the model folders."""
    per_folder = max(3, files // folders)
    made = 0
    out = []
    for i in range(folders):
        folder = root / f"org{i % 20:02d}" / f"model-{i:03d}"
        if i % 10 == 0:
            # Hugging Face cache layout: the entry points at snapshots/<rev>.
            repo = root / "hub" / f"models--org--m{i:03d}"
            blobs = repo / "blobs"
            snap = repo / "snapshots" / "rev1"
            blobs.mkdir(parents=True)
            snap.mkdir(parents=True)
            for j in range(per_folder // 2):
                blob = blobs / f"{j:040x}"
                with open(blob, "wb") as fh:
                    fh.truncate(50_000_000 if j % 7 == 0 else 2_000)
                (snap / f"file-{j:04d}.safetensors").symlink_to(f"../../blobs/{j:040x}")
                made += 1
            out.append(snap)
            continue
        folder.mkdir(parents=True)
        (folder / "config.json").write_text('{"architectures": ["Bench"]}')
        (folder / "tokenizer.json").write_text("{}")
        for j in range(per_folder - 2):
            shard = folder / f"model-{j + 1:05d}-of-{per_folder - 2:05d}.safetensors"
            with open(shard, "wb") as fh:
                fh.truncate(100_000_000 if j % 10 == 0 else 4_096)
        if i % 20 == 1:
            twin = folder.with_name(folder.name + "-linked")
            twin.mkdir()
            for name in os.listdir(folder):
                os.link(folder / name, twin / name)
        made += per_folder
        out.append(folder)
    return out


def count_files(root: Path) -> int:
    return sum(len(names) for _, _, names in os.walk(root))


def run_scan(root: Path) -> int:
    return scan.scan([root]).total_bytes


def run_scan_attribute(root: Path, folders: list[Path]) -> int:
    result = scan.scan([root])
    refs = [
        usage.EntryRef(name=f"m{i}", backend="vllm", model_dir=str(f))
        for i, f in enumerate(folders)
    ]
    att = usage.attribute(result, refs)
    return sum(u.owned_bytes for u in att.usage.values())


def run_du(root: Path) -> int:
    out = subprocess.run(
        ["du", "-s", "--apparent-size", "-B1", str(root)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return int(out.split()[0])


def run_walk(root: Path) -> int:
    seen = set()
    total = 0
    for folder, _dirs, names in os.walk(root):
        for name in names:
            st = os.lstat(os.path.join(folder, name))
            key = (st.st_dev, st.st_ino)
            if key not in seen:
                seen.add(key)
                total += st.st_size
    return total


def bench(
    contenders: dict[str, Callable[[], int]], rounds: int
) -> dict[str, list[float]]:
    names = list(contenders)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds + 1):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            t0 = time.perf_counter()
            contenders[name]()
            elapsed = time.perf_counter() - t0
            if r:  # round 0 warms the page cache
                times[name].append(elapsed)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folders", type=int, default=200)
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="iw-bench-scan-"))
    (base / MARKER).write_text("created by bench/bench_scan.py\n")
    root = base / "models"
    try:
        t0 = time.perf_counter()
        folders = build(root, args.folders, args.files)
        print(
            f"built {count_files(root)} files in {len(folders)} model folders "
            f"({time.perf_counter() - t0:.1f} s) under {root}"
        )
        totals = {
            "scan": run_scan(root),
            "du -s": run_du(root),
            "os.walk+lstat": run_walk(root),
        }
        print("bytes counted (apparent, each inode once):", totals)
        contenders = {
            "scan": lambda: run_scan(root),
            "scan+attribute": lambda: run_scan_attribute(root, folders),
            "du -s": lambda: run_du(root),
            "os.walk+lstat": lambda: run_walk(root),
        }
        times = bench(contenders, args.rounds)
        print(f"\n{args.rounds} rounds (after 1 warm-up), rotating order")
        print(f"{'contender':<16} {'median':>9} {'min':>9} {'max':>9}")
        for name, values in times.items():
            print(
                f"{name:<16} {statistics.median(values) * 1000:8.1f}ms "
                f"{min(values) * 1000:8.1f}ms {max(values) * 1000:8.1f}ms"
            )
    finally:
        if (base / MARKER).is_file():
            shutil.rmtree(base)


if __name__ == "__main__":
    main()
