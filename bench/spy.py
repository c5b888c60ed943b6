"""py-spy (``pip install py-spy``; not a project dependency) for the benches.

``record(pids, seconds, folder)`` samples running processes (gunicorn or task workers)
without stopping them; ``report(files)`` prints the functions with the most samples,
self and total, leaving out the time workers spend waiting for a request.
"""

from __future__ import annotations

import collections
import subprocess
import sys
from pathlib import Path

PY_SPY = Path(sys.executable).parent / "py-spy"
PACKAGES = ("registry", "backends", "imageworks_site")
#: Frames of the server's own plumbing: on every stack, never the answer.
PLUMBING = (
    "gunicorn",
    "arbiter.py",
    "Arbiter.",
    "Worker.",
    "wsgiapp.py",
    "deprecation.py",
    "exception.py",
    "Application.",
)


def record(pids: list[int], seconds: float, folder: Path) -> list[subprocess.Popen]:
    """Start one ``py-spy record`` per pid; each stops by itself after ``seconds``."""
    if not PY_SPY.exists():
        raise SystemExit("py-spy not found: .venv/bin/pip install py-spy")
    return [
        subprocess.Popen(
            [
                str(PY_SPY),
                "record",
                "--format",
                "raw",
                "--rate",
                "50",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, int(seconds))),
                "--output",
                str(folder / f"py-spy-{pid}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in pids
    ]


def _frame(text: str) -> str:
    function, _, where = text.rpartition(" (")
    return f"{function} {where.rsplit('/', 1)[-1].rstrip(')')}"


def _ours(text: str) -> bool:
    """A frame of this project's code (py-spy names files relative to sys.path)."""
    where = text.rpartition(" (")[2]
    return where.split("/", 1)[0] in PACKAGES


#: Innermost frames of a process or thread waiting for work: a sync worker or the
#: gthread main loop in ``select``, a gthread pool thread or a task-queue worker
#: blocked on its queue.
IDLE = ("SyncWorker.wait", "select ", "EpollSelector.select", "Queue.get ", "sleep ")


def _idle(frames: list[str]) -> bool:
    innermost = frames[-1]
    if innermost.startswith("_worker thread.py"):  # ThreadPoolExecutor, queue.get
        return True
    return any("SyncWorker.wait" in f for f in frames) or innermost.startswith(IDLE)


def report(files: list[Path], title: str, top: int = 30) -> None:
    """Top functions by self and total samples, and the innermost frame of this
    project's code under each sample (which of our functions the time, database
    waits included, is spent under)."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    project: collections.Counter[str] = collections.Counter()
    busy = idle = 0
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            raw = stack.split(";")
            frames = [_frame(f) for f in raw]
            n = int(count)
            if _idle(frames):
                idle += n
                continue
            busy += n
            own[frames[-1]] += n
            mine = [_frame(f) for f in raw if _ours(f)]
            project[mine[-1] if mine else "(no project frame)"] += n
            for frame in set(frames):
                total[frame] += n
    if not busy:
        print(f"\npy-spy: no busy samples for {title}")
        return
    print(
        f"\npy-spy, {title}: {busy} busy samples ({idle} waiting for a request "
        "left out); share of the busy samples:"
    )
    for label, counter in (("self", own), ("total", total), ("our code", project)):
        print(f"-- top by {label} --")
        shown = 0
        for frame, n in counter.most_common():
            if label == "total" and any(p in frame for p in PLUMBING):
                continue
            print(f"{n / busy:6.1%}  {frame}")
            shown += 1
            if shown == top:
                break
