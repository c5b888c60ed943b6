"""Ollama reconciliation: ``installed`` from ``/api/tags``, "active" from ``/api/ps``.

Tags missing on the server and server tags no entry knows are reported in the
endpoint's details (the import wizard offers the unknown ones).
"""

from __future__ import annotations

from typing import Any

from registry.models import ModelEntry

from .. import clients
from .autostart import AutostartMap
from .endpoints import Endpoint, ollama_entry_tag
from .store import base_details


def reconcile_ollama(
    endpoint: Endpoint, result: clients.ProbeResult, autostart: AutostartMap
) -> dict[str, Any]:
    """Per-entry installed/active for one Ollama endpoint; updates ModelEntry.installed.

    ``installed`` becomes None (unknown) while the server cannot tell.
    """
    details = base_details(endpoint, result)
    installed = result.details.get("installed")
    loaded = result.details.get("loaded")
    installed_tags = {m["tag"] for m in installed} if installed is not None else None
    loaded_tags = {m["tag"] for m in loaded} if loaded is not None else None
    entries = ModelEntry.objects.filter(name__in=endpoint.entries)
    per_entry: dict[str, dict[str, Any]] = {}
    known_tags: set[str] = set()
    missing: list[dict[str, str]] = []
    for entry in entries:
        tag = ollama_entry_tag(entry)
        known_tags.add(tag)
        is_installed = None if installed_tags is None else tag in installed_tags
        is_active = None if loaded_tags is None else tag in loaded_tags
        command = autostart.commands.get(entry.name)
        per_entry[entry.name] = {
            "tag": tag,
            "installed": is_installed,
            "active": is_active,
            "autostart": command,
        }
        if is_installed is False:
            missing.append({"entry": entry.name, "tag": tag})
        if entry.installed != is_installed:
            ModelEntry.objects.filter(pk=entry.pk).update(installed=is_installed)
    unknown = [
        {"name": m["name"], "tag": m["tag"], "digest": m["digest"], "size": m["size"]}
        for m in (installed or [])
        if m["tag"] not in known_tags
    ]
    details.update(
        entries=per_entry,
        missing_tags=missing,
        unknown_tags=unknown,
        autostart_error=autostart.error,
        autostart_source=autostart.source,
    )
    return details
