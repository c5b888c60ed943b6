"""Activate: validate B, take the slot from A (if any), start B and wait until it serves.

* **One live activation across processes.** The ``Activation`` partial unique
  constraint (one starting/running/stopping row per slot) decides who wins; the
  loser is told who is activating what. Replacing A is a conditional
  ``running -> stopping`` update, so two replacements cannot both proceed (F15).
* A stop during "starting" cancels the start: every step that writes the row is
  conditional on ``starting``, and the wait polls for it (:func:`_cancel_probe`).
* ``_staging/active_vllm.json`` is written only once the server is ready.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from backends import clients
from backends.choices import ActivationState
from backends.models import Activation
from registry.audit import Actor, audited
from registry.choices import Action
from registry.models import Job, ModelEntry

from . import process, statefile
from .command import LaunchSpec, VllmConfig, safe_name
from .errors import ActivationBusy, ActivationFailed, ActivationRefused
from .handover import Notify, describe_wait, wait_before_stop
from .hosts import advertised_url, elsewhere_refusal, this_host
from .options import NO_OPTIONS, SlotOptions
from .preflight import PreflightReport, run_preflight
from .prepare import preflight_details, preflight_gate, prepare, validate_runtime
from .reconcile import adopt_or_clean
from .server import (
    finish_stopped,
    forget,
    process_alive,
    remember,
    remote_deactivate,
    stop_process,
)
from .slot import (
    SLOT,
    as_int,
    busy_message,
    config,
    live_activation,
    mode,
    progress,
    retry_locked,
    state_dict,
    state_path,
)

logger = logging.getLogger(__name__)


def activate(
    entry: ModelEntry,
    actor: Actor,
    *,
    job: Job | None = None,
    options: SlotOptions = NO_OPTIONS,
    notify: Notify | None = None,
) -> Activation:
    """Activate ``entry`` (stopping the current model only after B validated).

    Preflight runs before anything is stopped or started; a failed check refuses
    unless ``options`` override it with a reason. A running A is stopped after
    waiting ``options.drain_s`` for its in-flight requests (``notify`` gets the
    progress lines, for the CLI). Returns the running ``Activation``. Raises
    ``ActivationRefused`` (nothing changed; ``PreflightRefused`` carries the
    report), ``ActivationBusy`` (someone else holds the slot), ``DrainCancelled``
    (the job was cancelled during the wait; A keeps running) or
    ``ActivationFailed`` (B was started but did not become ready; A is stopped).

    Long on purpose: the steps (preflight, admission, stop A, launch B, wait,
    record) share one live row and its error paths; the steps are helpers already.
    """
    cfg = config()
    with audited(
        actor, Action.ACTIVATE, entry=entry, job=job, details={"mode": mode(cfg)}
    ) as audit:
        adopt_or_clean()
        live = live_activation()
        spec = prepare(entry, cfg)
        audit.details.update(
            command=spec.argv, port=spec.port, served_model_id=spec.served_model_id
        )
        if _reusable(live, entry, spec, cfg):
            # Same model, same command, still alive: reuse (R11: a changed command restarts).
            audit.message = f"{entry.name} is already active on port {live.port}."
            audit.after = state_dict(live)
            return live
        _check_slot(live, spec, cfg)
        progress(job, 0.01, f"Checking {entry.name} before activating")
        report = run_preflight(entry, cfg=cfg)
        audit.details["preflight"] = preflight_details(report, options)
        if options.reason:
            audit.details["reason"] = options.reason
        try:
            preflight_gate(report, options)
        except ActivationRefused:
            _busy_if_taken(live)
            raise
        previous = _claim_replacement(live, spec, actor) if live is not None else None
        result, waited = None, {}
        if previous is not None:
            audit.before = state_dict(previous)
            audit.details["replaced"] = previous.logical_name
            waited = wait_before_stop(previous, options, cfg, job=job, notify=notify)
            audit.details.update(waited)
            progress(job, 0.09, f"Stopping {previous.logical_name}")
            result = stop_process(previous, cfg)
            statefile.remove_state(state_path(cfg))
        act = _create_starting(
            entry, spec, cfg, actor, job, previous=previous, prev_result=result
        )
        progress(job, 0.1, f"Starting {entry.name}")
        _launch(act, spec, cfg, job)
        audit.message = _active_message(act, previous, waited, report, options)
        audit.after = state_dict(act)
        audit.details.update(
            activation=act.pk, pid=act.pid, time_to_ready_s=act.time_to_ready_s
        )
        return act


def _active_message(
    act: Activation,
    previous: Activation | None,
    waited: dict,
    report: PreflightReport,
    options: SlotOptions,
) -> str:
    """``Active: B on port P (ready in 1.2s), replacing A after its requests
    finished (3s); preflight overridden (Weight files failed). Reason: ...``"""
    text = f"Active: {act.logical_name} on port {act.port} (ready in {act.time_to_ready_s:.1f}s)"
    if previous is not None:
        text += f", replacing {previous.logical_name}{describe_wait(waited)}"
    if report.failed:
        failed = ", ".join(c.label for c in report.failed)
        text += f"; preflight overridden ({failed} failed)"
    if options.reason:
        text += f". Reason: {options.reason}"
    return text


def _reusable(
    live: Activation | None, entry: ModelEntry, spec: LaunchSpec, cfg: VllmConfig
) -> bool:
    """Is the running activation already this launch (same model and command, alive)?"""
    return (
        live is not None
        and live.state == ActivationState.RUNNING
        and live.logical_name == entry.name
        and list(live.command or []) == spec.argv
        and process_alive(live, cfg)
    )


def _check_slot(live: Activation | None, spec: LaunchSpec, cfg: VllmConfig) -> None:
    """Refuse before anything is touched: a busy slot, another host's server, the port."""
    if live is not None and live.state != ActivationState.RUNNING:
        raise ActivationBusy(busy_message(live))
    if live is not None and live.launched_elsewhere:
        raise ActivationRefused(elsewhere_refusal(live, "replaced"))
    try:
        validate_runtime(spec, cfg, live)
    except ActivationRefused:
        _busy_if_taken(live)
        raise


