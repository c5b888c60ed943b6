"""The vLLM activation service: the one place that activates and stops the served model.

Views, tasks, management commands and the CLI all call ``activate``, ``stop``,
``current``, ``status`` and ``adopt_or_clean``. Guarantees:

* **Validate before you stop.** B's launch is fully checked (vLLM backend, lock
  gate, model files, chat template, port can be freed, admin service reachable)
  before A is touched, so a bad request never leaves the GPU idle (F6, R12).
* **One live activation across processes.** The ``Activation`` partial unique
  constraint (one starting/running/stopping row per slot) decides who wins; the
  loser is told who is activating what. Replacing A is a conditional
  ``running -> stopping`` update, so two replacements cannot both proceed (F15).
* **A state machine with history.** starting -> running -> stopping ->
  stopped/failed, with who/when/command/pid/port/time-to-ready/exit code/error.
  A stop during "starting" cancels the start.
* **One audit row per activate/stop** via ``registry.audit.audited``; adopting a
  server or removing a stale state file writes a ``reconcile`` row saying why.
* ``_staging/active_vllm.json`` (five fields) is written only once ready and
  removed on stop or when the process is found dead.
* **Pids are judged where they live.** Every activation records the machine that
  launched it (``host_name``, from ``IMAGEWORKS_HOST_NAME``). In local mode only a
  process on that machine declares it dead, stops or replaces it; elsewhere
  reconciliation leaves the row alone and at most asks the server over HTTP
  (``base_url``), so a web host never records the GPU host's server as "found dead".
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from filelock import FileLock, Timeout

from backends import clients
from backends.choices import ActivationMode, ActivationState
from backends.models import Activation
from registry.audit import Actor, audited, record
from registry.choices import Action, Outcome, Source
from registry.models import Job, ModelEntry

from . import process, statefile
from .command import (
    LaunchRefused,
    LaunchSpec,
    VllmConfig,
    build_launch,
    cli_equivalent,
    safe_name,
)

logger = logging.getLogger(__name__)

SLOT = "vllm"
LIVE = ActivationState.live()
RECONCILER = Actor.system("reconcile", source=Source.SYSTEM)


def _reconciled(msg: str, act: Activation, **extra: Any) -> list[str]:
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


# Popen objects of children spawned by *this* process, so we can reap them and
# report real exit codes. Everything else works from the database identity.
_POPENS: dict[int, Any] = {}
_POPENS_LOCK = threading.Lock()


class ActivationError(Exception):
    """Base class: the message is shown to the operator as is."""


class ActivationRefused(ActivationError):
    """The request was rejected before anything was stopped or started."""


class ActivationBusy(ActivationError):
    """Another activation or stop holds the slot."""


class ActivationFailed(ActivationError):
    """The server was started but did not become ready (or could not be stopped)."""


def config() -> VllmConfig:
    return VllmConfig.from_settings()


# --- queries ------------------------------------------------------------------


def live_activation() -> Activation | None:
    return (
        Activation.objects.filter(slot=SLOT, state__in=LIVE)
        .select_related("entry")
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
    return (
        statefile.make_state(
            logical_name=act.logical_name,
            served_model_id=act.served_model_id,
            port=act.port,
            pid=act.pid or 0,
            started_at=started.timestamp(),
        )
        if act.pid
        else {
            "logical_name": act.logical_name,
            "served_model_id": act.served_model_id,
            "port": act.port,
            "pid": None,
            "started_at": started.timestamp(),
        }
    )


def current() -> dict[str, Any] | None:
    """The active model's five-field state, or None (after reconciling with reality)."""
    adopt_or_clean()
    live = live_activation()
    if live is None or live.state != ActivationState.RUNNING:
        return None
    return state_dict(live)


# --- validation -----------------------------------------------------------------


@dataclass
class GateCheck:
    ok: bool
    reason: str = ""


def lock_gate(entry: ModelEntry) -> GateCheck:
    """A locked entry whose files no longer match its hash cannot be activated."""
    try:
        from registry.services.verify import lock_gate as _gate
    except ImportError:
        # TODO(lead): remove this fallback once registry.services.verify.lock_gate exists.
        return GateCheck(True)
    result = _gate(entry)
    return GateCheck(bool(result.ok), str(getattr(result, "reason", "") or ""))


