"""In-flight requests of the model about to be stopped or replaced (issue 13 §4).

* At request time (:func:`check_in_flight`): the running server's ``/metrics`` is
  read once; when requests are in flight and the operator chose neither to wait
  (``drain_s``) nor to stop now (``force`` + reason), the request is refused with
  how many, before anything is queued or touched.
* Inside the stop or activate job, after the slot was claimed (``running ->
  stopping``) and before the server is signalled (:func:`wait_for_requests`): wait
  up to ``drain_s`` seconds for the server to become idle, reporting progress and
  keeping the row's heartbeat fresh (so reconciliation does not take the wait for
  a dead worker), then stop whatever is left. Cancelling the job meanwhile leaves
  the model running (:func:`restore_running`).

Metrics that cannot be read are "unknown", never "idle": the request is not
refused for them (a hung server must stay stoppable) and the audit row says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from backends import clients
from backends.choices import ActivationState
from backends.models import Activation
from registry.jobs import is_cancel_requested
from registry.models import Job

from . import drain
from .command import VllmConfig
from .errors import DrainCancelled, InFlightRefused
from .options import SlotOptions
from .slot import config, live_activation, progress, retry_locked

#: How often the waiting job refreshes ``Activation.last_updated`` (seconds).
HEARTBEAT_S = 5.0
Notify = Callable[[str], None]


def server_url(act: Activation, cfg: VllmConfig) -> str:
    """Where the activation's server answers (its advertised address, else ours)."""
    return act.base_url or cfg.base_url(act.port)


def read_in_flight(
    act: Activation, cfg: VllmConfig, *, timeout: float = 1.0
) -> clients.InFlight:
    """One reading of the server's running and waiting requests."""
    return drain.in_flight(
        server_url(act, cfg), model_name=act.served_model_id, timeout=timeout
    )


@dataclass
class InFlightView:
    """What the Stop and Activate dialogs show: the running model and its requests."""

    live: Activation | None = None
    reading: clients.InFlight | None = None


def in_flight_view(*, replacing: str = "") -> InFlightView:
    """The running model's in-flight requests, for a dialog about stopping it (or
    about replacing it with ``replacing``: empty when that model is the running one).
    A server on another machine is not asked (stopping it is refused anyway)."""
    live = live_activation()
    if (
        live is None
        or live.state != ActivationState.RUNNING
        or live.launched_elsewhere
        or (replacing and live.logical_name == replacing)
    ):
        return InFlightView()
    return InFlightView(live, read_in_flight(live, config()))


def check_in_flight(
    live: Activation | None, options: SlotOptions, cfg: VllmConfig, *, verb: str
) -> clients.InFlight | None:
    """Refuse a stop or replacement of a busy server the operator made no choice for.

    Returns the reading (None when nothing runs, or when the operator already chose
    to wait or to stop now). ``verb`` names the action in the message ("stop",
    "replace").
    """
    if live is None or live.state != ActivationState.RUNNING:
        return None
    if options.force or options.drain_s > 0:
        return None
    reading = read_in_flight(live, cfg)
    if reading.busy:
        raise InFlightRefused(
            f"{live.logical_name} is answering requests ({reading.describe()}). "
            f"Choose to wait until they finish, or to {verb} it now with a reason.",
            reading,
        )
    return reading


def wait_for_requests(
    act: Activation,
    options: SlotOptions,
    cfg: VllmConfig,
    *,
    job: Job | None = None,
    notify: Notify | None = None,
) -> dict[str, Any]:
    """Between claiming the slot and signalling the server: wait, or note what is cut.

    Returns what to record in the audit row's details. Raises
    :class:`DrainCancelled` when the job is cancelled during the wait (the caller
    puts the row back to running with :func:`restore_running`).
    """
    url = server_url(act, cfg)
    if options.drain_s <= 0:
        reading = drain.in_flight(url, model_name=act.served_model_id, timeout=1.0)
        return {"in_flight": reading.describe(), "stopped_now": bool(options.force)}
    say = _reporter(act, options.drain_s, job, notify)
    say(0.0, None)
    result = drain.drain(
        url,
        timeout=options.drain_s,
        model_name=act.served_model_id,
        cancelled=_cancel_probe(job),
        on_tick=say,
    )
    if result.cancelled:
        raise DrainCancelled(
            f"Cancelled while waiting for requests on {act.logical_name}; "
            f"it keeps running ({result.last.describe()})."
        )
    if notify is not None:
        notify(result.message)
    return {
        "drain": {
            "seconds": options.drain_s,
            "idle": result.idle,
            "waited_s": round(result.waited_s, 1),
            "message": result.message,
            "left": result.last.describe(),
        }
    }


def wait_before_stop(
    act: Activation,
    options: SlotOptions,
    cfg: VllmConfig,
    *,
    job: Job | None = None,
    notify: Notify | None = None,
) -> dict[str, Any]:
    """:func:`wait_for_requests`, putting the row back to running when the wait is
    cancelled (the server was never signalled)."""
    try:
        return wait_for_requests(act, options, cfg, job=job, notify=notify)
    except DrainCancelled:
        restore_running(act)
        raise


def describe_wait(details: dict[str, Any]) -> str:
    """One sentence for the audit message: what the wait did ("" when none)."""
    wait = details.get("drain")
    if wait:
        if wait["idle"] is True:
            return f" after its requests finished ({wait['waited_s']:g}s)"
        if wait["idle"] is None:
            return " (in-flight requests could not be read)"
        return f" after waiting {wait['seconds']:g}s ({wait['left']} cut off)"
    left = details.get("in_flight", "")
    if left and left != "idle" and not left.startswith("unknown"):
        return f" with {left} cut off"
    return ""


def restore_running(act: Activation) -> None:
    """Undo a claim (stopping -> running) after a cancelled wait: the server was
    never signalled, so it still serves."""
    retry_locked(
        lambda: Activation.objects.filter(
            pk=act.pk, state=ActivationState.STOPPING
        ).update(state=ActivationState.RUNNING, error="", last_updated=timezone.now())
    )
    act.refresh_from_db()


def _reporter(
    act: Activation, seconds: float, job: Job | None, notify: Notify | None
) -> Callable[[float, clients.InFlight | None], None]:
    """Progress for the job and the CLI, plus the row's heartbeat."""
    last_beat = [time.monotonic()]

    def say(elapsed: float, reading: clients.InFlight | None) -> None:
        what = reading.describe() if reading is not None else "in-flight requests"
        text = (
            f"Waiting for {what} on {act.logical_name} to finish "
            f"({elapsed:.0f}s of {seconds:g}s)"
        )
        progress(job, 0.02 + 0.06 * min(elapsed / max(seconds, 1.0), 1.0), text)
        if notify is not None and reading is not None:
            notify(text)
        if time.monotonic() - last_beat[0] >= HEARTBEAT_S:
            last_beat[0] = time.monotonic()
            retry_locked(
                lambda: Activation.objects.filter(
                    pk=act.pk, state=ActivationState.STOPPING
                ).update(last_updated=timezone.now())
            )

    return say


def _cancel_probe(job: Job | None) -> Callable[[], bool] | None:
    if job is None:
        return None
    return lambda: is_cancel_requested(job)
