"""Background jobs: a ``Job`` row the UI polls, transported by django-q2.

``enqueue()`` saves the row and hands ``run_job(job_id, func_path)`` to django-q2
once the transaction commits. ``run_job`` marks the job running, calls the task
function with the job, and records the result or the failure. Task functions
report with ``progress()`` and ``log()``; raising ``JobFailed`` fails the job with
a user-facing message.
"""

from __future__ import annotations

import logging
import traceback
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from .choices import JobStatus
from .models import Job, ModelEntry

logger = logging.getLogger(__name__)

MAX_LOG_LINES = 500


class JobConflict(Exception):
    """A live job of the same kind already exists for this entry."""

    def __init__(self, existing: Job | None, message: str):
        super().__init__(message)
        self.existing = existing


class JobFailed(Exception):
    """Raised by a task function to fail its job with a clear message."""


class JobCancelled(Exception):
    """Raised by a task function that noticed its job was cancelled."""


def enqueue(
    kind: str,
    func_path: str,
    *,
    actor,
    entry: ModelEntry | None = None,
    entry_name: str = "",
    params: dict | None = None,
    message: str = "Queued",
    queue: str = "",
) -> Job:
    """Create a queued job and schedule ``func_path(job)`` on the task queue.

    ``queue`` names the django-q2 cluster (queue) whose workers should run it, e.g.
    the GPU host's for vLLM activation; empty = the site's own queue.
    """
    name = entry_name or (entry.name if entry else "")
    try:
        with transaction.atomic():
            job = Job.objects.create(
                kind=kind,
                status=JobStatus.QUEUED,
                message=message,
                user=actor.user,
                user_name=actor.name,
                source=actor.source,
                entry=entry,
                entry_name=name,
                params=params or {},
            )
    except IntegrityError:
        existing = (
            Job.objects.filter(
                kind=kind,
                entry_name=name,
                status__in=[JobStatus.QUEUED, JobStatus.RUNNING],
            )
            .order_by("-created")
            .first()
        )
        who = f" by {existing.user_name}" if existing and existing.user_name else ""
        target = f" for {name}" if name else ""
        raise JobConflict(existing, f"A {kind} job is already running{target}{who}.")
    transaction.on_commit(lambda: _submit(job.pk, func_path, queue))
    return job


def _submit(job_id: int, func_path: str, queue: str = "") -> None:
    from django_q.tasks import async_task

    job = Job.objects.get(pk=job_id)
    # Only a named queue is passed on: without ``cluster`` django-q2 uses this
    # process's own queue, which is what single-queue sites have always done.
    routing = {"cluster": queue} if queue else {}
    try:
        task_id = async_task(
            "registry.jobs.run_job",
            job_id,
            func_path,
            task_name=f"{job.kind}-{job_id}",
            **routing,
        )
    except (
        Exception
    ) as exc:  # broker down: fail the job visibly instead of leaving it queued
        logger.exception("could not queue job %s", job_id)
        finish(job, JobStatus.FAILED, error=f"Could not queue the job: {exc}")
        return
    if isinstance(task_id, str):
        Job.objects.filter(pk=job_id, task_id="").update(task_id=task_id[:64])


def run_job(job_id: int, func_path: str):
    """django-q2 entry point: run one job's function and record the outcome."""
    job = Job.objects.get(pk=job_id)
    if job.is_terminal:
        return None
    now = timezone.now()
    claimed = Job.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, started=now, heartbeat=now, message="Running"
    )
    if claimed != 1:  # another worker got there first, or it was cancelled
        return None
    job.refresh_from_db()
    try:
        func = import_string(func_path)
        result = func(job)
    except JobFailed as exc:
        finish(job, JobStatus.FAILED, error=str(exc))
    except JobCancelled as exc:
        finish(job, JobStatus.CANCELLED, error=str(exc) or "Cancelled")
    except Exception as exc:
        log(job, traceback.format_exc(), level="error")
        finish(job, JobStatus.FAILED, error=f"{exc.__class__.__name__}: {exc}")
    else:
        finish(
            job, JobStatus.SUCCEEDED, result=result if isinstance(result, dict) else {}
        )
    return job.pk


def finish(
    job: Job,
    status: str,
    *,
    error: str = "",
    result: dict | None = None,
    message: str = "",
) -> None:
    job.status = status
    job.finished = timezone.now()
    job.error = error
    if result is not None:
        job.result = result
    if status == JobStatus.SUCCEEDED:
        job.progress = 1.0
    job.message = (
        message
        or error
        or {"succeeded": "Done", "cancelled": "Cancelled"}.get(status, status)
    )
    job.save(
        update_fields=["status", "finished", "error", "result", "progress", "message"]
    )


def progress(job: Job, fraction: float, message: str | None = None, **data) -> None:
    """Update progress (0..1), the status message and small progress data."""
    job.progress = max(0.0, min(1.0, float(fraction)))
    job.heartbeat = timezone.now()
    fields = ["progress", "heartbeat"]
    if message is not None:
        job.message = message[:500]
        fields.append("message")
    if data:
        job.data = {**job.data, **data}
        fields.append("data")
    Job.objects.filter(pk=job.pk).update(**{f: getattr(job, f) for f in fields})


def log(job: Job, line: str, level: str = "info") -> None:
    """Append a log line (bounded) to the job."""
    entry = {
        "t": timezone.now().isoformat(timespec="seconds"),
        "level": level,
        "msg": line,
    }
    job.log = (list(job.log or []) + [entry])[-MAX_LOG_LINES:]
    job.heartbeat = timezone.now()
    Job.objects.filter(pk=job.pk).update(log=job.log, heartbeat=job.heartbeat)


def is_cancel_requested(job: Job) -> bool:
    return Job.objects.filter(pk=job.pk, status=JobStatus.CANCELLED).exists()


def cancel(job: Job) -> bool:
    """Ask a live job to stop; task functions check ``is_cancel_requested``."""
    changed = Job.objects.filter(
        pk=job.pk, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]
    ).update(status=JobStatus.CANCELLED, finished=timezone.now(), message="Cancelled")
    return changed == 1


def mark_stale_jobs(
    max_silence: timedelta = timedelta(minutes=10),
    max_queued: timedelta | None = None,
) -> int:
    """Fail running jobs whose worker stopped reporting (killed worker, crashed host).

    Task functions heartbeat through ``progress``/``log``; queued jobs older than
    ``max_queued`` (default ``max_silence``) that never started are failed too (the
    broker lost them). Running jobs that never heartbeat count from ``started``.
    """
    from django.db.models import Q

    now = timezone.now()
    cutoff = now - max_silence
    queued_cutoff = now - (max_queued if max_queued is not None else max_silence)
    stale_running = Job.objects.filter(status=JobStatus.RUNNING).filter(
        Q(heartbeat__lt=cutoff) | Q(heartbeat__isnull=True, started__lt=cutoff)
    )
    stale_queued = Job.objects.filter(
        status=JobStatus.QUEUED, created__lt=queued_cutoff
    )
    count = 0
    for qs, reason in (
        (stale_running, "Worker stopped reporting (killed or crashed); marked failed."),
        (stale_queued, "Never picked up by a worker; marked failed."),
    ):
        count += qs.update(
            status=JobStatus.FAILED,
            finished=timezone.now(),
            error=reason,
            message=reason,
        )
    return count