def prepare(entry: ModelEntry, cfg: VllmConfig | None = None) -> LaunchSpec:
    """Everything that can be checked without touching processes (used by views too)."""
    cfg = cfg or config()
    if (entry.backend or "").strip().lower() != "vllm":
        raise ActivationRefused("Only vLLM models can be activated.")
    gate = lock_gate(entry)
    if not gate.ok:
        raise ActivationRefused(
            f"Lock gate: {gate.reason or 'files do not match the locked hash'}. Verify the model first."
        )
    merged = dict(entry.merged or {})
    merged.setdefault("name", entry.name)
    merged.setdefault("backend", entry.backend)
    merged.setdefault("backend_config", entry.backend_config or {})
    merged.setdefault("download_path", entry.download_path)
    merged.setdefault("served_model_id", entry.served_model_id or None)
    check = (not cfg.proxy_mode) or cfg.admin_check_paths
    try:
        return build_launch(merged, cfg, check_paths=check)
    except LaunchRefused as exc:
        raise ActivationRefused(str(exc))


def _validate_runtime(
    spec: LaunchSpec, cfg: VllmConfig, live: Activation | None
) -> None:
    """The port can be freed (local) or the admin service answers (proxy)."""
    if cfg.proxy_mode:
        try:
            clients.admin_health(cfg.admin_url, token=cfg.admin_token, timeout=3.0)
        except clients.AdminError as exc:
            raise ActivationRefused(str(exc))
        return
    allowed: list[int] = []
    if live is not None and live.pgid:
        allowed = [p.pid for p in process.group_members(live.pgid)]
    try:
        process.check_port(spec.host, spec.port, allowed_pids=allowed)
    except process.PortInUse as exc:
        raise ActivationRefused(f"Cannot activate {spec.logical_name}: {exc}.")


def preview(entry: ModelEntry) -> dict[str, Any]:
    """What the drawer and the confirm dialog show: the command, CLI, replacement, or why not."""
    cfg = config()
    live = live_activation()
    info: dict[str, Any] = {
        "ok": False,
        "reason": "",
        "offer_verify": False,
        "command": "",
        "argv": [],
        "cli": cli_equivalent(entry.name),
        "replaces": None,
        "is_active": bool(
            live
            and live.logical_name == entry.name
            and live.state == ActivationState.RUNNING
        ),
        "mode": "proxy" if cfg.proxy_mode else "local",
        "port": None,
    }
    if live is not None and live.logical_name != entry.name:
        info["replaces"] = live.logical_name
    try:
        spec = prepare(entry, cfg)
    except ActivationRefused as exc:
        info["reason"] = str(exc)
        info["offer_verify"] = str(exc).startswith("Lock gate")
        return info
    info.update(ok=True, command=spec.display, argv=spec.argv, port=spec.port)
    return info


# --- activate -------------------------------------------------------------------


def activate(entry: ModelEntry, actor: Actor, *, job: Job | None = None) -> Activation:
    """Activate ``entry`` (stopping the current model only after B validated).

    Returns the running ``Activation``. Raises ``ActivationRefused`` (nothing
    changed), ``ActivationBusy`` (someone else holds the slot) or
    ``ActivationFailed`` (B was started but did not become ready; A is stopped).
    """
    cfg = config()
    with audited(
        actor, Action.ACTIVATE, entry=entry, job=job, details={"mode": _mode(cfg)}
    ) as audit:
        adopt_or_clean()
        live = live_activation()
        spec = prepare(entry, cfg)
        audit.details.update(
            command=spec.argv, port=spec.port, served_model_id=spec.served_model_id
        )
        if (
            live is not None
            and live.state == ActivationState.RUNNING
            and live.logical_name == entry.name
            and list(live.command or []) == spec.argv
            and _process_alive(live, cfg)
        ):
            # Same model, same command, still alive: reuse (R11: a changed command restarts).
            audit.message = f"{entry.name} is already active on port {live.port}."
            audit.after = state_dict(live)
            return live
        if live is not None and live.state != ActivationState.RUNNING:
            raise ActivationBusy(busy_message(live))
        if live is not None and live.launched_elsewhere:
            raise ActivationRefused(elsewhere_refusal(live, "replaced"))
        try:
            _validate_runtime(spec, cfg, live)
        except ActivationRefused:
            # The port may be taken by a start that claimed the slot after we looked:
            # that is a busy slot, not a foreign process.
            now_live = live_activation()
            if now_live is not None and (
                live is None or now_live.pk != live.pk or now_live.state != live.state
            ):
                raise ActivationBusy(busy_message(now_live))
            raise
        previous = _claim_replacement(live, spec, actor) if live is not None else None
        result = None
        if previous is not None:
            audit.before = state_dict(previous)
            audit.details["replaced"] = previous.logical_name
            _progress(job, 0.05, f"Stopping {previous.logical_name}")
            result = _stop_process(previous, cfg)
            statefile.remove_state(_state_path(cfg))
        act = _create_starting(
            entry,
            spec,
            cfg,
            actor,
            job,
            previous=previous,
            prev_result=result,
        )
        _progress(job, 0.1, f"Starting {entry.name}")
        _launch(act, spec, cfg, job)
        audit.message = (
            f"Active: {entry.name} on port {act.port} (ready in {act.time_to_ready_s:.1f}s)"
            + (f", replacing {previous.logical_name}" if previous is not None else "")
        )
        audit.after = state_dict(act)
        audit.details.update(
            activation=act.pk, pid=act.pid, time_to_ready_s=act.time_to_ready_s
        )
        return act


