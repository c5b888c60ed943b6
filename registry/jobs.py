"""Background jobs: a ``Job`` row the UI polls, transported by django-q2.

Every kind of job is described once, by a :class:`JobSpec` in one table (NetBox's
``JobRunner``, as data): the task function, the queue its workers read, and the
permission that may cancel it. Registry's kinds are registered by
``registry.apps``; an app that adds kinds registers them from its own ``ready()``
(``backends`` does, so registry never imports backends)::

    register(JobSpec(JobKind.VERIFY, verify_job, "registry.verify_entry"))
    job = enqueue(JobKind.VERIFY, actor=actor, entry=entry)

``enqueue()`` saves the row and hands ``run_job(job_id)`` to django-q2 once the
transaction commits. ``run_job`` marks the job running, calls its kind's function
with the job, and records the result or the failure. Task functions report with
``progress()`` and ``log()``; raising ``JobFailed`` fails the job with a user-facing
message.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone

from . import priority
from .choices import JobKind, JobStatus
from .models import Job, ModelEntry

logger = logging.getLogger(__name__)

MAX_LOG_LINES = 500
TASK = "registry.jobs.run_job"  # the django-q2 entry point; keep it stable
#: Who may cancel a job whose kind is not registered (a leftover of a removed app).
DEFAULT_CANCEL_PERMISSION = "registry.sync_registry"
OLD_STYLE_TASK_MESSAGE = (
    "This job was queued by an earlier version of the console and cannot run; "
    "start it again."
)


@dataclass(frozen=True)
class Lazy:
    """A function named by its dotted path, imported on its first call.

    Apps register their job kinds from ``ready()``; naming the task function this
    way keeps its module (and everything it imports: the vLLM service, httpx,
    psutil, the hashing code) out of every process that never runs that kind of job,
    the command line's start-up above all.
    """

    path: str

    def resolve(self) -> Callable:
        import importlib

        module, _, attr = self.path.rpartition(".")
        return getattr(importlib.import_module(module), attr)

    def __call__(self, *args, **kwargs):
        return self.resolve()(*args, **kwargs)


def site_queue() -> str:
    """The default queue: empty, i.e. the django-q2 cluster of the enqueuing site."""
    return ""


@dataclass(frozen=True)
class JobSpec:
    """How one kind of job runs.

    ``func(job)`` runs in a qcluster worker and returns a small dict (``Job.result``);
    ``queue()`` names the django-q2 cluster whose workers should run it (e.g. the GPU
    host's), read when the job is enqueued; ``cancel_permission`` is what a web user
    needs to cancel it.
    """

    kind: str  # a JobKind value
    func: Callable[[Job], dict | None]
    cancel_permission: str
    queue: Callable[[], str] = site_queue
    #: CPU-heavy work no page waits on (reading the registry files, hashing): runs at
    #: ``IMAGEWORKS_JOB_NICENESS`` so web requests on the machine go first
    #: (``registry.priority``). Not for jobs that start long-lived servers.
    background: bool = False


_SPECS: dict[str, JobSpec] = {}


def register(spec: JobSpec, *, replace: bool = False) -> JobSpec | None:
    """Add *spec* to the table; returns the spec it replaced (``replace=True``) or None.

    Registering a different spec for a kind that has one is a configuration error
    unless *replace* is set (tests use it to wrap a kind's function).
    """
    old = _SPECS.get(spec.kind)
    if old is not None and old != spec and not replace:
        raise ImproperlyConfigured(f"Job kind {spec.kind!r} is already registered")
    _SPECS[spec.kind] = spec
    return old


def unregister(kind: str) -> None:
    _SPECS.pop(kind, None)


def spec_for(kind: str) -> JobSpec:
    """The spec of *kind*; ``ImproperlyConfigured`` when no app registered it."""
    try:
        return _SPECS[kind]
    except KeyError:
        raise ImproperlyConfigured(
            f"No job spec is registered for kind {kind!r} (is its app installed?)"
        ) from None


def cancel_permission(kind: str) -> str:
    spec = _SPECS.get(kind)
    return spec.cancel_permission if spec else DEFAULT_CANCEL_PERMISSION


class JobConflict(Exception):
    """A live job of the same kind already exists for this entry."""

    def __init__(self, existing: Job | None, message: str):
        super().__init__(message)
        self.existing = existing


class JobFailed(Exception):
    """Raised by a task function to fail its job with a clear message."""


class JobCancelled(Exception):
    """Raised by a task function that noticed its job was cancelled."""


def live_job(kind: str, entry_name: str) -> Job | None:
    """The queued or running job of *kind* for *entry_name* (there is at most one)."""
    return (
        Job.objects.filter(
            kind=kind, entry_name=entry_name, status__in=JobStatus.live()
        )
        .order_by("-created")
        .first()
    )


def enqueue(
    kind: JobKind,
    *,
    actor,
    entry: ModelEntry | None = None,
    entry_name: str = "",
    params: dict | None = None,
    message: str = "Queued",
) -> Job:
    """Create a queued job of *kind* and schedule it on its spec's queue.

    Raises :class:`JobConflict` when a job of the same kind is live for the entry
    (the database's one-live-job-per-kind-and-entry constraint).
    """
    spec = spec_for(kind)
    name = entry_name or (entry.name if entry else "")
    try:
        with transaction.atomic():
            job = Job.objects.create(
                kind=spec.kind,
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
        existing = live_job(spec.kind, name)
        who = f" by {existing.user_name}" if existing and existing.user_name else ""
        target = f" for {name}" if name else ""
        raise JobConflict(
            existing, f"A {spec.kind} job is already running{target}{who}."
        )
    queue = spec.queue()
    transaction.on_commit(lambda: _submit(job.pk, queue))
    return job


def _submit(job_id: int, queue: str = "") -> None:
    from django_q.tasks import async_task

    job = Job.objects.get(pk=job_id)
    # Only a named queue is passed on: without ``cluster`` django-q2 uses this
    # process's own queue, which is what single-queue sites have always done.
    routing = {"cluster": queue} if queue else {}
    try:
        task_id = async_task(TASK, job_id, task_name=f"{job.kind}-{job_id}", **routing)
    except (
        Exception
    ) as exc:  # broker down: fail the job visibly instead of leaving it queued
        logger.exception("could not queue job %s", job_id)
        finish(job, JobStatus.FAILED, error=f"Could not queue the job: {exc}")
        return
    if isinstance(task_id, str):
        Job.objects.filter(pk=job_id, task_id="").update(task_id=task_id[:64])


def run_job(job_id: int, *old_style_args: str):
    """django-q2 entry point: run one job's function and record the outcome.

    The function comes from the spec of ``job.kind``. A task queued before typed
    jobs also passed a dotted function path: such a job is failed with a message
    (start it again) instead of running something it may no longer mean.
    """
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
        if old_style_args:
            raise JobFailed(OLD_STYLE_TASK_MESSAGE)
        spec = _SPECS.get(job.kind)
        if spec is None:
            raise JobFailed(f"No job spec is registered for kind {job.kind!r}.")
        result = (
            priority.in_background(spec.func, job)
            if spec.background
            else spec.func(job)
        )
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
        or {JobStatus.SUCCEEDED: "Done", JobStatus.CANCELLED: "Cancelled"}.get(
            status, status
        )
    )[:500]  # the column's length; ``error`` keeps the whole text
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
    changed = Job.objects.filter(pk=job.pk, status__in=JobStatus.live()).update(
        status=JobStatus.CANCELLED, finished=timezone.now(), message="Cancelled"
    )
    return changed == 1


def request_cancel(job: Job, actor) -> bool:
    """Cancel *job* for *actor*, who needs its kind's cancel permission.

    Raises ``PermissionDenied`` otherwise; returns whether the job was still live.
    """
    if not actor.may(cancel_permission(job.kind)):
        raise PermissionDenied("You may not cancel this job.")
    return cancel(job)


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
