"""django-q2 entry points for registry syncs.

* :func:`sync_registry_task`: the schedule's task (``ensure_sync_schedule`` creates
  it). Implicit: it writes an audit row only when something changed, so a
  once-a-minute schedule does not flood the action log with "no change" rows.
* :func:`sync_job`: the task function of ``JobKind.SYNC`` jobs, for a Reload button
  that wants a polled job instead of a synchronous call::

      job = enqueue(JobKind.SYNC, actor=actor, params={"force": True})
"""

from __future__ import annotations

from .audit import Actor
from .choices import Source
from .priority import in_background
from .services.sync import layer_bytes, sync_registry

TASK = "registry.tasks.sync_registry_task"
SCHEDULE_NAME = "registry-sync"


def sync_registry_task(force: bool = False) -> dict:
    """Scheduled sync: cheap no-op when no file changed; returns ``SyncResult.as_dict``.

    Also reaps jobs whose worker died (``registry.jobs.mark_stale_jobs``), so a job
    killed mid-run is failed with a reason within minutes instead of "running" forever.
    """
    reaped = reap_stale_jobs()
    actor = Actor.system("scheduler", source=Source.SCHEDULE)
    result = in_background(lambda: sync_registry(actor, force=force, explicit=False))
    return {**result.as_dict(), "summary": result.summary(), "reaped_jobs": reaped}


def reap_stale_jobs() -> int:
    """Fail jobs silent for 10 minutes; queued ones only after twice the task timeout
    (a long verify can legitimately keep later jobs waiting)."""
    from datetime import timedelta

    from django.conf import settings

    from .jobs import mark_stale_jobs

    timeout = int((getattr(settings, "Q_CLUSTER", {}) or {}).get("timeout") or 3600)
    return mark_stale_jobs(
        timedelta(minutes=10), max_queued=timedelta(seconds=max(3600, 2 * timeout))
    )


def sync_job(job) -> dict:
    """Job function: an explicit sync (one audit row, linked to the job)."""
    from .jobs import JobFailed, progress

    actor = Actor(
        name=job.user_name or "system",
        source=job.source or Source.WEB,
        user=job.user,
    )
    params = job.params or {}
    progress(job, 0.1, "Reading the registry files")
    result = sync_registry(
        actor,
        force=bool(params.get("force", True)),
        explicit=bool(params.get("explicit", True)),
    )
    if result.action is not None and result.action.job_id is None:
        result.action.job = job
        result.action.save(update_fields=["job"])
    if not result.ok:
        raise JobFailed(result.summary())
    progress(job, 1.0, result.summary())
    return {**result.as_dict(), "summary": result.summary()}


def ensure_sync_schedule(minutes: int = 1):
    """Create or update the periodic sync schedule (idempotent); returns it."""
    from django_q.models import Schedule

    schedule, _ = Schedule.objects.update_or_create(
        name=SCHEDULE_NAME,
        defaults={
            "func": TASK,
            "schedule_type": Schedule.MINUTES,
            "minutes": max(1, int(minutes)),
            "repeats": -1,
        },
    )
    return schedule


def request_sync(actor: Actor, *, force: bool = False, explicit: bool = True):
    """Sync now, or hand a big registry's sync to ONE background job.

    Returns ``(SyncResult, None)`` or ``(None, Job)``. Mirroring a 10,000-entry
    registry takes tens of seconds: done inside web requests it stalls every web
    worker at once (measured by bench/load_test.py). Registries up to
    ``IMAGEWORKS_INLINE_SYNC_MAX_BYTES`` of layer files (the usual case) still sync
    inline, so a page shows outside edits immediately. The one-live-job-per-kind
    constraint makes the background sync single-flight across all processes.
    """
    from django.conf import settings

    from .choices import JobKind
    from .jobs import JobConflict, enqueue
    from .services import sync

    if not force:
        rows = sync.unchanged_layer_files()
        if rows is not None:  # the common case: 3 stats and 1 query, then done
            return sync.no_change(actor, rows, explicit=explicit), None
    if layer_bytes() <= settings.IMAGEWORKS_INLINE_SYNC_MAX_BYTES:
        return sync.sync_registry(actor, force=force, explicit=explicit), None
    try:
        job = enqueue(
            JobKind.SYNC,
            actor=actor,
            params={"force": force, "explicit": explicit},
            message="Reading the registry files",
        )
    except JobConflict as exc:
        job = exc.existing
    return None, job
