"""The ONE adapter between the inventory app and the internals of ``registry`` and
``backends`` (services, layers, health checks, the activation service).

Everything else in ``inventory`` talks to those apps only through this module (plus
their stable models, ``registry.audit`` and ``registry.choices``), so a restructure
of ``registry.services.*``, ``registry.layers``, ``backends.health`` or
``backends.vllm.service`` is absorbed here. ``registry.jobs.enqueue`` is called from
``inventory.tasks`` alone (the ``RECONCILE_SCAN`` job kind).

Nothing here writes except :func:`set_deprecated` (through the registry's
``change_entry``: file first, one audit row).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import Max
from django.urls import reverse

from registry.audit import Actor
from registry.choices import Action, Outcome
from registry.models import ActionLog, ModelEntry

from .reconcile import BackendState, OllamaServer, VllmServed
from .scan import default_ollama_dir
from .usage import EntryRef

OLLAMA = "ollama"
VLLM = "vllm"

# --------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------


def model_roots() -> list[Path]:
    """``IMAGEWORKS_MODEL_ROOTS`` (what verify and activation accept)."""
    return [
        Path(r).expanduser()
        for r in (getattr(settings, "IMAGEWORKS_MODEL_ROOTS", None) or [])
        if str(r)
    ]


def ollama_models_dir() -> str:
    """``IMAGEWORKS_OLLAMA_MODELS_DIR``, else ``$OLLAMA_MODELS`` / ``~/.ollama/models``;
    "" disables reading the Ollama store."""
    value = getattr(settings, "IMAGEWORKS_OLLAMA_MODELS_DIR", None)
    if value is None:
        return default_ollama_dir()
    return os.path.expanduser(str(value))


# --------------------------------------------------------------------------------------
# Entries
# --------------------------------------------------------------------------------------


def _ollama_tag(entry: ModelEntry) -> str:
    from backends.health import ollama_entry_tag

    return ollama_entry_tag(entry)


def _artifact_files(merged: dict) -> tuple[tuple[str, str], ...]:
    artifacts = merged.get("artifacts") if isinstance(merged, dict) else None
    files = artifacts.get("files") if isinstance(artifacts, dict) else None
    if not isinstance(files, list):
        return ()
    return tuple(
        (str(f["path"]), str(f.get("sha256") or "").lower())
        for f in files
        if isinstance(f, dict) and isinstance(f.get("path"), str)
    )


def _ollama_digest(merged: dict) -> str:
    meta = merged.get("metadata") if isinstance(merged, dict) else None
    value = meta.get("ollama_digest") if isinstance(meta, dict) else None
    return str(value or "").strip()


def entry_ref(entry: ModelEntry) -> EntryRef:
    """An entry as plain data (reads the raw layers for ``artifacts``)."""
    from registry import normalize

    merged = entry.merged or {}
    is_ollama = entry.backend == OLLAMA or entry.model_dir.startswith("ollama:")
    return EntryRef(
        name=entry.name,
        backend=entry.backend,
        model_dir=normalize.model_dir(merged) or entry.model_dir,
        download_path=entry.download_path,
        ollama_tag=_ollama_tag(entry) if is_ollama else "",
        pk=entry.pk,
        served_model_id=entry.served_model_id,
        locked=entry.locked,
        deprecated=entry.deprecated,
        artifact_files=_artifact_files(merged),
        aggregate_sha256=entry.aggregate_sha256,
        ollama_digest=_ollama_digest(merged),
    )


def entry_refs(entries: Iterable[ModelEntry] | None = None) -> list[EntryRef]:
    if entries is None:
        entries = ModelEntry.objects.order_by("name")
    return [entry_ref(e) for e in entries]


def sync_before_scan(actor: Actor) -> str:
    """Bring the mirror up to date with the layer files ("" or the error)."""
    from registry.services.sync import sync_registry

    result = sync_registry(actor, explicit=False)
    return "" if result.ok else result.error


# --------------------------------------------------------------------------------------
# Backends (what the last health check stored; no network unless refreshed)
# --------------------------------------------------------------------------------------


def refresh_backends() -> str:
    """Check Ollama and vLLM now (concurrent, bounded by the health timeout)."""
    from backends.health import check_all

    try:
        check_all([OLLAMA, VLLM])
    except Exception as exc:  # noqa: BLE001 - a health problem must not stop a scan
        return f"backend check failed: {exc}"
    return ""


def backend_state() -> BackendState:
    from backends.health import VLLM_ACTIVE_KEY, configured_endpoints

    state = BackendState()
    for row in configured_endpoints(OLLAMA):
        details = row.details or {}
        installed = details.get("installed")
        state.ollama.append(
            OllamaServer(
                url=row.url,
                installed=tuple(installed) if isinstance(installed, list) else None,
                entries={
                    name: info
                    for name, info in (details.get("entries") or {}).items()
                    if isinstance(info, dict)
                },
            )
        )
    vllm = configured_endpoints(VLLM).filter(key=VLLM_ACTIVE_KEY).first()
    activation = (vllm.details or {}).get("activation") if vllm else None
    if vllm is not None and activation and vllm.status != "not_configured":
        state.vllm = VllmServed(
            logical_name=str(activation.get("logical_name") or ""),
            served_models=tuple(vllm.details.get("served_models") or ()),
            roots=dict(vllm.details.get("roots") or {}),
            status=vllm.status,
            checked_at=vllm.last_checked.isoformat() if vllm.last_checked else "",
        )
    return state


def active_entries() -> dict[str, str]:
    """Entries in use now -> why: the live vLLM activation, Ollama models loaded."""
    from backends.health import runtime_flags
    from backends.vllm.service import live_activation

    active: dict[str, str] = {}
    live = live_activation()
    if live is not None:
        active[live.logical_name] = f"vLLM activation is {live.get_state_display()}"
    for name, flags in runtime_flags().items():
        if flags.get("active") and name not in active:
            active[name] = "loaded on its backend (last health check)"
    return active


def last_activations(names: Iterable[str] | None = None) -> dict[str, datetime]:
    """Entry name -> when it was last started (one query)."""
    from backends.models import Activation

    rows = Activation.objects.filter(started_at__isnull=False)
    if names is not None:
        rows = rows.filter(logical_name__in=list(names))
    return {
        r["logical_name"]: r["last"]
        for r in rows.values("logical_name").annotate(last=Max("started_at"))
    }


def last_verifications(names: Iterable[str] | None = None) -> dict[str, datetime]:
    """Entry name -> last successful verify (the audit log; one query)."""
    rows = ActionLog.objects.filter(action=Action.VERIFY, outcome=Outcome.SUCCEEDED)
    if names is not None:
        rows = rows.filter(entry_name__in=list(names))
    return {
        r["entry_name"]: r["last"]
        for r in rows.values("entry_name").annotate(last=Max("time"))
    }


# --------------------------------------------------------------------------------------
# The one write: the deprecated flag (curated layer, through change_entry)
# --------------------------------------------------------------------------------------


class EditRefused(Exception):
    """The registry refused the write (conflict, read-only file, unknown entry)."""


def deprecate_mutator(name: str, deprecated: bool):
    """The curated-layer change: ``deprecated`` set (a new overlay is marked curated).

    The original resets ``deprecated`` on discovered-only entries when it saves, so
    the flag goes into the curated layer (reference §2.5).
    """

    def mutate(raw: dict | None) -> dict:
        raw = dict(raw) if isinstance(raw, dict) else {"name": name}
        raw["deprecated"] = bool(deprecated)
        meta = raw.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
        if "registry_layer" not in meta:
            meta = {**meta, "registry_layer": "curated"}
            raw["metadata"] = meta
        return raw

    return mutate


def deprecate_preview(entry: ModelEntry, deprecated: bool = True) -> dict[str, Any]:
    """What :func:`set_deprecated` would write: curated before/after and a unified diff."""
    from registry import layers
    from registry.services.editing import unified_diff

    before = entry.curated_raw
    after = deprecate_mutator(entry.name, deprecated)(
        dict(before) if isinstance(before, dict) else None
    )
    label = f"{layers.CURATED_FILE}:{entry.name}"
    return {
        "before": before,
        "after": after,
        "diff": unified_diff(before, after, label),
        "file": layers.CURATED_FILE,
    }


def set_deprecated(
    actor: Actor,
    name: str,
    deprecated: bool = True,
    *,
    expected_fingerprint: str | None = None,
    reason: str = "",
    details: dict | None = None,
):
    """Set the curated ``deprecated`` flag, file first, one ``edit`` audit row.

    Returns the ``ActionLog`` row; raises :class:`EditRefused` with the registry's
    message when the write is refused (conflict, read-only file, unknown entry).
    """
    from registry import layers
    from registry.services.writeback import change_entry

    verb = "Marked deprecated" if deprecated else "Cleared deprecated"
    try:
        res = change_entry(
            actor,
            Action.EDIT,
            name,
            layers.CURATED,
            deprecate_mutator(name, deprecated),
            expected_fingerprint=expected_fingerprint,
            message=f"{verb}: {name}" + (f" ({reason})" if reason else ""),
            details={"deprecated": deprecated, "reason": reason, **(details or {})},
        )
    except layers.RegistryError as exc:
        raise EditRefused(str(exc)) from exc
    return res.action


# --------------------------------------------------------------------------------------
# Links into the registry's pages and commands
# --------------------------------------------------------------------------------------


def entry_url(pk: int) -> str:
    return reverse("registry:modelentry_detail", args=[pk])


def edit_url(pk: int) -> str:
    return reverse("registry:entry_edit", args=[pk])


def import_url(query: str = "") -> str:
    url = reverse("registry:import_start")
    return f"{url}?{urlencode({'q': query})}" if query else url


def activate_command(name: str) -> list[str]:
    return ["imageworks-models", "activate-model", name]


def verify_command(name: str) -> list[str]:
    return ["imageworks-models", "verify", name]
