"""The vLLM slot: its live row, its jobs, its state file, and helpers every stage shares.

The rest of the package (activate, stop, reconcile, status, hosts) builds on these;
nothing here starts, stops or judges a process.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from django.db import OperationalError

from backends.choices import ActivationMode, ActivationState
from backends.models import Activation
from registry.audit import Actor, record
from registry.choices import Action, JobKind, JobStatus, Source
from registry.jobs import progress as job_progress
from registry.models import Job

from . import statefile
from .command import VllmConfig

T = TypeVar("T")

SLOT = "vllm"
LIVE = ActivationState.live()
RECONCILER = Actor.system("reconcile", source=Source.SYSTEM)
#: The job kinds that act on the slot (``backends.tasks``'s activate and stop jobs).
ACTIVATE_JOB = JobKind.ACTIVATE
STOP_JOB = JobKind.STOP
SLOT_JOB_KINDS = (ACTIVATE_JOB, STOP_JOB)


def config() -> VllmConfig:
    return VllmConfig.from_settings()


def live_activation() -> Activation | None:
    """The starting, running or stopping activation of the slot, if any."""
    return (
        Activation.objects.filter(slot=SLOT, state__in=LIVE)
        .select_related("entry")
        .first()
    )


def pending_job() -> Job | None:
    """The newest queued or running activate/stop job, if any."""
    return (
        Job.objects.filter(kind__in=SLOT_JOB_KINDS, status__in=JobStatus.live())
        .order_by("-created")
        .first()
    )


def busy_message(live: Activation | None) -> str:
    """``alice is already activating B`` (or stopping A) for the loser of a race."""
    if live is None:
        return "Another activation is in progress."
    who = live.user_name or "someone"
    if live.state == ActivationState.STARTING:
        return f"{who} is already activating {live.logical_name}."
    if live.state == ActivationState.STOPPING:
        m = re.match(r"Replaced by (.+) \(requested by (.+)\)$", live.error or "")
        if m:
            return f"{m.group(2)} is already activating {m.group(1)} (stopping {live.logical_name} first)."
        return f"{who} is already stopping {live.logical_name}."
    return f"{live.logical_name} is active (started by {who})."


def state_dict(act: Activation) -> dict[str, Any]:
    """The five-field state of a running activation (the state file's format)."""
    started = act.started_at or act.requested_at
    if not act.pid:
        return {
            "logical_name": act.logical_name,
            "served_model_id": act.served_model_id,
            "port": act.port,
            "pid": None,
            "started_at": started.timestamp(),
        }
    return statefile.make_state(
        logical_name=act.logical_name,
        served_model_id=act.served_model_id,
        port=act.port,
        pid=act.pid,
        started_at=started.timestamp(),
    )


def state_path(cfg: VllmConfig) -> Path:
    return statefile.state_path(cfg.staging_dir)


def mode(cfg: VllmConfig) -> str:
    return ActivationMode.PROXY if cfg.proxy_mode else ActivationMode.LOCAL


def reconciled(msg: str, act: Activation, **extra: Any) -> list[str]:
    """Record one reconcile step for *act* (one audit row) and return its message."""
    record(
        RECONCILER,
        Action.RECONCILE,
        entry=act.entry,
        entry_name=act.logical_name,
        message=msg,
        **extra,
    )
    return [msg]


def as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def progress(job: Job | None, fraction: float, message: str) -> None:
    if job is not None:
        job_progress(job, fraction, message)


def retry_locked(fn: Callable[[], T], attempts: int = 50) -> T | None:
    """Run a short DB write, retrying SQLite "database is locked" contention.

    SQLite (the embedded default) reports writer contention as OperationalError
    rather than waiting in some configurations; PostgreSQL never hits this path.
    """
    delay = 0.01
    for i in range(attempts):
        try:
            return fn()
        except OperationalError as exc:
            if "locked" not in str(exc).lower() or i == attempts - 1:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
    return None
