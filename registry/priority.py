"""Background work at a lower CPU priority than the web workers on the same machine.

Reading a 10,000-entry registry (three files, ~230 MB of JSON) or hashing a model
takes a core for seconds. On a small host that core is one the web workers need:
``bench/load_test.py`` measured page requests queueing behind the task cluster's
syncs and verifies. Work that nobody waits for page by page therefore runs with the
nice value ``IMAGEWORKS_JOB_NICENESS`` (default 10; 0 keeps the worker's own).

Only the job's *thread* is lowered, never the worker process: on Linux each thread
has its own nice value (``setpriority(PRIO_PROCESS, tid)``), and an unprivileged
process cannot raise its priority again. A process-wide nice would stay on the worker
for good, and every vLLM server a later activation job starts from it would inherit
it. Processes the lowered thread starts (the hashing pool) inherit the lower
priority, which is what they should have.

The lowered thread opens its own database connection and closes it when the work
ends. It is used only inside real task-cluster workers on Linux; inline runs (tests'
``sync`` cluster, the command line) call the function directly.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)


def niceness() -> int:
    return max(0, int(getattr(settings, "IMAGEWORKS_JOB_NICENESS", 0) or 0))


def in_worker_process() -> bool:
    """True inside a django-q2 worker process (a child of the cluster), not in a web
    worker, the command line or an inline (``sync``) cluster."""
    from multiprocessing import current_process

    return current_process().name != "MainProcess"


def lower_this_thread(nice: int) -> int:
    """Give the calling thread the nice value *nice* (never a higher priority than it
    has); returns the nice value it ends up with."""
    tid = threading.get_native_id()
    current = os.getpriority(os.PRIO_PROCESS, tid)
    if nice > current:
        try:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        except OSError as exc:  # a container that forbids it: run at the old priority
            logger.warning("could not lower the job thread's priority: %s", exc)
            return current
    return os.getpriority(os.PRIO_PROCESS, tid)


def run_lowered(func: Callable[..., Any], *args: Any, nice: int | None = None) -> Any:
    """``func(*args)`` in a thread with the nice value *nice* (the setting by default);
    returns its result or raises its exception, as a direct call would."""
    nice = niceness() if nice is None else nice
    outcome: dict[str, Any] = {}

    def target() -> None:
        lower_this_thread(nice)
        try:
            outcome["result"] = func(*args)
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc
        finally:
            connections.close_all()  # this thread's own connections

    name = getattr(func, "__name__", None) or getattr(func, "path", "job")
    thread = threading.Thread(target=target, name=f"lowered {name}")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("result")


def in_background(func: Callable[..., Any], *args: Any) -> Any:
    """Run background work: lowered in a task-cluster worker on Linux, else directly."""
    if niceness() and sys.platform == "linux" and in_worker_process():
        return run_lowered(func, *args)
    return func(*args)
