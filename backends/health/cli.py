"""``imageworks-models show-backends [--json]``: backend health from a fresh check.

``imageworks_site/cli.py`` calls :func:`add_subcommands`; the parser's
``func`` default is called with the parsed args and returns the exit code
(0, or 1 with ``--strict`` when a configured backend is not ready).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from ..choices import HealthStatus
from . import check, summary
from .endpoints import KIND_ORDER


def _serves(row) -> dict[str, Any]:
    d = row.details or {}
    serves: dict[str, Any] = {}
    if d.get("activation"):
        a = d["activation"]
        serves["active"] = {
            "logical_name": a.get("logical_name"),
            "served_model_id": a.get("served_model_id"),
            "port": a.get("port"),
            "started_at": a.get("started_at"),
        }
    if d.get("served_models") is not None:
        serves["served_models"] = d["served_models"]
    if d.get("version"):
        serves["version"] = d["version"]
    if d.get("loaded") is not None:
        serves["loaded"] = [
            {k: m.get(k) for k in ("name", "size_vram", "expires_at")}
            for m in d["loaded"]
        ]
    if d.get("installed") is not None:
        serves["installed"] = [m["name"] for m in d["installed"]]
    if d.get("missing_tags"):
        serves["missing_tags"] = d["missing_tags"]
    if d.get("unknown_tags"):
        serves["unknown_tags"] = [m["name"] for m in d["unknown_tags"]]
    if d.get("ready"):
        serves["ready"] = d["ready"]
    return serves


def collect(timeout: float | None = None) -> dict[str, Any]:
    """Run a fresh check and shape it for output."""
    report = check.check_all(timeout=timeout)
    backends = []
    for kind in KIND_ORDER:
        card = summary.kind_summary(kind)
        backends.append(
            {
                "kind": kind.value,
                "label": kind.label,
                "status": card["status"],
                "note": card["note"],
                "endpoints": [
                    {
                        "key": row.key,
                        "url": row.url,
                        "status": row.status,
                        "status_label": HealthStatus(row.status).label,
                        "since": row.since.isoformat() if row.since else None,
                        "last_checked": row.last_checked.isoformat()
                        if row.last_checked
                        else None,
                        "latency_ms": row.latency_ms,
                        "error": row.last_error,
                        "note": (row.details or {}).get("note") or "",
                        "entries": sorted((row.details or {}).get("entries") or {}),
                        "serves": _serves(row),
                    }
                    for row in card["endpoints"]
                ],
            }
        )
    autostart = report.autostart
    return {
        "duration_s": report.duration_s,
        "backends": backends,
        "autostart": {
            "source": autostart.source,
            "error": autostart.error,
            "commands": autostart.commands,
        },
    }


def _text(data: dict[str, Any]) -> str:
    lines = []
    for backend in data["backends"]:
        lines.append(f"{backend['label']}: {backend['status']}")
        if not backend["endpoints"] and backend["note"]:
            lines.append(f"  {backend['note']}")
        for ep in backend["endpoints"]:
            latency = (
                f"{ep['latency_ms']:.0f} ms" if ep["latency_ms"] is not None else "-"
            )
            lines.append(
                f"  {ep['url'] or ep['key']}  {ep['status_label']}  since {ep['since'] or '-'}  {latency}"
            )
            if ep["error"]:
                lines.append(f"    error: {ep['error']}")
            if ep["note"]:
                lines.append(f"    {ep['note']}")
            serves = ep["serves"]
            if "active" in serves:
                a = serves["active"]
                lines.append(
                    f"    active: {a['logical_name']} as {a['served_model_id']} on port {a['port']}"
                )
            if serves.get("served_models"):
                lines.append(f"    serves: {', '.join(serves['served_models'])}")
            if "loaded" in serves:
                loaded = ", ".join(m["name"] for m in serves["loaded"]) or "none"
                lines.append(
                    f"    version {serves.get('version', '?')}, loaded: {loaded}"
                )
            if serves.get("missing_tags"):
                tags = ", ".join(
                    f"{m['tag']} ({m['entry']})" for m in serves["missing_tags"]
                )
                lines.append(f"    missing on server: {tags}")
            if serves.get("unknown_tags"):
                lines.append(
                    f"    not in registry: {', '.join(serves['unknown_tags'])}"
                )
    if data["autostart"]["error"]:
        lines.append(f"Autostart map problem: {data['autostart']['error']}")
    lines.append(f"(checked in {data['duration_s']:.2f} s)")
    return "\n".join(lines)


def show_backends(args) -> int:
    data = collect(timeout=getattr(args, "timeout", None))
    if getattr(args, "json", False):
        json.dump(data, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(_text(data) + "\n")
    if getattr(args, "strict", False):
        bad = [
            ep
            for b in data["backends"]
            for ep in b["endpoints"]
            if ep["status"] not in ("online", "not_configured")
        ]
        return 1 if bad else 0
    return 0
