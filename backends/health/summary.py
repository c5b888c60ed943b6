"""Reading stored results (views, CLI, other apps): cards, runtime flags, Ollama tags.

No probing here except :func:`unknown_ollama_tags` with ``fresh=True``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..choices import BackendKind, HealthStatus
from ..models import BackendEndpoint
from ..serving import BACKEND_URL_SETTINGS, configured_server
from .autostart import load_autostart_map
from .check import check_all
from .endpoints import VLLM_ACTIVE_KEY, build_endpoints

# Worst first: the status a backend card shows when its endpoints disagree.
SEVERITY = [
    HealthStatus.ERROR,
    HealthStatus.OFFLINE,
    HealthStatus.DEGRADED,
    HealthStatus.STARTING,
    HealthStatus.UNKNOWN,
    HealthStatus.ONLINE,
    HealthStatus.NOT_CONFIGURED,
]


def worst_status(statuses: Iterable[str]) -> str:
    statuses = list(statuses)
    for status in SEVERITY:
        if status in statuses:
            return status
    return HealthStatus.NOT_CONFIGURED


def configured_endpoints(kind: str | None = None):
    """Stored endpoints that are still configured (the vLLM slot is always listed)."""
    rows = BackendEndpoint.objects.exclude(details__configured=False)
    if kind:
        rows = rows.filter(kind=kind)
    return rows.order_by("kind", "key")


def primary_endpoint(kind: str, endpoints: list[BackendEndpoint]):
    """The endpoint a card's headline speaks for: the active vLLM slot, or the server
    of the backend's URL setting (``IMAGEWORKS_OLLAMA_URL`` ...); None when the
    backend has no configured URL (its entries name their own servers)."""
    if kind == BackendKind.VLLM:
        return next((ep for ep in endpoints if ep.key == VLLM_ACTIVE_KEY), None)
    configured = configured_server(kind)
    if configured is None:
        return None
    return next((ep for ep in endpoints if ep.url == configured[0]), None)


def kind_summary(kind: str) -> dict[str, Any]:
    """Everything a backend card shows.

    The headline is the state of the configured endpoint (the active vLLM model, the
    backend's URL setting); entries' own servers that differ are listed under it
    (``others``) with their own status, so an Ollama whose configured server is
    Ready never reads "Offline" because one entry points at a machine that is off.
    A backend without a configured URL falls back to the worst of its entries'
    servers, and says so.

    Long on purpose: it builds one dict field by field, each a line or two, in the
    order the card shows them.
    """
    kind = BackendKind(kind)
    endpoints = list(configured_endpoints(kind))
    probed = [ep for ep in endpoints if ep.status != HealthStatus.NOT_CONFIGURED]
    primary = primary_endpoint(kind, endpoints)
    others = [ep for ep in endpoints if ep is not primary]
    note = ""
    if primary is not None:
        status = primary.status
        since = primary.since if primary.status != HealthStatus.NOT_CONFIGURED else None
        if primary.status == HealthStatus.NOT_CONFIGURED:
            note = primary.details.get("note") or primary.last_error
    else:
        status = (
            worst_status(ep.status for ep in probed)
            if probed
            else HealthStatus.NOT_CONFIGURED
        )
        since = max(
            (ep.since for ep in probed if ep.since and ep.status == status),
            default=None,
        )
        if probed and kind != BackendKind.VLLM:
            setting_name = BACKEND_URL_SETTINGS.get(kind)
            note = (
                f"No {setting_name}: the worst of the entries' own servers."
                if setting_name and len(probed) > 1
                else ""
            )
    if not endpoints:
        if any(ep.kind == kind and not ep.fixed_status for ep in build_endpoints()):
            status = HealthStatus.UNKNOWN
            note = "Never checked."
        else:
            note = "Not configured: no URL in the settings and no registry entry uses this backend."
    elif not probed and not note:
        note = endpoints[0].details.get("note") or endpoints[0].last_error
    autostart = load_autostart_map() if kind == BackendKind.OLLAMA else None
    differing = others if primary is not None else []
    return {
        "kind": kind.value,
        "label": kind.label,
        "status": status,
        "status_label": HealthStatus(status).label,
        "colour": HealthStatus(status).colour,
        "primary": primary,
        # The headline's endpoint first, then the entries' own servers.
        "endpoints": ([primary] if primary is not None else []) + others,
        "others": differing,
        "others_not_ready": [
            ep
            for ep in differing
            if ep.status not in (HealthStatus.ONLINE, HealthStatus.NOT_CONFIGURED)
        ],
        "note": note,
        "autostart": autostart,
        # When the card entered its current status.
        "since": since,
        "last_checked": max(
            (ep.last_checked for ep in endpoints if ep.last_checked), default=None
        ),
    }


def unknown_ollama_tags(*, fresh: bool = False) -> list[dict[str, Any]]:
    """Tags installed on an Ollama server that no registry entry knows (for the import wizard).

    Read from the last check; ``fresh=True`` checks the Ollama servers first.
    Each item: ``{endpoint, url, name, tag, digest, size}``.
    """
    if fresh:
        check_all([BackendKind.OLLAMA])
    out = []
    for row in configured_endpoints(BackendKind.OLLAMA):
        for tag in row.details.get("unknown_tags") or []:
            out.append({"endpoint": row.key, "url": row.url, **tag})
    return out


def missing_ollama_tags() -> list[dict[str, Any]]:
    """Ollama entries whose tag the server does not have: ``{endpoint, url, entry, tag}``."""
    out = []
    for row in configured_endpoints(BackendKind.OLLAMA):
        for item in row.details.get("missing_tags") or []:
            out.append({"endpoint": row.key, "url": row.url, **item})
    return out


def runtime_flags() -> dict[str, dict[str, Any]]:
    """Entry name -> ``{installed, active, autostart}`` from the last check (no network).

    Ollama: installed from /api/tags, active from /api/ps. vLLM: active when it
    is the active model and its endpoint answered ready.
    """
    flags: dict[str, dict[str, Any]] = {}
    for row in configured_endpoints():
        for name, info in (row.details.get("entries") or {}).items():
            flags[name] = {
                "installed": info.get("installed"),
                "active": info.get("active"),
                "autostart": info.get("autostart"),
            }
        if row.key == VLLM_ACTIVE_KEY and row.details.get("activation"):
            name = row.details["activation"].get("logical_name")
            if name:
                flags.setdefault(name, {})["active"] = row.status == HealthStatus.ONLINE
    return flags
