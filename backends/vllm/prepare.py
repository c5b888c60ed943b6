"""Validate before you stop: every check of a launch that touches no process.

B's launch is fully checked (vLLM backend, lock gate, model files, chat template,
port can be freed, admin service reachable) before A is touched, so a bad request
never leaves the GPU idle (F6, R12). The drawer and the confirm dialog show the
same checks through :func:`preview`. :func:`preflight_gate` adds the preflight
(issue 13 §2): a failed check refuses the activation unless an operator overrides
it with a reason, which the audit row records.
"""

from __future__ import annotations

from typing import Any

from backends import clients
from backends.choices import ActivationState
from backends.models import Activation
from registry.models import ModelEntry
from registry.services.verify import lock_gate

from . import process
from .command import (
    LaunchRefused,
    LaunchSpec,
    VllmConfig,
    build_launch,
    cli_equivalent,
    merged_for_launch,
)
from .errors import ActivationRefused, PreflightRefused
from .options import SlotOptions
from .preflight import PreflightReport
from .server import own_server_pids
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
    merged = merged_for_launch(entry)
    check = (not cfg.proxy_mode) or cfg.admin_check_paths
    try:
        return build_launch(merged, cfg, check_paths=check)
    except LaunchRefused as exc:
        raise ActivationRefused(str(exc))


def preflight_gate(report: PreflightReport, options: SlotOptions) -> None:
    """Refuse (:class:`PreflightRefused`) on a failed check unless the operator
    overrides it (``options.override_preflight``) with a reason."""
    if report.ok:
        return
    if not options.override_preflight:
        raise PreflightRefused(report)
    if not options.reason.strip():
        raise ActivationRefused(
            "Overriding failed preflight checks needs a reason (it goes into the audit log)."
        )


def preflight_details(report: PreflightReport, options: SlotOptions) -> dict[str, Any]:
    """What the activate audit row records about the preflight."""
    return {
        "ok": report.ok,
        "elapsed_s": round(report.elapsed_s, 3),
        "failed": [{"id": c.id, "message": c.message} for c in report.failed],
        "warnings": [{"id": c.id, "message": c.message} for c in report.warnings],
        "overridden": bool(report.failed) and options.override_preflight,
    }


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
    allowed = own_server_pids(live)
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