def _busy_if_taken(live: Activation | None) -> None:
    """A refusal (port taken) may come from a start that claimed the slot after we
    looked: that is a busy slot, not a foreign process."""
    now_live = live_activation()
    if now_live is not None and (
        live is None or now_live.pk != live.pk or now_live.state != live.state
    ):
        raise ActivationBusy(busy_message(now_live))


def _claim_replacement(live: Activation, spec: LaunchSpec, actor: Actor) -> Activation:
    """Take the slot from a running A: conditional running -> stopping (one winner)."""
    note = f"Replaced by {spec.logical_name} (requested by {actor.name})"
    claimed = retry_locked(
        lambda: Activation.objects.filter(
            pk=live.pk, state=ActivationState.RUNNING
        ).update(
            state=ActivationState.STOPPING, error=note, last_updated=timezone.now()
        )
    )
    if claimed != 1:
        raise ActivationBusy(busy_message(live_activation()))
    live.refresh_from_db()
    return live


def _create_starting(
    entry: ModelEntry,
    spec: LaunchSpec,
    cfg: VllmConfig,
    actor: Actor,
    job: Job | None,
    *,
    previous: Activation | None,
    prev_result: process.StopResult | None,
) -> Activation:
    """Insert B as ``starting``; with a previous A, finish A in the same transaction."""
    now = timezone.now()

    def create() -> Activation:
        with transaction.atomic():
            if previous is not None:
                finish_stopped(previous, prev_result, note=previous.error)
            return Activation.objects.create(
                slot=SLOT,
                entry=entry,
                logical_name=spec.logical_name,
                served_model_id=spec.served_model_id,
                state=ActivationState.STARTING,
                mode=mode(cfg),
                user=actor.user,
                user_name=actor.name,
                command=spec.argv,
                host=spec.host,
                port=spec.port,
                host_name=this_host(),
                base_url=advertised_url(cfg, spec.port),
                requested_at=now,
                job=job,
            )

    try:
        return retry_locked(create)
    except IntegrityError:
        raise ActivationBusy(busy_message(live_activation()))


def _launch(
    act: Activation, spec: LaunchSpec, cfg: VllmConfig, job: Job | None
) -> None:
    if cfg.proxy_mode:
        _launch_remote(act, spec, cfg, job)
    else:
        _launch_local(act, spec, cfg, job)


