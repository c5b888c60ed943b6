"""Stop the served model, or cancel a start in progress (one audit row per stop)."""

from __future__ import annotations

from django.utils import timezone

from backends.choices import ActivationState
from backends.models import Activation
from registry.audit import Actor, audited
from registry.choices import Action
from registry.models import Job

from . import statefile
from .errors import ActivationBusy, ActivationFailed, ActivationRefused
from .handover import Notify, describe_wait, wait_before_stop
from .hosts import elsewhere_refusal
from .options import NO_OPTIONS, SlotOptions
from .reconcile import adopt_or_clean
from .server import finish_stopped, stop_process
from .slot import (
    busy_message,
    config,
    live_activation,
    mode,
    progress,
    retry_locked,
    state_dict,
    state_path,
)


def stop(
    actor: Actor,
    *,
    job: Job | None = None,
    options: SlotOptions = NO_OPTIONS,
    notify: Notify | None = None,
) -> Activation | None:
    """Stop the served model (or cancel a start in progress).

    A running model is stopped after waiting ``options.drain_s`` seconds for its
    in-flight requests (what was cut off, and ``options.reason``, go into the audit
    row). Returns the stopped ``Activation`` or None when nothing was active
    (reported truthfully, unlike the original's F16). Raises ``ActivationBusy`` if
    a stop or replacement is already under way, ``DrainCancelled`` if the job was
    cancelled during the wait (the model keeps running), ``ActivationFailed`` if
    processes survive.

    Long on purpose: one readable sequence (refuse, drain, signal, wait, record)
    whose steps share the live row and its error paths; split, the order would hide.
    """
    cfg = config()
    adopt_or_clean()
    live = live_activation()
    with audited(
        actor,
        Action.STOP,
        entry=live.entry if live else None,
        entry_name=live.logical_name if live else "",
        job=job,
        details={"mode": mode(cfg)},
    ) as audit:
        if live is None:
            removed = statefile.remove_state(state_path(cfg))
            audit.message = "No vLLM model was active." + (
                " Removed a leftover state file." if removed else ""
            )
            return None
        if live.state == ActivationState.STOPPING:
            raise ActivationBusy(busy_message(live))
        if live.launched_elsewhere:
            raise ActivationRefused(elsewhere_refusal(live, "stopped"))
        audit.before = state_dict(live)
        if options.reason:
            audit.details["reason"] = options.reason
        was_running = live.state == ActivationState.RUNNING
        note = _claim(live, actor, options.reason)
        waited = {}
        if was_running:
            waited = wait_before_stop(live, options, cfg, job=job, notify=notify)
            audit.details.update(waited)
        progress(job, 0.2, f"Stopping {live.logical_name}")
        result = stop_process(live, cfg)
        statefile.remove_state(state_path(cfg))
        retry_locked(lambda: finish_stopped(live, result, note=note))
        live.refresh_from_db()
        audit.details.update(
            activation=live.pk,
            pid=live.pid,
            exit_code=live.exit_code,
            killed=bool(result and result.killed),
        )
        if live.state == ActivationState.FAILED:
            raise ActivationFailed(live.error)
        how = (
            " (SIGKILL after the grace period)"
            if result is not None and result.killed
            else ""
        )
        code = f", exit code {live.exit_code}" if live.exit_code is not None else ""
        audit.message = (
            f"Stopped {live.logical_name}{describe_wait(waited)}{how}{code}."
            + (f" Reason: {options.reason}" if options.reason else "")
        )
        return live


def _claim(live: Activation, actor: Actor, reason: str = "") -> str:
    """Take the slot for the stop: conditional starting/running -> stopping (one winner).

    Returns the note recorded on the row; *live* is refreshed (the activator may
    have stored its pid just before).
    """
    was = live.state
    note = (
        f"Stopped by {actor.name}"
        + (" during start" if was == ActivationState.STARTING else "")
        + (f": {reason}" if reason else "")
    )
    claimed = retry_locked(
        lambda: Activation.objects.filter(pk=live.pk, state=was).update(
            state=ActivationState.STOPPING, error=note, last_updated=timezone.now()
        )
    )
    if claimed != 1:
        raise ActivationBusy(busy_message(live_activation()))
    live.refresh_from_db()
    return note
