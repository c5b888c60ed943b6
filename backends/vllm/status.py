"""Queries for the UI, the CLI and health: the current model and the slot's status."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Q, Subquery
from django.utils import timezone

from backends.choices import ActivationState
from backends.models import Activation
from registry.models import Job

from .command import VllmConfig
from .slot import (
    ACTIVATE_JOB,
    LIVE,
    SLOT,
    config,
    live_activation,
    pending_job,
    state_dict,
    state_path,
)


def adopt_or_clean(*, cfg: VllmConfig | None = None) -> list[str]:
    """:func:`.reconcile.adopt_or_clean`, imported when first needed.

    The reconcile module brings psutil, the HTTP client and (when it runs) filelock:
    ``imageworks-models current-model`` imports them only when there is something to
    judge (``tests/registry/test_cli.py`` checks it).
    """
    from .reconcile import adopt_or_clean as reconcile

    return reconcile(cfg=cfg)


def nothing_to_reconcile(cfg: VllmConfig) -> bool:
    """True when reconciling could find nothing to adopt, clean or judge.

    That is local mode (proxy mode asks the admin service even without a state file),
    no state file (not even a broken one or a dangling link) and no live row: then
    :func:`.reconcile.adopt_or_clean` would only read these two and return ``[]``.
    The file is checked first, so a server adopted from it meanwhile is not missed.
    """
    if cfg.proxy_mode or os.path.lexists(state_path(cfg)):
        return False
    return live_activation() is None


def current() -> dict[str, Any] | None:
    """The active model's five-field state, or None (after reconciling with reality).

    Reconciles first (a server found dead is recorded and reported as None, one
    started elsewhere is adopted), except when :func:`nothing_to_reconcile`.
    """
    if nothing_to_reconcile(config()):
        return None
    adopt_or_clean()
    live = live_activation()
    if live is None or live.state != ActivationState.RUNNING:
        return None
    return state_dict(live)


@dataclass
class SlotStatus:
    """What the status partial shows. ``terminal`` = nothing in flight (stop polling)."""

    state: str  # "idle" | starting | running | stopping | stopped | failed | "queued"
    label: str
    logical_name: str = ""
    user_name: str = ""
    elapsed_s: float | None = None
    port: int | None = None
    pid: int | None = None
    error: str = ""
    activation: Activation | None = None
    job: Job | None = None
    terminal: bool = True
    extra: dict = field(default_factory=dict)
    # The machine running a local-mode server launched elsewhere ("" = this one).
    elsewhere: str = ""

    @property
    def is_active(self) -> bool:
        return self.state == ActivationState.RUNNING

    @property
    def token(self) -> str:
        """Changes whenever what the status partial shows changes (cheap watch polling)."""
        act = (
            f"{self.activation.pk}:{self.activation.state}" if self.activation else "-"
        )
        job = f"{self.job.pk}:{self.job.status}" if self.job else "-"
        return f"{self.state}|{act}|{job}"


_LIVE_LABELS = {
    ActivationState.STARTING: "Activating…",
    ActivationState.RUNNING: "Active",
    ActivationState.STOPPING: "Stopping…",
}


def live_and_last() -> tuple[Activation | None, Activation | None]:
    """The slot's live activation and its newest one, in one query (the live one, by
    the one-live-per-slot constraint, and the newest row by primary key lookup)."""
    newest = Activation.objects.filter(slot=SLOT).values("pk")[:1]
    rows = list(
        Activation.objects.filter(
            Q(slot=SLOT, state__in=LIVE) | Q(pk=Subquery(newest))
        ).select_related("entry")
    )
    live = next((row for row in rows if row.state in LIVE), None)
    return live, (rows[0] if rows else None)


def status() -> SlotStatus:
    """Cheap (database only) status of the vLLM slot for polling."""
    pending = pending_job()
    live, last = live_and_last()
    now = timezone.now()
    if live is not None:
        return _live_status(live, pending, now)
    if pending is not None:
        label = "Activating…" if pending.kind == ACTIVATE_JOB else "Stopping…"
        return SlotStatus(
            state="queued",
            label=label,
            logical_name=pending.entry_name,
            user_name=pending.user_name,
            elapsed_s=(now - pending.created).total_seconds(),
            job=pending,
            terminal=False,
        )
    if last is None:
        return SlotStatus(state="idle", label="No model active")
    label = "Failed" if last.state == ActivationState.FAILED else "Stopped"
    return SlotStatus(
        state=last.state,
        label=label,
        logical_name=last.logical_name,
        user_name=last.user_name,
        error=last.error if last.state == ActivationState.FAILED else "",
        activation=last,
        extra={"exit_code": last.exit_code},
    )


def _live_status(live: Activation, pending: Job | None, now: datetime) -> SlotStatus:
    """Activating / Active / Stopping, with how long (since requested, or since ready)."""
    since = (
        live.requested_at
        if live.state == ActivationState.STARTING
        else live.last_updated
    )
    elapsed = (
        now
        - (
            live.requested_at
            if live.state != ActivationState.RUNNING
            else (live.ready_at or since)
        )
    ).total_seconds()
    return SlotStatus(
        state=live.state,
        label=_LIVE_LABELS[live.state],
        logical_name=live.logical_name,
        user_name=live.user_name,
        elapsed_s=max(elapsed, 0.0),
        port=live.port,
        pid=live.pid,
        activation=live,
        job=pending,
        terminal=live.state == ActivationState.RUNNING and pending is None,
        elsewhere=live.host_name if live.launched_elsewhere else "",
    )