def _launch_local(
    act: Activation, spec: LaunchSpec, cfg: VllmConfig, job: Job | None
) -> None:
    env = process.build_env(cfg.env_allowlist)
    log_path = process.new_log_path(cfg.log_dir, spec.logical_name)
    t0 = time.monotonic()
    try:
        spawned = process.spawn(
            spec.argv, log_path=log_path, env=env, cwd=cfg.cwd or None
        )
    except OSError as exc:
        _finish_failed(act, f"Could not start {spec.argv[0]}: {exc}")
        raise ActivationFailed(f"Could not start {spec.argv[0]}: {exc}")
    remember(spawned.popen)
    ident = spawned.identity
    stored = retry_locked(
        lambda: Activation.objects.filter(
            pk=act.pk, state=ActivationState.STARTING
        ).update(
            pid=ident.pid,
            pgid=ident.pgid,
            create_time=ident.create_time,
            cmdline_hash=ident.cmdline_hash,
            owns_group=ident.owns_group,
            log_path=str(spawned.log_path),
            started_at=timezone.now(),
            last_updated=timezone.now(),
        )
    )
    if stored != 1:  # a stop request cancelled us before we could record the pid
        process.stop_group(ident, grace=cfg.stop_grace, popen=spawned.popen)
        raise ActivationFailed(
            f"Activation of {spec.logical_name} was cancelled by a stop request."
        )
    act.refresh_from_db()
    base_url = cfg.base_url(spec.port)
    try:
        ready = process.wait_ready(
            lambda t: clients.vllm_ready(base_url, spec.served_model_id, timeout=t),
            timeout=cfg.start_timeout,
            exited=lambda: process.exit_status(spawned.popen, ident),
            log_path=spawned.log_path,
            cancelled=_cancel_probe(act),
            on_tick=_tick_reporter(job, spec.logical_name, cfg.start_timeout),
        )
    except process.StartFailed as exc:
        stop = process.stop_group(
            ident, grace=min(cfg.stop_grace, 5.0), popen=spawned.popen
        )
        code = exc.exit_code if exc.exit_code is not None else stop.exit_code
        forget(ident.pid)
        if not _finish_failed(act, str(exc), exit_code=code):
            raise ActivationFailed(_cancelled_message(act))
        raise ActivationFailed(f"{spec.logical_name} failed to start: {exc}")
    _mark_running(act, spec, cfg, time.monotonic() - t0, spawned.started_at, ready)


def _launch_remote(
    act: Activation, spec: LaunchSpec, cfg: VllmConfig, job: Job | None
) -> None:
    t0 = time.monotonic()
    pid, log_file = _start_remote(act, spec, cfg)
    started_at = time.time()
    stored = retry_locked(
        lambda: Activation.objects.filter(
            pk=act.pk, state=ActivationState.STARTING
        ).update(
            pid=pid,
            log_path=log_file,
            started_at=timezone.now(),
            last_updated=timezone.now(),
        )
    )
    if stored != 1:
        remote_deactivate(cfg)
        raise ActivationFailed(
            f"Activation of {spec.logical_name} was cancelled by a stop request."
        )
    act.refresh_from_db()
    try:
        ready = process.wait_ready(
            lambda t: clients.vllm_ready(
                cfg.base_url(spec.port), spec.served_model_id, timeout=t
            ),
            timeout=cfg.start_timeout,
            exited=_remote_exited(cfg, spec, pid),
            cancelled=_cancel_probe(act),
            on_tick=_tick_reporter(job, spec.logical_name, cfg.start_timeout),
        )
    except process.StartFailed as exc:
        if not _finish_failed(
            act, f"{exc} (remote log: {log_file})", exit_code=exc.exit_code
        ):
            raise ActivationFailed(_cancelled_message(act))  # the stopper deactivates
        remote_deactivate(cfg)
        raise ActivationFailed(
            f"{spec.logical_name} failed to start on the admin service: {exc}"
        )
    _mark_running(act, spec, cfg, time.monotonic() - t0, started_at, ready)


