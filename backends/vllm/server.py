"""The served process of an activation: its identity, whether it lives, stopping it.

Local mode judges a pid by its identity (pid + create_time + command-line hash) and
stops its whole process group; proxy mode asks the remote admin service. A server
launched on another machine is only ever asked over HTTP (``hosts.remote_check``).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.utils import timezone

from backends import clients
from backends.choices import ActivationMode, ActivationState
from backends.models import Activation

from . import process
from .command import VllmConfig
from .errors import ActivationFailed
from .hosts import remote_check

# Popen objects of children spawned by *this* process, so we can reap them and
# report real exit codes. Everything else works from the database identity.
_POPENS: dict[int, Any] = {}
_POPENS_LOCK = threading.Lock()


def remember(popen: Any) -> None:
    """Keep the Popen of a child this process spawned (to reap it and read its exit code)."""
    with _POPENS_LOCK:
        _POPENS[popen.pid] = popen


def forget(pid: int | None) -> None:
    with _POPENS_LOCK:
        _POPENS.pop(pid or 0, None)


def identity(act: Activation) -> process.ProcessIdentity:
    return process.ProcessIdentity(
        pid=act.pid or 0,
        pgid=act.pgid or act.pid or 0,
        create_time=act.create_time or 0.0,
        cmdline_hash=act.cmdline_hash,
    )


def process_alive(act: Activation, cfg: VllmConfig) -> bool:
    """Does the activation's server still run (its host's view; unknown is alive)?"""
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
    return bool(act.pid) and identity(act).is_alive()


def stop_process(act: Activation, cfg: VllmConfig) -> process.StopResult | None:
    """Stop the activation's server (its process group, or the remote admin's child)."""
    if act.mode == ActivationMode.PROXY:
        remote_deactivate(cfg, wait_port=act.port)
        return None
    if not act.pid:
        return None
    with _POPENS_LOCK:
        popen = _POPENS.get(act.pid)
    result = process.stop_group(identity(act), grace=cfg.stop_grace, popen=popen)
    forget(act.pid)
    return result


def remote_deactivate(cfg: VllmConfig, wait_port: int | None = None) -> None:
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


def finish_stopped(
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
