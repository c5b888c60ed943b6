"""Validate before you stop: every check of a launch that touches no process.

B's launch is fully checked (vLLM backend, lock gate, model files, chat template,
port can be freed, admin service reachable) before A is touched, so a bad request
never leaves the GPU idle (F6, R12). The drawer and the confirm dialog show the
same checks through :func:`preview`.
"""

from __future__ import annotations

from typing import Any

from backends import clients
from backends.choices import ActivationState
from backends.models import Activation
from registry.models import ModelEntry
from registry.services.verify import lock_gate

from . import process
from .command import LaunchRefused, LaunchSpec, VllmConfig, build_launch, cli_equivalent
from .errors import ActivationRefused
from .slot import config, live_activation


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


def validate_runtime(
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
