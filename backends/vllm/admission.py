"""Requests to activate or stop: the one-activation-at-a-time rule for every front end.

The site's views and the REST API queue a job (a worker then runs ``activate`` or
``stop``); the CLI passes ``wait=True`` and runs them in its own process. All get
the same checks and the same typed answer (:class:`SlotRequest`): refused while
another activation or stop is in flight or queued, refused when preflight fails
(unless overridden with a reason), refused when the model to stop or replace is
answering requests and the operator chose neither to wait nor to stop now
(:class:`~backends.vllm.options.SlotOptions`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from backends.choices import ActivationState, RequestOutcome
from backends.clients import InFlight
from backends.models import Activation
from registry.audit import Actor
from registry.jobs import JobConflict
from registry.models import Job, ModelEntry

from .activate import activate
from .command import LaunchSpec
from .errors import ActivationBusy, ActivationError, ActivationRefused
from .handover import Notify, check_in_flight
from .memory import record_measurement
from .options import NO_OPTIONS, SlotOptions
from .preflight import PreflightReport, run_preflight
from .prepare import preflight_gate, prepare
from .slot import ACTIVATE_JOB, busy_message, config, live_activation, pending_job
from .stop import stop

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlotRequest:
    """What became of a request, the operator-facing message, and what it produced.

    ``preflight`` is the report when preflight refused the activation (the front
    ends list its checks); ``in_flight`` the reading when requests in flight on the
    model to stop or replace refused it.
    """

    outcome: RequestOutcome
    message: str
    job: Job | None = None
    activation: Activation | None = None
    preflight: PreflightReport | None = None
    in_flight: InFlight | None = None

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
    entry: ModelEntry,
    actor: Actor,
    *,
    wait: bool = False,
    options: SlotOptions = NO_OPTIONS,
    notify: Notify | None = None,
) -> SlotRequest:
    """Ask for ``entry`` to be activated, under the one-activation-at-a-time rule.

    ``REFUSED`` when the launch cannot work, preflight failed without an override
    (``preflight`` holds the report), the options are inconsistent, or the model it
    replaces has requests in flight and the operator chose neither to wait nor to
    replace it now (``in_flight``); ``BUSY`` while another activation or stop runs
    or is queued; nothing changed in these cases. Otherwise ``QUEUED`` with the
    activate job, or with ``wait=True`` the activation runs here until the server
    is ready (``DONE``, with the activation) or fails (``REFUSED``, ``BUSY`` or
    ``FAILED``). With ``wait`` the launch and the preflight are checked by
    ``activate`` itself, inside its audit row.
    """
    problem = options.problem()
    if problem:
        return SlotRequest(RequestOutcome.REFUSED, problem)
    cfg = config()
    try:
        spec = prepare(entry, cfg)
    except ActivationRefused as exc:
        if not wait:
            return SlotRequest(RequestOutcome.REFUSED, str(exc))
        spec = None  # activate refuses it again, inside its audit row
    busy = slot_busy()
    if busy:
        return SlotRequest(RequestOutcome.BUSY, busy)
    try:
        if not wait:
            preflight_gate(run_preflight(entry, cfg=cfg), options)
        live = live_activation()
        if spec is not None and _replaces(live, spec):
            check_in_flight(live, options, cfg, verb="replace")
    except ActivationError as exc:
        return _refusal(exc)
    if wait:
        answer = _run_here(
            lambda: activate(entry, actor, options=options, notify=notify),
            lambda act: f"Active: {act.logical_name} on port {act.port}.",
        )
        if answer.activation is not None:
            record_memory(answer.activation)
        return answer
    from backends import tasks  # tasks imports the service facade: import at call time

    try:
        job = tasks.enqueue_activation(entry, actor, options=options)
    except JobConflict as exc:
        return SlotRequest(RequestOutcome.BUSY, str(exc))
    return SlotRequest(RequestOutcome.QUEUED, f"Activating {entry.name}…", job=job)


def _replaces(live: Activation | None, spec: LaunchSpec) -> bool:
    """Would this launch stop the running model (another one, or a changed command)?"""
    return (
        live is not None
        and live.state == ActivationState.RUNNING
        and not (
            live.logical_name == spec.logical_name
            and list(live.command or []) == spec.argv
        )
    )


def request_stop(
    actor: Actor,
    *,
    wait: bool = False,
    options: SlotOptions = NO_OPTIONS,
    notify: Notify | None = None,
) -> SlotRequest:
    """Ask for the served model to be stopped (a start in progress is cancelled).

    ``REFUSED`` when the options are inconsistent, or when the model has requests
    in flight and the operator chose neither to wait for them (``drain_s``) nor to
    stop now (``force`` + reason): ``in_flight`` holds the reading. Otherwise
    ``QUEUED`` with the stop job (``BUSY`` when a stop is already queued), or with
    ``wait=True`` stopped here: ``DONE`` (``activation`` is None when nothing was
    active) or ``BUSY``/``REFUSED``/``FAILED`` with the reason.
    """
    problem = options.problem()
    if problem:
        return SlotRequest(RequestOutcome.REFUSED, problem)
    live = live_activation()
    if live is not None and not live.launched_elsewhere:
        try:
            check_in_flight(live, options, config(), verb="stop")
        except ActivationError as exc:
            return _refusal(exc)
    if wait:
        return _run_here(
            lambda: stop(actor, options=options, notify=notify),
            lambda act: (
                "Stopped active vLLM instance."
                if act is not None
                else "No vLLM model was active."
            ),
        )
    from backends import tasks  # tasks imports the service facade: import at call time

    try:
        job = tasks.enqueue_stop(
            actor, name=live.logical_name if live else "", options=options
        )
    except JobConflict as exc:
        return SlotRequest(RequestOutcome.BUSY, str(exc))
    return SlotRequest(
        RequestOutcome.QUEUED, "Stopping the active vLLM model…", job=job
    )


def record_memory(act: Activation, job: Job | None = None) -> str:
    """After an activation reached ready: store what its server holds on the GPUs
    (``memory.record_measurement``). Never fails the activation: returns the
    measured line, or "" when nothing could be measured."""
    try:
        row = record_measurement(act)
    except Exception:  # noqa: BLE001 - a measurement must not fail a working activation
        logger.exception("could not record the GPU memory of %s", act.logical_name)
        return ""
    if row is None:
        return ""
    return f"Holds {row.measured_bytes / 2**30:.1f} GiB of GPU memory."


def _run_here(
    run: Callable[[], Activation | None],
    describe: Callable[[Activation | None], str],
) -> SlotRequest:
    """Run an activate or stop in this process; its errors become the outcome."""
    try:
        act = run()
    except ActivationError as exc:
        return _refusal(exc)
    finally:
        from backends.health.check import check_vllm_now

        check_vllm_now()  # the vLLM card and Dashboard follow at once
    return SlotRequest(RequestOutcome.DONE, describe(act), activation=act)


def _refusal(exc: ActivationError) -> SlotRequest:
    """The outcome of an error, with the preflight report or in-flight reading."""
    return SlotRequest(
        _outcome_of(exc),
        str(exc),
        preflight=getattr(exc, "report", None),
        in_flight=getattr(exc, "reading", None),
    )


def _outcome_of(exc: ActivationError) -> RequestOutcome:
    if isinstance(exc, ActivationRefused):
        return RequestOutcome.REFUSED
    if isinstance(exc, ActivationBusy):
        return RequestOutcome.BUSY
    return RequestOutcome.FAILED