def _claim_replacement(live: Activation, spec: LaunchSpec, actor: Actor) -> Activation:
    """Take the slot from a running A: conditional running -> stopping (one winner)."""
    note = f"Replaced by {spec.logical_name} (requested by {actor.name})"
    claimed = _retry_locked(
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
                _finish_stopped(previous, prev_result, note=previous.error)
            return Activation.objects.create(
                slot=SLOT,
                entry=entry,
                logical_name=spec.logical_name,
                served_model_id=spec.served_model_id,
                state=ActivationState.STARTING,
                mode=_mode(cfg),
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
        return _retry_locked(create)
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
    with _POPENS_LOCK:
        _POPENS[spawned.popen.pid] = spawned.popen
    ident = spawned.identity
    stored = _retry_locked(
        lambda: Activation.objects.filter(
            pk=act.pk, state=ActivationState.STARTING
        ).update(
            pid=ident.pid,
            pgid=ident.pgid,
            create_time=ident.create_time,
            cmdline_hash=ident.cmdline_hash,
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
        _forget(ident.pid)
        if not _finish_failed(act, str(exc), exit_code=code):
            raise ActivationFailed(_cancelled_message(act))
        raise ActivationFailed(f"{spec.logical_name} failed to start: {exc}")
    _mark_running(act, spec, cfg, time.monotonic() - t0, spawned.started_at, ready)


def _launch_remote(
    act: Activation, spec: LaunchSpec, cfg: VllmConfig, job: Job | None
) -> None:
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
    t0 = time.monotonic()
    try:
        answer = clients.admin_activate(cfg.admin_url, payload, token=cfg.admin_token)
    except clients.AdminError as exc:
        _finish_failed(act, f"Remote vLLM activation failed: {exc}")
        raise ActivationFailed(f"Remote vLLM activation failed: {exc}")
    pid = int(answer["pid"])
    started_at = time.time()
    stored = _retry_locked(
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
        _remote_deactivate(cfg)
        raise ActivationFailed(
            f"Activation of {spec.logical_name} was cancelled by a stop request."
        )
    act.refresh_from_db()

    def exited() -> tuple[bool, int | None]:
        try:
            state = clients.admin_state(
                cfg.admin_url, token=cfg.admin_token, timeout=1.0
            )
        except clients.AdminError:
            return (
                False,
                None,
            )  # a transient admin hiccup is not an exit; the deadline still applies
        mine = (
            state.get("logical_name") == spec.logical_name
            and _int(state.get("pid")) == pid
        )
        if state.get("status") == "running" and mine:
            return (False, None)
        return (True, _int(state.get("exit_code")) if mine else None)

    try:
        ready = process.wait_ready(
            lambda t: clients.vllm_ready(
                cfg.base_url(spec.port), spec.served_model_id, timeout=t
            ),
            timeout=cfg.start_timeout,
            exited=exited,
            cancelled=_cancel_probe(act),
            on_tick=_tick_reporter(job, spec.logical_name, cfg.start_timeout),
        )
    except process.StartFailed as exc:
        if not _finish_failed(
            act, f"{exc} (remote log: {log_file})", exit_code=exc.exit_code
        ):
            raise ActivationFailed(_cancelled_message(act))  # the stopper deactivates
        _remote_deactivate(cfg)
        raise ActivationFailed(
            f"{spec.logical_name} failed to start on the admin service: {exc}"
        )
    _mark_running(act, spec, cfg, time.monotonic() - t0, started_at, ready)


def _mark_running(act, spec, cfg, elapsed: float, started_at: float, ready) -> None:
    now = timezone.now()
    promoted = _retry_locked(
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
    statefile.write_state(_state_path(cfg), state_dict(act))
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
        from registry.jobs import progress

        progress(
            job,
            0.1 + 0.8 * min(elapsed / max(timeout, 1.0), 1.0),
            f"Waiting for {name} ({elapsed:.0f}s): {reason}",
        )

    return tick


# --- stop -----------------------------------------------------------------------


def stop(actor: Actor, *, job: Job | None = None) -> Activation | None:
    """Stop the served model (or cancel a start in progress).

    Returns the stopped ``Activation`` or None when nothing was active (reported
    truthfully, unlike the original's F16). Raises ``ActivationBusy`` if a stop or
    replacement is already under way, ``ActivationFailed`` if processes survive.
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
        details={"mode": _mode(cfg)},
    ) as audit:
        if live is None:
            removed = statefile.remove_state(_state_path(cfg))
            audit.message = "No vLLM model was active." + (
                " Removed a leftover state file." if removed else ""
            )
            return None
        if live.state == ActivationState.STOPPING:
            raise ActivationBusy(busy_message(live))
        if live.launched_elsewhere:
            raise ActivationRefused(elsewhere_refusal(live, "stopped"))
        audit.before = state_dict(live)
        was = live.state
        note = f"Stopped by {actor.name}" + (
            " during start" if was == ActivationState.STARTING else ""
        )
        claimed = _retry_locked(
            lambda: Activation.objects.filter(pk=live.pk, state=was).update(
                state=ActivationState.STOPPING, error=note, last_updated=timezone.now()
            )
        )
        if claimed != 1:
            raise ActivationBusy(busy_message(live_activation()))
        live.refresh_from_db()  # the activator may have stored its pid just before
        _progress(job, 0.2, f"Stopping {live.logical_name}")
        result = _stop_process(live, cfg)
        statefile.remove_state(_state_path(cfg))
        _retry_locked(lambda: _finish_stopped(live, result, note=note))
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
        audit.message = f"Stopped {live.logical_name}{how}{code}."
        return live


def _stop_process(act: Activation, cfg: VllmConfig) -> process.StopResult | None:
    if act.mode == ActivationMode.PROXY:
        _remote_deactivate(cfg, wait_port=act.port)
        return None
    if not act.pid:
        return None
    ident = _identity(act)
    with _POPENS_LOCK:
        popen = _POPENS.get(act.pid)
    result = process.stop_group(ident, grace=cfg.stop_grace, popen=popen)
    _forget(act.pid)
    return result


def _remote_deactivate(cfg: VllmConfig, wait_port: int | None = None) -> None:
    try:
        clients.admin_deactivate(
            cfg.admin_url, token=cfg.admin_token, timeout=max(cfg.stop_grace, 10.0) + 5
        )
    except clients.AdminError as exc:
        raise ActivationFailed(f"Remote vLLM deactivate failed: {exc}")
    if wait_port is None:
        return
    # The original service forgets a SIGTERM-ignoring child after 10 s without
    # SIGKILL (F11): confirm the model stopped answering instead of trusting it.
    deadline = time.monotonic() + cfg.stop_grace
    base = cfg.base_url(wait_port)
    while time.monotonic() < deadline:
        if clients.vllm_ready(base, "", timeout=0.5).health_status is None:
            return
        time.sleep(0.2)
    raise ActivationFailed(
        f"The remote vLLM on port {wait_port} still answers after deactivate."
    )


def _finish_stopped(
    act: Activation, result: process.StopResult | None, *, note: str = ""
) -> None:
    """stopping -> stopped (or failed when processes survived SIGKILL)."""
    fields: dict[str, Any] = {
        "stopped_at": timezone.now(),
        "last_updated": timezone.now(),
    }
    if result is not None and result.exit_code is not None:
        fields["exit_code"] = result.exit_code
    if result is not None and result.survivors:
        fields.update(
            state=ActivationState.FAILED,
            error=f"Processes survived SIGKILL: {result.survivors}",
        )
    else:
        fields.update(state=ActivationState.STOPPED, error=note)
    Activation.objects.filter(pk=act.pk, state=ActivationState.STOPPING).update(
        **fields
    )


def _cancelled_message(act: Activation) -> str:
    return f"Activation of {act.logical_name} was cancelled by a stop request ({act.error or 'stopped'})."


def _finish_failed(
    act: Activation, error: str, *, exit_code: int | None = None
) -> bool:
    """starting -> failed. False if a stop request got there first (it owns the row)."""
    changed = _retry_locked(
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


# --- machines: whose pid is it? ---------------------------------------------------


def this_host() -> str:
    """This machine's name as activations record it (``IMAGEWORKS_HOST_NAME``)."""
    return str(settings.IMAGEWORKS_HOST_NAME)


def vllm_queue() -> str:
    """The GPU host's django-q2 queue (``IMAGEWORKS_VLLM_QUEUE``), "" when unset."""
    return str(getattr(settings, "IMAGEWORKS_VLLM_QUEUE", "") or "").strip()


_LOOPBACK = re.compile(r"^(127\.|localhost$|::1$|\[::1\]$)", re.IGNORECASE)
_WILDCARD = ("0.0.0.0", "", "::", "[::]")


def advertised_url(cfg: VllmConfig, port: int) -> str:
    """Where other machines can reach the server we launch ("" = loopback only).

    The readiness host when it is not loopback (``IMAGEWORKS_VLLM_CONNECT_HOST`` or a
    specific bind address); this machine's name when vLLM binds every interface;
    nothing when it binds loopback, since no other host could ask it.
    """
    if cfg.proxy_mode:
        return cfg.base_url(port)
    probe = cfg.probe_host()
    if not _LOOPBACK.match(probe):
        return cfg.base_url(port)
    if cfg.host in _WILDCARD:
        host = this_host()
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    return ""


def _judges_state_file_pids() -> bool:
    """May this process judge the state file's pid (the file does not name a machine)?

    Yes on single-queue sites (today's behaviour) and in the GPU queue's own worker;
    no in other processes once activation runs on a GPU queue.
    """
    queue = vllm_queue()
    if not queue:
        return True
    from django_q.conf import Conf

    return queue == Conf.CLUSTER_NAME


def remote_check(act: Activation) -> tuple[bool | None, str]:
    """Judge a server launched on another machine, without touching its row.

    Returns ``(alive, text)``: True when it serves its model at its recorded
    ``base_url``, False when it does not, None when no reachable address was
    recorded (only its own host can tell). ``text`` says so for the UI and CLI.
    """
    what = _where(act)
    if not act.base_url:
        return (
            None,
            f"{what}; checked from there (pid {act.pid or '-'} is not visible from {this_host()}).",
        )
    check = clients.vllm_ready(act.base_url, act.served_model_id, timeout=1.0)
    if check.ready:
        return True, f"{what}; answers at {act.base_url}."
    return (
        False,
        f"{what} but does not answer at {act.base_url} ({check.reason}); "
        f"left to {act.host_name}, which checks it from there.",
    )


def _where(act: Activation) -> str:
    """``X is running on host H`` (or activating/stopping)."""
    doing = (
        "running"
        if act.state == ActivationState.RUNNING
        else act.get_state_display().lower()
    )
    return f"{act.logical_name} is {doing} on host {act.host_name}"


def elsewhere_refusal(act: Activation, verb: str) -> str:
    """Why this process may not stop or replace a server launched on another host."""
    queue = vllm_queue()
    route = (
        f"activate/stop jobs go to queue {queue}: run that queue's worker on "
        f"{act.host_name}"
        if queue
        else "set IMAGEWORKS_VLLM_QUEUE so activate/stop jobs run on that host's "
        "worker, or use the CLI there"
    )
    return (
        f"{_where(act)}; it can only be {verb} from there ({route}). "
        f"If {act.host_name} is gone for good: "
        f"manage.py vllm_reconcile --release-host {act.host_name}."
    )


def release_host(host_name: str, actor: Actor) -> list[str]:
    """Fail the live activations launched on ``host_name``, a GPU host gone for good.

    The operator's escape hatch: nothing else may touch another machine's
    activation. Refused for this machine (its pids are judged by reconciliation).
    """
    if not host_name or host_name == this_host():
        raise ActivationRefused(
            f"{host_name or '(empty)'} is this host; run vllm_reconcile without "
            "--release-host to check its processes."
        )
    done: list[str] = []
    for act in Activation.objects.filter(
        slot=SLOT, state__in=LIVE, mode=ActivationMode.LOCAL, host_name=host_name
    ):
        note = f"Released by {actor.name}: host {host_name} is gone."
        changed = Activation.objects.filter(pk=act.pk, state=act.state).update(
            state=ActivationState.FAILED,
            error=note,
            stopped_at=timezone.now(),
            last_updated=timezone.now(),
        )
        if changed != 1:
            continue
        path = _state_path(config())
        try:
            on_disk = statefile.read_state(path)
        except statefile.InvalidState:
            on_disk = None
        if on_disk and on_disk == state_dict(act):
            statefile.remove_state(path)
        msg = f"Released {act.logical_name} ({act.state} on host {host_name})."
        record(
            actor,
            Action.RECONCILE,
            entry=act.entry,
            entry_name=act.logical_name,
            message=msg,
            before=state_dict(act),
        )
        done.append(msg)
    return done


# --- liveness, adoption, stale state ----------------------------------------------


def _identity(act: Activation) -> process.ProcessIdentity:
    return process.ProcessIdentity(
        pid=act.pid or 0,
        pgid=act.pgid or act.pid or 0,
        create_time=act.create_time or 0.0,
        cmdline_hash=act.cmdline_hash,
    )


def _process_alive(act: Activation, cfg: VllmConfig) -> bool:
    if act.launched_elsewhere:  # its pid is another machine's: ask the server itself
        return remote_check(act)[0] is True
    if act.mode == ActivationMode.PROXY:
        try:
            state = clients.admin_state(
                cfg.admin_url, token=cfg.admin_token, timeout=2.0
            )
        except clients.AdminError:
            return (
                True  # unknown is not dead: never drop state because the admin blinked
            )
        return (
            state.get("status") == "running"
            and state.get("logical_name") == act.logical_name
        )
    return bool(act.pid) and _identity(act).is_alive()


def adopt_or_clean(*, cfg: VllmConfig | None = None) -> list[str]:
    """Reconcile the database, the state file and the real processes (after restarts).

    * running row, process alive -> recognised; the state file is rewritten if missing;
    * running row, process gone -> failed "found dead", state file removed (audited);
    * starting/stopping row abandoned by a dead worker -> finished or adopted;
    * no live row but a state file whose process serves its model -> adopted (audited);
    * no live row and a stale or corrupt state file -> removed (audited, with why).
    Returns what it did, one line per action.
    """
    cfg = cfg or config()
    path = _state_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(path.with_suffix(".reconcile.lock")), timeout=10):
            return _reconcile(cfg, path)
    except Timeout:
        return []


def _reconcile(cfg: VllmConfig, path) -> list[str]:
    done: list[str] = []
    live = live_activation()
    if live is not None:
        done += _reconcile_live(live, cfg, path)
        return done
    try:
        state = statefile.read_state(path)
    except statefile.InvalidState as exc:
        statefile.remove_state(path)
        msg = f"Removed corrupt state file {path.name}: {exc}."
        record(
            RECONCILER,
            Action.RECONCILE,
            outcome=Outcome.SUCCEEDED,
            message=msg,
            details={"path": str(path)},
        )
        return [msg]
    if state is None:
        if cfg.proxy_mode:
            done += _adopt_remote_without_state(cfg, path)
        return done
    if not cfg.proxy_mode and not _judges_state_file_pids():
        # The file holds a pid but not the machine; with a GPU queue the server was
        # started by that queue's worker, and only it (or its schedule) may judge it.
        return [
            f"The state file names {state['logical_name']} (pid {state['pid']}) "
            f"but no activation is live; left for the worker of queue "
            f"{vllm_queue()} (the vLLM host) to check."
        ]
    served_ok = clients.vllm_ready(
        cfg.base_url(state["port"]), state["served_model_id"], timeout=1.0
    ).ready
    if cfg.proxy_mode:
        try:
            remote = clients.admin_state(
                cfg.admin_url, token=cfg.admin_token, timeout=2.0
            )
        except clients.AdminError:
            return done  # cannot tell; leave the file alone
        alive = (
            remote.get("status") == "running"
            and remote.get("logical_name") == state["logical_name"]
        )
        ident = None
    else:
        ident = process.ProcessIdentity.of(state["pid"])
        alive = ident is not None
    if alive and served_ok:
        act = _adopt(state, cfg, ident)
        if act is not None:
            msg = f"Adopted running vLLM {state['logical_name']} (pid {state['pid']}, port {state['port']}) from the state file."
            done += _reconciled(msg, act, after=state)
        return done
    why = (
        f"pid {state['pid']} is not running"
        if not alive
        else f"nothing serves {state['served_model_id']} on port {state['port']}"
    )
    statefile.remove_state(path)
    msg = f"Removed stale state file for {state['logical_name']}: {why}."
    record(
        RECONCILER,
        Action.RECONCILE,
        entry_name=state["logical_name"],
        message=msg,
        before=state,
    )
    return [msg]


#: Seconds after which a "starting" row whose process is gone is cleaned up.
DEAD_START_GRACE_S = 10.0


def _reconcile_live(live: Activation, cfg: VllmConfig, path) -> list[str]:
    if live.launched_elsewhere:
        # Never touch another machine's activation or the state file from here: its
        # own host reconciles it (activate/stop jobs, the reconcile schedule).
        return [remote_check(live)[1]]
    age = (timezone.now() - live.last_updated).total_seconds()
    alive = _process_alive(live, cfg) if live.pid else False
    if live.state == ActivationState.RUNNING:
        if alive:
            try:
                on_disk = statefile.read_state(path)
            except statefile.InvalidState:
                on_disk = None
            if on_disk != state_dict(live):
                statefile.write_state(path, state_dict(live))
                return [f"Rewrote the state file for running {live.logical_name}."]
            return []
        claimed = Activation.objects.filter(
            pk=live.pk, state=ActivationState.RUNNING
        ).update(
            state=ActivationState.FAILED,
            error="Process found dead (exited or killed outside the console).",
            stopped_at=timezone.now(),
        )
        if claimed != 1:
            return []
        removed = statefile.remove_state(path)
        msg = f"{live.logical_name} (pid {live.pid}) is no longer running" + (
            "; removed the stale state file." if removed else "."
        )
        return _reconciled(msg, live, before=state_dict(live))
    # starting/stopping rows whose worker died: only after the worker would have given up.
    limit = (
        cfg.start_timeout if live.state == ActivationState.STARTING else cfg.stop_grace
    ) + 30.0
    # A recorded process that is gone cannot become ready: clean up after a short
    # grace (a live worker records the real exit reason first) instead of leaving
    # the slot "starting" until the full timeout.
    process_gone = (
        live.state == ActivationState.STARTING
        and bool(live.pid)
        and not alive
        and live.mode != ActivationMode.PROXY
        and age >= DEAD_START_GRACE_S
    )
    if age < limit and not process_gone:
        return []
    if (
        live.state == ActivationState.STARTING
        and alive
        and clients.vllm_ready(
            cfg.base_url(live.port), live.served_model_id, timeout=1.0
        ).ready
    ):
        n = Activation.objects.filter(
            pk=live.pk, state=ActivationState.STARTING
        ).update(state=ActivationState.RUNNING, ready_at=timezone.now())
        if n == 1:
            live.refresh_from_db()
            statefile.write_state(path, state_dict(live))
            msg = f"Adopted {live.logical_name}: its activating worker died but the server is ready."
            return _reconciled(msg, live)
        return []
    n = Activation.objects.filter(pk=live.pk, state=live.state).update(
        state=ActivationState.STOPPING
    )
    if n != 1:
        return []
    result = _stop_process(live, cfg) if alive else None
    Activation.objects.filter(pk=live.pk, state=ActivationState.STOPPING).update(
        state=ActivationState.FAILED,
        error=f"Abandoned while {live.state} (worker gone); cleaned up.",
        stopped_at=timezone.now(),
        exit_code=result.exit_code if result else None,
    )
    statefile.remove_state(path)
    msg = f"Cleaned up abandoned {live.state} activation of {live.logical_name}."
    return _reconciled(msg, live)


def _adopt(
    state: dict, cfg: VllmConfig, ident: process.ProcessIdentity | None
) -> Activation | None:
    """Create a running row for a server someone else started (CLI, original tool)."""
    cmd: list[str] = []
    if ident is not None:
        try:
            import psutil

            cmd = psutil.Process(ident.pid).cmdline()
        except Exception:  # noqa: BLE001 - best effort for display only
            cmd = []
    try:
        with transaction.atomic():
            return Activation.objects.create(
                slot=SLOT,
                entry=ModelEntry.objects.filter(name=state["logical_name"]).first(),
                logical_name=state["logical_name"],
                served_model_id=state["served_model_id"],
                state=ActivationState.RUNNING,
                mode=_mode(cfg),
                user_name="(adopted)",
                command=cmd,
                host=cfg.host,
                port=state["port"],
                host_name=this_host(),
                base_url=advertised_url(cfg, state["port"]),
                pid=state["pid"],
                pgid=ident.pgid if ident else None,
                create_time=ident.create_time if ident else None,
                cmdline_hash=ident.cmdline_hash if ident else "",
                started_at=datetime.fromtimestamp(
                    state["started_at"], tz=timezone.now().tzinfo
                ),
                ready_at=timezone.now(),
                error="Adopted after a restart",
            )
    except IntegrityError:
        return None


def _adopt_remote_without_state(cfg: VllmConfig, path) -> list[str]:
    try:
        remote = clients.admin_state(cfg.admin_url, token=cfg.admin_token, timeout=2.0)
    except clients.AdminError:
        return []
    if remote.get("status") != "running" or not remote.get("logical_name"):
        return []
    served = remote.get("served_model_id") or remote["logical_name"]
    if not clients.vllm_ready(
        cfg.base_url(_default_port(cfg)), served, timeout=1.0
    ).ready:
        return []
    state = statefile.make_state(
        logical_name=remote["logical_name"],
        served_model_id=served,
        port=_default_port(cfg),
        pid=_int(remote.get("pid")) or 1,
        started_at=float(remote.get("started_at") or time.time()),
    )
    act = _adopt(state, cfg, None)
    if act is None:
        return []
    statefile.write_state(path, state)
    msg = (
        f"Adopted {state['logical_name']} running on the admin service (no state file)."
    )
    return _reconciled(msg, act, after=state)


# --- UI status --------------------------------------------------------------------


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


def status() -> SlotStatus:
    """Cheap (database only) status of the vLLM slot for polling."""
    pending = (
        Job.objects.filter(
            kind__in=("activate", "stop"), status__in=("queued", "running")
        )
        .order_by("-created")
        .first()
    )
    live = live_activation()
    now = timezone.now()
    if live is not None:
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
        label = {
            ActivationState.STARTING: "Activating…",
            ActivationState.RUNNING: "Active",
            ActivationState.STOPPING: "Stopping…",
        }[live.state]
        return SlotStatus(
            state=live.state,
            label=label,
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
    if pending is not None:
        label = "Activating…" if pending.kind == "activate" else "Stopping…"
        return SlotStatus(
            state="queued",
            label=label,
            logical_name=pending.entry_name,
            user_name=pending.user_name,
            elapsed_s=(now - pending.created).total_seconds(),
            job=pending,
            terminal=False,
        )
    last = Activation.objects.filter(slot=SLOT).first()
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


# --- helpers ------------------------------------------------------------------------


def _state_path(cfg: VllmConfig):
    return statefile.state_path(cfg.staging_dir)


def _mode(cfg: VllmConfig) -> str:
    return ActivationMode.PROXY if cfg.proxy_mode else ActivationMode.LOCAL


def _default_port(cfg: VllmConfig) -> int:
    return cfg.port


def _forget(pid: int | None) -> None:
    with _POPENS_LOCK:
        _POPENS.pop(pid or 0, None)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _progress(job: Job | None, fraction: float, message: str) -> None:
    if job is not None:
        from registry.jobs import progress

        progress(job, fraction, message)


def _retry_locked(fn, attempts: int = 50):
    """Run a short DB write, retrying SQLite "database is locked" contention.

    SQLite (the embedded default) reports writer contention as OperationalError
    rather than waiting in some configurations; PostgreSQL never hits this path.
    """
    from django.db import OperationalError

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
