"""Requests to activate or stop: the one-activation-at-a-time rule for every front end.

The site's views queue a job (a worker then runs ``activate`` or ``stop``); the CLI
passes ``wait=True`` and runs them in its own process. Both get the same checks and
the same typed answer (:class:`SlotRequest`), so the CLI too is refused while
another activation or stop is in flight or queued.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from backends.choices import ActivationState, RequestOutcome
from backends.models import Activation
from registry.audit import Actor
from registry.jobs import JobConflict
from registry.models import Job, ModelEntry

from .activate import activate
from .errors import ActivationBusy, ActivationError, ActivationRefused
from .prepare import prepare
from .slot import ACTIVATE_JOB, busy_message, live_activation, pending_job
from .stop import stop


@dataclass(frozen=True)
class SlotRequest:
    """What became of a request, the operator-facing message, and what it produced."""

    outcome: RequestOutcome
    message: str
    job: Job | None = None
    activation: Activation | None = None

    @property
    def accepted(self) -> bool:
        return self.outcome in (RequestOutcome.QUEUED, RequestOutcome.DONE)


def slot_busy() -> str:
    """Why the slot cannot take a new activation now ("" when it can).

    Busy while an activation is starting or stopping, and while an activate or stop
    job is queued or running (it will claim the slot).
    """
    live = live_activation()
    if live is not None and live.state != ActivationState.RUNNING:
        return busy_message(live)
    pending = pending_job()
    if pending is not None:
        verb = "activating" if pending.kind == ACTIVATE_JOB else "stopping"
        target = pending.entry_name or "the active model"
        return f"{pending.user_name or 'someone'} is already {verb} {target}."
    return ""


def request_activation(
    entry: ModelEntry, actor: Actor, *, wait: bool = False
) -> SlotRequest:
    """Ask for ``entry`` to be activated, under the one-activation-at-a-time rule.

    ``REFUSED`` when the launch cannot work, ``BUSY`` while another activation or
    stop runs or is queued; nothing changed in either case. Otherwise ``QUEUED``
    with the activate job, or with ``wait=True`` the activation runs here until the
    server is ready (``DONE``, with the activation) or fails (``REFUSED``, ``BUSY``
    or ``FAILED``). With ``wait`` the launch is validated by ``activate`` itself,
    inside its audit row, as before.
    """
    if not wait:
        try:
            prepare(entry)
        except ActivationRefused as exc:
            return SlotRequest(RequestOutcome.REFUSED, str(exc))
    busy = slot_busy()
    if busy:
        return SlotRequest(RequestOutcome.BUSY, busy)
    if wait:
        return _run_here(
            lambda: activate(entry, actor),
            lambda act: f"Active: {act.logical_name} on port {act.port}.",
        )
    from backends import tasks  # tasks imports the service facade: import at call time

    try:
        job = tasks.enqueue_activation(entry, actor)
    except JobConflict as exc:
        return SlotRequest(RequestOutcome.BUSY, str(exc))
    return SlotRequest(RequestOutcome.QUEUED, f"Activating {entry.name}…", job=job)


def request_stop(actor: Actor, *, wait: bool = False) -> SlotRequest:
    """Ask for the served model to be stopped (a start in progress is cancelled).

    ``QUEUED`` with the stop job (``BUSY`` when a stop is already queued), or with
    ``wait=True`` stopped here: ``DONE`` (``activation`` is None when nothing was
    active) or ``BUSY``/``REFUSED``/``FAILED`` with the reason.
    """
    if wait:
        return _run_here(
            lambda: stop(actor),
            lambda act: (
                "Stopped active vLLM instance."
                if act is not None
                else "No vLLM model was active."
            ),
        )
    from backends import tasks  # tasks imports the service facade: import at call time

    live = live_activation()
    try:
        job = tasks.enqueue_stop(actor, name=live.logical_name if live else "")
    except JobConflict as exc:
        return SlotRequest(RequestOutcome.BUSY, str(exc))
    return SlotRequest(
        RequestOutcome.QUEUED, "Stopping the active vLLM model…", job=job
    )


def _run_here(
    run: Callable[[], Activation | None],
    describe: Callable[[Activation | None], str],
) -> SlotRequest:
    """Run an activate or stop in this process; its errors become the outcome."""
    try:
        act = run()
    except ActivationError as exc:
        return SlotRequest(_outcome_of(exc), str(exc))
    return SlotRequest(RequestOutcome.DONE, describe(act), activation=act)


def _outcome_of(exc: ActivationError) -> RequestOutcome:
    if isinstance(exc, ActivationRefused):
        return RequestOutcome.REFUSED
    if isinstance(exc, ActivationBusy):
        return RequestOutcome.BUSY
    return RequestOutcome.FAILED
