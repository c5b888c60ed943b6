"""The task function of ``JobKind.VERIFY`` jobs (run by ``registry.jobs.run_job``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ... import hashing, layers
from ...audit import Actor
from ...jobs import JobCancelled, JobFailed, is_cancel_requested, log, progress
from ...models import Job
from ..writeback import EntryNotFound
from .errors import VerifyError
from .hashcheck import verify
from .locking import lock

CANCEL_CHECK_INTERVAL_S = 1.0


def job_actor(job: Job) -> Actor:
    """The operator who queued *job*, acting again from the worker."""
    return Actor(name=job.user_name or "system", source=job.source, user=job.user)


class _JobProgress:
    """``hash_directory`` progress -> ``Job`` progress with bytes/s, plus cancel checks."""

    def __init__(self, job: Job, label: str):
        self.job = job
        self.label = label
        self.cancel = threading.Event()
        self.started = time.monotonic()
        self.last_cancel_check = 0.0

    def __call__(self, done: int, total: int) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        fraction = done / total if total else 1.0
        progress(
            self.job,
            fraction,
            f"{self.label}: {int(fraction * 100)}%",
            bytes_done=done,
            bytes_total=total,
            rate_bps=int(done / elapsed),
        )
        now = time.monotonic()
        if now - self.last_cancel_check >= CANCEL_CHECK_INTERVAL_S:
            self.last_cancel_check = now
            if is_cancel_requested(self.job):
                self.cancel.set()


def verify_job(job: Job) -> dict:
    """Task: verify ``job.entry_name`` (progress: bytes_done/bytes_total/rate_bps).

    With ``params["then_lock"]`` (the drawer's Lock when no verify is current) the
    entry is locked with the hash afterwards: ``lock(set_expected=True)``.
    """
    run = _lock_run if (job.params or {}).get("then_lock") else _verify_run
    return _run_in_job(job, lambda tracker: run(job, tracker))


def _verify_run(job: Job, tracker: _JobProgress) -> dict:
    outcome = verify(
        job.entry_name,
        job_actor(job),
        job=job,
        on_progress=tracker,
        cancel=tracker.cancel,
    )
    log(job, outcome.action.message if outcome.action else "Verified")
    progress(job, 1.0, f"Verified: {outcome.aggregate_sha256[:12]}")
    return outcome.as_result()


def _lock_run(job: Job, tracker: _JobProgress) -> dict:
    outcome = lock(
        job.entry_name,
        job_actor(job),
        set_expected=True,
        job=job,
        on_progress=tracker,
        cancel=tracker.cancel,
    )
    log(job, outcome.message)
    progress(job, 1.0, outcome.message)
    return outcome.as_result()


def _run_in_job(job: Job, func: Callable[[_JobProgress], dict]) -> dict:
    tracker = _JobProgress(job, "Hashing")
    progress(job, 0.0, f"Hashing the files of {job.entry_name}")
    try:
        return func(tracker)
    except hashing.HashCancelled:
        raise JobCancelled("Verify cancelled")
    except (VerifyError, EntryNotFound, layers.RegistryError) as exc:
        raise JobFailed(str(exc))
