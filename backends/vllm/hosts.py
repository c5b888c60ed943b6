"""Machines: whose pid is it?

Every activation records the machine that launched it (``host_name``, from
``IMAGEWORKS_HOST_NAME``). In local mode only a process on that machine declares
it dead, stops or replaces it; elsewhere reconciliation leaves the row alone and at
most asks the server over HTTP (``base_url``), so a web host never records the GPU
host's server as "found dead".
"""

from __future__ import annotations

import re

from django.conf import settings
from django.utils import timezone

from backends import clients
from backends.choices import ActivationMode, ActivationState
from backends.models import Activation
from registry.audit import Actor, record
from registry.choices import Action

from . import statefile
from .command import VllmConfig
from .errors import ActivationRefused
from .slot import LIVE, SLOT, config, state_dict, state_path

_LOOPBACK = re.compile(r"^(127\.|localhost$|::1$|\[::1\]$)", re.IGNORECASE)
_WILDCARD = ("0.0.0.0", "", "::", "[::]")


def this_host() -> str:
    """This machine's name as activations record it (``IMAGEWORKS_HOST_NAME``)."""
    return str(settings.IMAGEWORKS_HOST_NAME)


def vllm_queue() -> str:
    """The GPU host's django-q2 queue (``IMAGEWORKS_VLLM_QUEUE``), "" when unset."""
    return str(getattr(settings, "IMAGEWORKS_VLLM_QUEUE", "") or "").strip()


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


def judges_state_file_pids() -> bool:
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
        path = state_path(config())
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