def _start_remote(
    act: Activation, spec: LaunchSpec, cfg: VllmConfig
) -> tuple[int, str]:
    """Ask the admin service to start the server; returns its pid and remote log file."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    log_file = (
        f"{cfg.admin_log_dir.rstrip('/')}/{safe_name(spec.logical_name)}-{stamp}.log"
    )
    payload = {
        "command": spec.argv,
        # R4: never the caller's whole environment, only the allow-list.
        "env": process.build_env(cfg.env_allowlist),
        "cwd": cfg.cwd or None,
        "log_file": log_file,
        "logical_name": spec.logical_name,
        "served_model_id": spec.served_model_id,
    }
    try:
        answer = clients.admin_activate(cfg.admin_url, payload, token=cfg.admin_token)
    except clients.AdminError as exc:
        _finish_failed(act, f"Remote vLLM activation failed: {exc}")
        raise ActivationFailed(f"Remote vLLM activation failed: {exc}")
    return int(answer["pid"]), log_file


def _remote_exited(cfg: VllmConfig, spec: LaunchSpec, pid: int):
    """``exited()`` for the readiness wait: has the admin's child ``pid`` gone?"""

    def exited() -> tuple[bool, int | None]:
        try:
            state = clients.admin_state(
                cfg.admin_url, token=cfg.admin_token, timeout=1.0
            )
        except clients.AdminError:
            # A transient admin hiccup is not an exit; the deadline still applies.
            return (False, None)
        mine = (
            state.get("logical_name") == spec.logical_name
            and as_int(state.get("pid")) == pid
        )
        if state.get("status") == "running" and mine:
            return (False, None)
        return (True, as_int(state.get("exit_code")) if mine else None)

    return exited


def _mark_running(act, spec, cfg, elapsed: float, started_at: float, ready) -> None:
    now = timezone.now()
    promoted = retry_locked(
        lambda: Activation.objects.filter(
            pk=act.pk, state=ActivationState.STARTING
        ).update(
            state=ActivationState.RUNNING,
            ready_at=now,
            time_to_ready_s=round(elapsed, 3),
            started_at=datetime.fromtimestamp(started_at, tz=now.tzinfo),
            last_updated=now,
        )
    )
    act.refresh_from_db()
    if promoted != 1:
        # Stopped while we were waiting: the stopper owns the process now.
        raise ActivationFailed(
            f"Activation of {spec.logical_name} was cancelled by a stop request."
        )
    statefile.write_state(state_path(cfg), state_dict(act))
    logger.info(
        "vLLM %s active on port %s (pid=%s, %.1fs)",
        act.logical_name,
        act.port,
        act.pid,
        elapsed,
    )


def _cancel_probe(act: Activation):
    """A cheap (at most once a second) check that nobody stopped this start."""
    last = [0.0]

    def cancelled() -> str | None:
        now = time.monotonic()
        if now - last[0] < 1.0:
            return None
        last[0] = now
        state = (
            Activation.objects.filter(pk=act.pk).values_list("state", flat=True).first()
        )
        if state != ActivationState.STARTING:
            return f"Activation of {act.logical_name} was cancelled by a stop request."
        return None

    return cancelled


def _tick_reporter(job: Job | None, name: str, timeout: float):
    last = [0.0]

    def tick(elapsed: float, reason: str) -> None:
        if job is None or time.monotonic() - last[0] < 1.0:
            return
        last[0] = time.monotonic()
        progress(
            job,
            0.1 + 0.8 * min(elapsed / max(timeout, 1.0), 1.0),
            f"Waiting for {name} ({elapsed:.0f}s): {reason}",
        )

    return tick


def _cancelled_message(act: Activation) -> str:
    return f"Activation of {act.logical_name} was cancelled by a stop request ({act.error or 'stopped'})."


def _finish_failed(
    act: Activation, error: str, *, exit_code: int | None = None
) -> bool:
    """starting -> failed. False if a stop request got there first (it owns the row)."""
    changed = retry_locked(
        lambda: Activation.objects.filter(
            pk=act.pk, state=ActivationState.STARTING
        ).update(
            state=ActivationState.FAILED,
            error=error[:4000],
            exit_code=exit_code,
            stopped_at=timezone.now(),
            last_updated=timezone.now(),
        )
    )
    act.refresh_from_db()
    return changed == 1
