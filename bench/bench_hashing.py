"""Benchmark: registry.hashing.hash_directory vs sha256sum vs a naive Python loop.

Usage (from the repo root):

    .venv/bin/python bench/bench_hashing.py [--size-gib 2] [--files 5] [--dir PATH]

Builds (once) a model folder of about ``--size-gib`` GiB split into ``--files``
safetensors-like shards plus small json/tokenizer files, cached under
``var/bench-hashing/`` and reused when the sizes match. ``--dir`` must name a new or
empty folder, or one this bench built (its ``<dir>.manifest.json`` says so): the bench
never deletes files it did not write. The page cache is NOT dropped
(that needs root and would disturb other work on the machine): every contender runs
twice, the first (cold-ish: partly from disk only if the cached folder was evicted)
and the second (warm, from page cache) are both reported. GB/s uses 10^9 bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
if str(REPO_DIR) not in sys.path:
    sys.path.insert(0, str(REPO_DIR))

from registry.hashing import (  # noqa: E402
    aggregate_from_hashes,
    default_workers,
    hash_directory,
    list_model_files,
)

GIB = 1024**3
WRITE_CHUNK = 16 * 1024 * 1024
NAIVE_CHUNK = 1024 * 1024

SMALL_FILES = {
    "config.json": json.dumps(
        {"architectures": ["BenchForCausalLM"], "hidden_size": 4096}
    ),
    "generation_config.json": json.dumps({"temperature": 0.7, "top_p": 0.9}),
    "tokenizer_config.json": json.dumps({"model_max_length": 32768}),
    "special_tokens_map.json": json.dumps({"eos_token": "</s>"}),
}


# --------------------------------------------------------------------------- data set


def plan(size_gib: float, n_files: int) -> dict[str, int]:
    """File name -> size in bytes (shards split evenly, plus the small files)."""
    total = int(size_gib * GIB)
    base, extra = divmod(total, n_files)
    sizes = {
        f"model-{i + 1:05d}-of-{n_files:05d}.safetensors": base
        + (1 if i < extra else 0)
        for i in range(n_files)
    }
    sizes["tokenizer.json"] = 2 * 1024 * 1024  # random bytes; content is irrelevant
    for name, text in SMALL_FILES.items():
        sizes[name] = len(text.encode())
    return sizes


MANIFEST_MARK = "imageworks bench/bench_hashing.py"


def _manifest_path(root: Path) -> Path:
    return root.with_name(root.name + ".manifest.json")  # kept outside the model


def _recorded(manifest: Path) -> dict[str, int] | None:
    """The file sizes this bench recorded when it built the folder, or None.

    Only a manifest carrying :data:`MANIFEST_MARK` counts: it proves the bench wrote
    the folder's files, which is what allows it to replace them later.
    """
    try:
        data = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("created_by") != MANIFEST_MARK:
        return None
    files = data.get("files")
    return files if isinstance(files, dict) else None


def _safe_rel(rel: str) -> bool:
    """A recorded name the bench could have written: relative, inside the folder."""
    parts = Path(rel).parts
    return bool(parts) and not Path(rel).is_absolute() and ".." not in parts


def build_or_reuse(root: Path, sizes: dict[str, int]) -> bool:
    """Create the folder unless it already holds exactly these files. True if built.

    Never deletes or overwrites what the bench did not create: a folder without this
    bench's manifest must be empty (no file, link or subfolder), a manifest path
    holding someone else's file is refused, and a folder the bench built earlier loses
    only the files its manifest lists, and only while each still has the size the
    bench wrote (anything else found there stops the run before anything is removed).
    """
    manifest = _manifest_path(root)
    recorded = _recorded(manifest)
    if recorded is None and (manifest.exists() or manifest.is_symlink()):
        raise SystemExit(
            f"{manifest} exists and was not written by this bench; pick another --dir"
        )
    if recorded is not None and not all(_safe_rel(rel) for rel in recorded):
        raise SystemExit(f"{manifest} names files outside {root}; pick another --dir")
    if root.is_symlink() or (root.exists() and not root.is_dir()):
        raise SystemExit(f"{root} exists and is not a folder; pick another --dir")
    if root.exists():
        if recorded is None:
            if any(root.iterdir()):
                raise SystemExit(
                    f"{root} is not empty and this bench did not create it (no "
                    f"{manifest.name} of ours next to it); pick an empty or new --dir"
                )
        else:
            skipped: list[tuple[str, str]] = []
            on_disk = {
                rel: size for rel, _, size in list_model_files(root, skipped=skipped)
            }
            if recorded == sizes and on_disk == sizes and not skipped:
                return False
            foreign = sorted(set(on_disk) - set(recorded))
            foreign += [rel for rel, _ in skipped]
            changed = sorted(
                rel
                for rel, size in recorded.items()
                if rel in on_disk and on_disk[rel] != size
            )
            if foreign or changed:
                raise SystemExit(
                    f"{root} holds files this bench did not write "
                    f"{(foreign + changed)[:5]}; nothing was removed, pick another --dir"
                )
            print(f"  replacing the files this bench built in {root} (sizes changed)")
            for rel in recorded:
                (root / rel).unlink(missing_ok=True)
            manifest.unlink()
    root.mkdir(parents=True, exist_ok=True)
    # The manifest goes first: an interrupted build still leaves a folder the next
    # run recognises as the bench's own.
    manifest.write_text(
        json.dumps({"created_by": MANIFEST_MARK, "files": sizes}, indent=1)
    )
    _write_files(root, sizes)
    return True


def _write_files(root: Path, sizes: dict[str, int]) -> None:
    total = sum(sizes.values())
    written = 0
    t0 = time.perf_counter()
    for name, size in sizes.items():
        path = root / name
        if name in SMALL_FILES:
            path.write_text(SMALL_FILES[name])
            written += size
            continue
        with open(path, "wb") as fh:
            left = size
            while left:
                n = min(WRITE_CHUNK, left)
                fh.write(os.urandom(n))
                left -= n
                written += n
        print(
            f"  wrote {name} ({size / GIB:.2f} GiB), {written / total:5.1%}",
            flush=True,
        )
    print(f"  built {total / GIB:.2f} GiB in {time.perf_counter() - t0:.1f}s")


# --------------------------------------------------------------------------- contenders


def run_ours(root: Path, workers: int | None) -> dict[str, str]:
    result = hash_directory(root, workers=workers)
    return {f.path: f.sha256 for f in result.files}


def run_sha256sum(root: Path, rels: list[str]) -> dict[str, str]:
    """coreutils sha256sum over all files in one serial process (argv list, no shell)."""
    proc = subprocess.run(
        ["sha256sum", "--", *rels],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    )
    out: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        digest, _, name = line.partition("  ")
        out[name] = digest
    return out


def run_naive(root: Path, rels: list[str]) -> dict[str, str]:
    """What a naive tool does: one thread, file by file, 1 MiB reads."""
    out: dict[str, str] = {}
    for rel in rels:
        h = hashlib.sha256()
        with open(root / rel, "rb") as fh:
            while chunk := fh.read(NAIVE_CHUNK):
                h.update(chunk)
        out[rel] = h.hexdigest()
    return out


def timed(fn: Callable[[], dict[str, str]]) -> tuple[float, dict[str, str]]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


# --------------------------------------------------------------------------- main


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gib", type=float, default=2.0)
    parser.add_argument("--files", type=int, default=5, help="number of shards")
    parser.add_argument("--dir", type=Path, default=None, help="model folder to use")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument(
        "--repeat",
        type=int,
        default=2,
        help="runs per contender (>= 2); 'warm' is the best run after the first",
    )
    args = parser.parse_args(argv)
    if args.files < 1 or args.size_gib <= 0 or args.repeat < 2:
        parser.error("--files must be >= 1, --size-gib > 0 and --repeat >= 2")
    if shutil.which("sha256sum") is None:
        parser.error("sha256sum (coreutils) not found on PATH")

    sizes = plan(args.size_gib, args.files)
    root = args.dir or (
        REPO_DIR / "var" / "bench-hashing" / f"model-{args.size_gib:g}gib-{args.files}"
    )
    root = root.resolve()
    print(f"Model folder: {root}")
    built = build_or_reuse(root, sizes)
    if not built:
        print("  reused cached folder (same sizes)")

    listed = list_model_files(root)
    rels = [rel for rel, _, _ in listed]
    total = sum(size for _, _, size in listed)
    workers = args.workers or default_workers()
    print(
        f"Files: {len(rels)} ({args.files} shards), {total / GIB:.2f} GiB = "
        f"{total / 1e9:.2f} GB; CPUs: {os.cpu_count()}; workers: {workers}; "
        f"Python {platform.python_version()}"
    )
    print(
        f"Page cache: NOT dropped. Each contender runs {args.repeat} times; 'first' "
        "is cold-ish (from disk only where the folder was evicted"
        + ("; just written, so likely cached" if built else "")
        + "), 'warm' is the best of the later runs."
    )
    print(f"Load average before: {_load()}")

    contenders: list[tuple[str, Callable[[], dict[str, str]]]] = [
        (f"hash_directory (ours, {workers} threads)", lambda: run_ours(root, workers)),
        ("sha256sum (coreutils, serial)", lambda: run_sha256sum(root, rels)),
        ("python loop (1 thread, 1 MiB reads)", lambda: run_naive(root, rels)),
        ("hash_directory (ours, 1 thread)", lambda: run_ours(root, 1)),
    ]
    rows = []
    reference: dict[str, str] | None = None
    for label, fn in contenders:
        first, res1 = timed(fn)
        warm = float("inf")
        for _ in range(args.repeat - 1):
            t, res2 = timed(fn)
            warm = min(warm, t)
            if res1 != res2:
                raise SystemExit(f"{label}: runs disagree")
        if reference is None:
            reference = res1
        elif res1 != reference:
            bad = sorted(
                k
                for k in reference.keys() | res1.keys()
                if reference.get(k) != res1.get(k)
            )
            raise SystemExit(f"{label}: per-file hashes differ from ours for {bad}")
        rows.append((label, first, warm))
        print(f"  {label}: first {first:.2f}s, warm {warm:.2f}s", flush=True)

    assert reference is not None
    ours_warm = rows[0][2]
    print()
    head = f"{'contender':<40} {'first s':>8} {'warm s':>8} {'warm GB/s':>10} {'vs ours':>8}"
    print(head)
    print("-" * len(head))
    for label, first, warm in rows:
        print(
            f"{label:<40} {first:>8.2f} {warm:>8.2f} {total / 1e9 / warm:>10.2f} "
            f"{warm / ours_warm:>7.2f}x"
        )
    print("-" * len(head))
    print("'vs ours' = contender warm time / our warm time (higher = ours is faster).")
    aggregate = aggregate_from_hashes(reference.items())
    print(f"All contenders agree on all {len(reference)} per-file sha256s.")
    print(f"Aggregate (algorithm A): {aggregate}")
    print(f"Load average after: {_load()} (other work on the machine skews timings)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
