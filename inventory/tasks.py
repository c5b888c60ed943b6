"""Background work of the inventory app: the scan as a ``registry.jobs`` job, and
its schedule.

Every call into ``registry.jobs`` of this app lives here: the ``RECONCILE_SCAN``
job kind and its spec (registered by ``inventory.apps``). The scan itself is
:func:`inventory.services.scanning.run_scan`, shared with the CLI.
"""

from __future__ import annotations

import threading
import time

from registry.audit import Actor
from registry.choices import JobKind, Source
from registry.jobs import (
    JobCancelled,
    JobConflict,
    JobFailed,
    enqueue,
    is_cancel_requested,
    log,
    progress,
)
from registry.models import Job

from .scan import ScanCancelled

JOB_KIND = JobKind.RECONCILE_SCAN
TASK = "inventory.tasks.scheduled_scan"
SCHEDULE_NAME = "inventory-reconcile"
CANCEL_CHECK_S = 1.0


def request_scan(actor: Actor, *, refresh_backends: bool = True) -> Job:
    """Queue a scan (one at a time: ``JobConflict`` carries the running one)."""
    return enqueue(
        JOB_KIND,
        actor=actor,
        params={"refresh_backends": refresh_backends},
        message="Queued: scan of the model roots",
    )


def scan_or_running(actor: Actor) -> Job | None:
    """Queue a scan, or return the one already queued or running."""
    try:
        return request_scan(actor)
    except JobConflict as exc:
        return exc.existing


class _Tracker:
    """Scan progress -> job progress; the job's cancel -> the scan's cancel event."""

    def __init__(self, job: Job):
        self.job = job
        self.cancel = threading.Event()
        self.checked = 0.0

    def __call__(self, fraction: float, message: str, files: int) -> None:
        progress(self.job, 0.05 + 0.85 * fraction, message, files=files)
        now = time.monotonic()
        if now - self.checked >= CANCEL_CHECK_S:
            self.checked = now
            if is_cancel_requested(self.job):
                self.cancel.set()


def scan_job(job: Job) -> dict:
    """Job function: run the scan with progress; returns the run's summary."""
    from .services.scanning import run_scan, summary

    actor = Actor(name=job.user_name or "system", source=job.source, user=job.user)
    tracker = _Tracker(job)
    progress(job, 0.02, "Reloading the registry and checking the backends")
    try:
        run = run_scan(
            actor,
            job=job,
            refresh_backends=bool((job.params or {}).get("refresh_backends", True)),
            on_progress=tracker,
            cancel=tracker.cancel,
        )
    except ScanCancelled:
        raise JobCancelled("Scan cancelled")
    except OSError as exc:
        raise JobFailed(f"Scan failed: {exc}")
    text = summary(run)
    log(job, text)
    progress(job, 1.0, text)
    return {"scan": run.pk, "counts": run.counts, "files": run.files}


def scheduled_scan() -> dict:
    """Schedule entry point: queue a scan as the scheduler (skipped if one runs)."""
    actor = Actor.system("scheduler", source=Source.SCHEDULE)
    try:
        job = request_scan(actor)
    except JobConflict as exc:
        return {"skipped": True, "running": exc.existing.pk if exc.existing else None}
    return {"job": job.pk}


def ensure_schedule(minutes: int):
    """Create or update the periodic scan (idempotent); ``minutes <= 0`` removes it."""
    from django_q.models import Schedule

    if minutes <= 0:
        Schedule.objects.filter(name=SCHEDULE_NAME).delete()
        return None
    schedule, _ = Schedule.objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={
            "func": TASK,
            "schedule_type": Schedule.MINUTES,
            "minutes": int(minutes),
            "repeats": -1,
        },
    )
    return schedule
