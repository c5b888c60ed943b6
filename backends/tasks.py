"""django-q2 task functions for activation jobs (run through ``registry.jobs.run_job``)."""

from __future__ import annotations

from registry.audit import Actor
from registry.jobs import JobFailed, enqueue
from registry.models import Job, ModelEntry

from .vllm import service

ACTIVATE_TASK = "backends.tasks.activate_job"
STOP_TASK = "backends.tasks.stop_job"


def _actor(job: Job) -> Actor:
    return Actor(name=job.user_name or "system", source=job.source, user=job.user)


def enqueue_activation(entry: ModelEntry, actor: Actor) -> Job:
    """Queue an activation job (``JobConflict`` if one is already live for the entry)."""
    return enqueue(
        "activate",
        ACTIVATE_TASK,
        actor=actor,
        entry=entry,
        message=f"Queued: activate {entry.name}",
    )


def enqueue_stop(actor: Actor, *, name: str = "") -> Job:
    return enqueue(
        "stop", STOP_TASK, actor=actor, entry_name=name, message="Queued: stop vLLM"
    )


def activate_job(job: Job) -> dict:
    entry = job.entry or ModelEntry.objects.filter(name=job.entry_name).first()
    if entry is None:
        raise JobFailed(f"Model '{job.entry_name}' no longer exists in the registry.")
    try:
        act = service.activate(entry, _actor(job), job=job)
    except service.ActivationError as exc:
        raise JobFailed(str(exc))
    return {
        "activation": act.pk,
        "logical_name": act.logical_name,
        "port": act.port,
        "pid": act.pid,
        "time_to_ready_s": act.time_to_ready_s,
    }


def stop_job(job: Job) -> dict:
    try:
        act = service.stop(_actor(job), job=job)
    except service.ActivationError as exc:
        raise JobFailed(str(exc))
    if act is None:
        return {"stopped": None, "message": "No vLLM model was active."}
    return {
        "stopped": act.logical_name,
        "activation": act.pk,
        "exit_code": act.exit_code,
    }
