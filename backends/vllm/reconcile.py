"""Reconcile the database, the state file and the real processes (after restarts).

Adopting a server or removing a stale state file writes a ``reconcile`` audit row
saying why. Only the machine that launched a local-mode server judges its pid
(``hosts``); elsewhere a live row is left alone and at most asked over HTTP.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from backends import clients
from backends.choices import ActivationMode, ActivationState
from backends.models import Activation
from registry.audit import record
from registry.choices import Action, Outcome
from registry.models import ModelEntry

from . import process, statefile
from .command import VllmConfig
from .hosts import (
    advertised_url,
    judges_state_file_pids,
    remote_check,
    this_host,
    vllm_queue,
)
from .server import process_alive, stop_process
from .slot import (
    RECONCILER,
    SLOT,
    as_int,
    config,
    live_activation,
    mode,
    reconciled,
    state_dict,
    state_path,
)

#: Seconds after which a "starting" row whose process is gone is cleaned up.
DEAD_START_GRACE_S = 10.0


def adopt_or_clean(*, cfg: VllmConfig | None = None) -> list[str]:
    """Reconcile the database, the state file and the real processes (after restarts).

    * running row, process alive -> recognised; the state file is rewritten if missing;
    * running row, process gone -> failed "found dead", state file removed (audited);
    * starting/stopping row abandoned by a dead worker -> finished or adopted;
    * no live row but a state file whose process serves its model -> adopted (audited);
    * no live row and a stale or corrupt state file -> removed (audited, with why).
    Returns what it did, one line per action.
    """
    from filelock import FileLock, Timeout  # here: it imports asyncio (CLI start-up)

    cfg = cfg or config()
    path = state_path(cfg)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(path.with_suffix(".reconcile.lock")), timeout=10):
            return _reconcile(cfg, path)
    except Timeout:
        return []


def _reconcile(cfg: VllmConfig, path: Path) -> list[str]:
    live = live_activation()
    if live is not None:
        return _reconcile_live(live, cfg, path)
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
        return _adopt_remote_without_state(cfg, path) if cfg.proxy_mode else []
    if not cfg.proxy_mode and not judges_state_file_pids():
        # The file holds a pid but not the machine; with a GPU queue the server was
        # started by that queue's worker, and only it (or its schedule) may judge it.
        return [
            f"The state file names {state['logical_name']} (pid {state['pid']}) "
            f"but no activation is live; left for the worker of queue "
            f"{vllm_queue()} (the vLLM host) to check."
        ]
    return _reconcile_state_file(state, cfg, path)


def _reconcile_state_file(state: dict, cfg: VllmConfig, path: Path) -> list[str]:
    """No live row but a state file: adopt the server it names, or remove the file."""
    served_ok = clients.vllm_ready(
        cfg.base_url(state["port"]), state["served_model_id"], timeout=1.0
    ).ready
    if cfg.proxy_mode:
        try:
            remote = clients.admin_state(
                cfg.admin_url, token=cfg.admin_token, timeout=2.0
            )
        except clients.AdminError:
            return []  # cannot tell; leave the file alone
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
        if act is None:
            return []
        msg = f"Adopted running vLLM {state['logical_name']} (pid {state['pid']}, port {state['port']}) from the state file."
        return reconciled(msg, act, after=state)
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


def _reconcile_live(live: Activation, cfg: VllmConfig, path: Path) -> list[str]:
    if live.launched_elsewhere:
        # Never touch another machine's activation or the state file from here: its
        # own host reconciles it (activate/stop jobs, the reconcile schedule).
        return [remote_check(live)[1]]
    alive = process_alive(live, cfg) if live.pid else False
    if live.state == ActivationState.RUNNING:
        return _reconcile_running(live, path, alive)
    return _reconcile_abandoned(live, cfg, path, alive)


def _reconcile_running(live: Activation, path: Path, alive: bool) -> list[str]:
    """A running row: rewrite a missing state file, or record the server found dead."""
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
    return reconciled(msg, live, before=state_dict(live))


def _reconcile_abandoned(
    live: Activation, cfg: VllmConfig, path: Path, alive: bool
) -> list[str]:
    """A starting/stopping row whose worker died: adopt it if ready, else clean up.

    Only after the worker would have given up, or, for a start whose recorded
    process is gone, after a short grace (a live worker records the real exit
    reason first) instead of leaving the slot "starting" until the full timeout.
    """
    age = (timezone.now() - live.last_updated).total_seconds()
    limit = (
        cfg.start_timeout if live.state == ActivationState.STARTING else cfg.stop_grace
    ) + 30.0
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
        if n != 1:
            return []
        live.refresh_from_db()
        statefile.write_state(path, state_dict(live))
        msg = f"Adopted {live.logical_name}: its activating worker died but the server is ready."
        return reconciled(msg, live)
    n = Activation.objects.filter(pk=live.pk, state=live.state).update(
        state=ActivationState.STOPPING
    )
    if n != 1:
        return []
    result = stop_process(live, cfg) if alive else None
    Activation.objects.filter(pk=live.pk, state=ActivationState.STOPPING).update(
        state=ActivationState.FAILED,
        error=f"Abandoned while {live.state} (worker gone); cleaned up.",
        stopped_at=timezone.now(),
        exit_code=result.exit_code if result else None,
    )
    statefile.remove_state(path)
    msg = f"Cleaned up abandoned {live.state} activation of {live.logical_name}."
    return reconciled(msg, live)


def _adopt(
    state: dict[str, Any], cfg: VllmConfig, ident: process.ProcessIdentity | None
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
                mode=mode(cfg),
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
                # Someone else started it, maybe inside their own process group:
                # stop signals the server and its descendants, never that group.
                owns_group=False,
                started_at=datetime.fromtimestamp(
                    state["started_at"], tz=timezone.now().tzinfo
                ),
                ready_at=timezone.now(),
                error="Adopted after a restart",
            )
    except IntegrityError:
        return None


def _adopt_remote_without_state(cfg: VllmConfig, path: Path) -> list[str]:
    """Proxy mode, no state file: adopt what the admin service says it runs."""
    try:
        remote = clients.admin_state(cfg.admin_url, token=cfg.admin_token, timeout=2.0)
    except clients.AdminError:
        return []
    if remote.get("status") != "running" or not remote.get("logical_name"):
        return []
    served = remote.get("served_model_id") or remote["logical_name"]
    if not clients.vllm_ready(cfg.base_url(cfg.port), served, timeout=1.0).ready:
        return []
    state = statefile.make_state(
        logical_name=remote["logical_name"],
        served_model_id=served,
        port=cfg.port,
        pid=as_int(remote.get("pid")) or 1,
        started_at=float(remote.get("started_at") or time.time()),
    )
    act = _adopt(state, cfg, None)
    if act is None:
        return []
    statefile.write_state(path, state)
    msg = (
        f"Adopted {state['logical_name']} running on the admin service (no state file)."
    )
    return reconciled(msg, act, after=state)
