"""django-q2 task functions for activation jobs (run through ``registry.jobs.run_job``).

Activation work needs the GPU host: the worker that starts vLLM is the one that can
later signal it and judge its pid. With ``IMAGEWORKS_VLLM_QUEUE`` set, activate and
stop jobs and the periodic reconcile go to that django-q2 queue (the GPU host's
``Q_CLUSTER_NAME=<queue> manage.py qcluster``); everything else stays on the site
queue.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from registry.audit import Actor
from registry.choices import JobKind
from registry.jobs import JobCancelled, JobFailed, enqueue, progress
from registry.models import Job, ModelEntry

from .vllm import service
from .vllm.options import NO_OPTIONS, SlotOptions

RECONCILE_TASK = "backends.tasks.reconcile_vllm"
RECONCILE_SCHEDULE = "vllm-reconcile"


def _queued(text: str, queue: str) -> str:
    return f"{text} (queue {queue})" if queue else text


def _actor(job: Job) -> Actor:
    return Actor(name=job.user_name or "system", source=job.source, user=job.user)


def enqueue_activation(
    entry: ModelEntry, actor: Actor, *, options: SlotOptions = NO_OPTIONS
) -> Job:
    """Queue an activation job (``JobConflict`` if one is already live for the entry).

    The operator's choices (preflight override, wait for or cut in-flight requests,
    reason) travel in ``Job.params``."""
    queue = service.vllm_queue()
    return enqueue(
        JobKind.ACTIVATE,
        actor=actor,
        entry=entry,
        params=options.as_params(),
        message=_queued(f"Queued: activate {entry.name}", queue),
    )


def enqueue_stop(
    actor: Actor, *, name: str = "", options: SlotOptions = NO_OPTIONS
) -> Job:
    queue = service.vllm_queue()
    return enqueue(
        JobKind.STOP,
        actor=actor,
        entry_name=name,
        params=options.as_params(),
        message=_queued("Queued: stop vLLM", queue),
    )


def activate_job(job: Job) -> dict:
    """Preflight, wait for the replaced model's requests, start, wait until ready;
    then, as its last step, measure the GPU memory the server holds."""
    entry = job.entry or ModelEntry.objects.filter(name=job.entry_name).first()
    if entry is None:
        raise JobFailed(f"Model '{job.entry_name}' no longer exists in the registry.")
    options = SlotOptions.from_params(job.params)
    try:
        act = service.activate(entry, _actor(job), job=job, options=options)
    except service.DrainCancelled as exc:
        raise JobCancelled(str(exc))
    except service.ActivationError as exc:
        raise JobFailed(str(exc))
    finally:
        _check_vllm_now()
    progress(job, 0.95, f"Measuring the GPU memory {act.logical_name} holds")
    measured = service.record_memory(act, job)
    return {
        "activation": act.pk,
        "logical_name": act.logical_name,
        "port": act.port,
        "pid": act.pid,
        "time_to_ready_s": act.time_to_ready_s,
        "memory": measured,
    }


def stop_job(job: Job) -> dict:
    options = SlotOptions.from_params(job.params)
    try:
        act = service.stop(_actor(job), job=job, options=options)
    except service.DrainCancelled as exc:
        raise JobCancelled(str(exc))
    except service.ActivationError as exc:
        raise JobFailed(str(exc))
    finally:
        _check_vllm_now()
    if act is None:
        return {"stopped": None, "message": "No vLLM model was active."}
    return {
        "stopped": act.logical_name,
        "activation": act.pk,
        "exit_code": act.exit_code,
    }


def _check_vllm_now() -> None:
    """Activation and stop end with a vLLM health check (every open page sees it)."""
    from .health.check import check_vllm_now

    check_vllm_now()


def vllm_queue() -> str:
    """The queue of the activate and stop jobs (``BackendsConfig.ready()`` registers
    them by name: ``activate_job``, ``stop_job`` and this)."""
    return service.vllm_queue()


def reconcile_vllm() -> dict:
    """django-q2 task: reconcile the vLLM slot on the machine this worker runs on.

    Scheduled on the GPU host's queue (``ensure_reconcile_schedule``): only there can
    a dead server be told from one running on another machine.
    """
    return {
        "host": settings.IMAGEWORKS_HOST_NAME,
        "actions": service.adopt_or_clean(),
    }


def ensure_reconcile_schedule(minutes: int = 1):
    """Create, update or remove the GPU host's reconcile schedule (idempotent).

    With ``IMAGEWORKS_VLLM_QUEUE`` set, the scheduled health check (site queue) can
    no longer clear a dead local-mode server, since its pid lives on the GPU host;
    this schedule runs ``reconcile_vllm`` there instead. Without a queue it is
    deleted: the health check reconciles as before. Returns the schedule or None.
    """
    from django_q.models import Schedule

    queue = service.vllm_queue()
    if not queue:
        Schedule.objects.filter(name=RECONCILE_SCHEDULE).delete()
        return None
    schedule = Schedule.objects.filter(name=RECONCILE_SCHEDULE).first()
    if schedule is None:
        schedule = Schedule(
            name=RECONCILE_SCHEDULE, next_run=timezone.now() + timedelta(seconds=30)
        )
    schedule.func = RECONCILE_TASK
    schedule.schedule_type = Schedule.MINUTES
    schedule.minutes = minutes
    schedule.repeats = -1
    schedule.cluster = queue
    schedule.save()
    return schedule
