"""Import discovered entries into the curated layer (the "Import from downloads" wizard).

An importable entry is a discovered entry with no curated overlay. Importing writes a
small curated overlay ``{name, display_name, backend, capabilities, served_model_id,
roles, metadata: {registry_layer: "curated"}}`` (``capabilities`` copied from the
discovered entry when it has them: the original's checks expect every curated entry
to carry them); every other key keeps coming from the
discovered layer through the merge (curated wins per key). Ollama tags that no entry
knows can be imported too: they get a full new curated entry.

Refusals, each with a reason: the name is already curated (also re-checked under the
registry lock at Confirm, so a concurrent import by someone else is reported as
"already curated (by bob)" and the others still go in), the name is unknown, or two
entries point at the same download: same backend, normalised path and hash (the
original's ``_download_identity``).

All accepted entries are appended in ONE atomic write of the curated file; the audit
log gets one ``import`` row per entry (refused ones as failed rows with the reason),
all sharing ``details["batch"]``.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import layers, normalize
from ..audit import Actor
from ..choices import Action, Layer
from ..models import EntryChange, ModelEntry
from .editing import unified_diff
from .sync import registry_dir
from .writeback import BatchResult, change_entries


@dataclass
class ImportItem:
    """What the operator chose for one entry (wizard step 2, CLI flags or a file row)."""

    name: str
    roles: list[str]
    backend: str
    served_model_id: str = ""
    display_name: str = ""
    ollama_tag: str = ""  # set for an Ollama tag that no entry knows yet


@dataclass
class PlannedEntry:
    item: ImportItem
    curated: dict
    identity: tuple | None = None


@dataclass
class ImportPlan:
    entries: list[PlannedEntry] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)

    @property
    def names(self) -> list[str]:
        return [p.item.name for p in self.entries]

    def describe(self) -> str:
        lines = [
            f"Import {len(self.entries)} entr{'y' if len(self.entries) == 1 else 'ies'}:"
        ]
        for planned in self.entries:
            lines.append(
                f"  + {planned.item.name}: {json.dumps(planned.curated, ensure_ascii=False)}"
            )
        for name, reason in self.refused:
            lines.append(f"  ! {name}: refused: {reason}")
        return "\n".join(lines)


@dataclass
class ImportResult:
    imported: list[str]
    refused: list[tuple[str, str]]
    batch: BatchResult | None = None

    @property
    def message(self) -> str:
        parts = []
        n = len(self.imported)
        if n:
            parts.append(f"Imported {n} entr{'y' if n == 1 else 'ies'}")
        curated = [
            reason for _, reason in self.refused if reason.startswith("already curated")
        ]
        if curated:
            who = sorted({r.partition("(")[2].rstrip(")") for r in curated} - {""})
            by = f" ({', '.join(who)})" if who else ""
            parts.append(
                f"{len(curated)} entr{'y' if len(curated) == 1 else 'ies'} already curated{by}"
            )
        others = [
            f"{name}: {reason}"
            for name, reason in self.refused
            if not reason.startswith("already curated")
        ]
        if others:
            parts.append("refused " + "; ".join(others))
        return "; ".join(parts) or "Nothing imported"


# --------------------------------------------------------------------------------------
# Listing and suggestions
# --------------------------------------------------------------------------------------


def importable_entries(query: str = ""):
    """Discovered entries with no curated overlay (optionally filtered by a search)."""
    rows = ModelEntry.objects.filter(in_curated=False, in_discovered=True).order_by(
        "name"
    )
    if query.strip():
        rows = rows.filter(search_text__icontains=query.strip().lower())
    return rows


def entry_summary(entry: ModelEntry) -> dict[str, Any]:
    """Backend, format, quantization, path and size for the step-1 list."""
    merged = entry.merged or {}
    return {
        "backend": entry.backend,
        "format": merged.get("download_format") or "",
        "quantization": merged.get("quantization") or "",
        "path": normalize.model_dir(merged),
        "size": entry.download_size_bytes,
    }


def _guess_roles(merged: dict) -> list[str]:
    flags = normalize.canonical_flags(merged.get("capabilities"))
    if flags["embedding"]:
        return ["embedding"]
    if flags["vision"]:
        return ["caption", "description"]
    if flags["thinking"]:
        return ["reasoning"]
    return ["chat"]


def suggest_fields(entry: ModelEntry) -> dict[str, Any]:
    """Suggested step-2 values from the entry's own data.

    Existing values win; otherwise roles from the capabilities, backend from the path
    (``ollama:`` -> ollama, else vllm), served id from the HF id / alias (vllm) or the
    tag (ollama), display name from metadata or the name.
    """
    merged = entry.merged or {}
    metadata = (
        merged.get("metadata") if isinstance(merged.get("metadata"), dict) else {}
    )
    path = normalize.model_dir(merged)
    backend = str(merged.get("backend") or "").strip()
    if not backend or backend == "unassigned":
        backend = "ollama" if path.startswith("ollama:") else "vllm"
    served = normalize.served_id(merged.get("served_model_id"))
    if not served:
        if path.startswith("ollama:"):
            served = path.split(":", 1)[1].lstrip("/")
        else:
            source = (
                merged.get("source") if isinstance(merged.get("source"), dict) else {}
            )
            aliases = normalize.aliases(merged.get("model_aliases"))
            served = str(
                source.get("huggingface_id")
                or (aliases[0] if aliases else "")
                or entry.name
            )
    display = (
        str(metadata.get("display_name") or "").strip()
        or str(merged.get("display_name") or "").strip()
        or entry.name
    )
    return {
        "name": entry.name,
        "display_name": display,
        "backend": backend,
        "served_model_id": served,
        "roles": normalize.roles(merged.get("roles")) or _guess_roles(merged),
    }


def ollama_tag_name(tag: str) -> str:
    """A logical name for an Ollama tag, like the original's ``gemma3_27b``."""
    return tag.strip().replace(":", "_").replace("/", "_")


def suggest_for_tag(tag: str) -> dict[str, Any]:
    return {
        "name": ollama_tag_name(tag),
        "display_name": tag,
        "backend": "ollama",
        "served_model_id": tag,
        "roles": ["chat"],
        "ollama_tag": tag,
    }


# --------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------


def download_identity(raw: dict | None) -> tuple | None:
    """(backend, normalised path, hash) like the original's ``_download_identity``.

    None when the entry has neither a download path nor a hash.
    """
    if not isinstance(raw, dict):
        return None
    path = str(raw.get("download_path") or "").strip()
    artifacts = raw.get("artifacts") if isinstance(raw.get("artifacts"), dict) else {}
    checksum = str(
        raw.get("download_directory_checksum")
        or artifacts.get("aggregate_sha256")
        or ""
    )
    if not path and not checksum:
        return None
    if path.startswith("ollama:"):
        norm = path.lower()
    elif path:
        try:
            norm = str(Path(path).expanduser().resolve(strict=False))
        except (OSError, RuntimeError):
            norm = path
    else:
        norm = ""
    return (str(raw.get("backend") or "").strip(), norm, checksum)


def curated_overlay(item: ImportItem, discovered: dict | None = None) -> dict:
    """The curated dict an import writes for *item* (*discovered*: its discovered entry)."""
    raw: dict[str, Any] = {
        "name": item.name,
        "display_name": item.display_name or item.name,
        "backend": item.backend,
    }
    if item.ollama_tag:
        raw["backend_config"] = {"model_path": f"ollama:/{item.ollama_tag}"}
    if isinstance((discovered or {}).get("capabilities"), dict):
        raw["capabilities"] = copy.deepcopy(discovered["capabilities"])
    raw["served_model_id"] = item.served_model_id
    raw["roles"] = list(item.roles)
    raw["metadata"] = {"registry_layer": "curated"}
    return raw


def _curated_by(name: str) -> str:
    last = (
        EntryChange.objects.filter(entry_name=name, layer=Layer.CURATED)
        .order_by("-time", "-pk")
        .first()
    )
    return (last.user_name or "another tool") if last else "another tool"


def _merged_rows() -> dict[str, tuple[dict | None, dict | None, dict]]:
    """name -> (curated, discovered, merged) from the files."""
    registry = layers.load_registry(registry_dir())
    return {
        name: (e.curated, e.discovered, e.merged)
        for name, e in registry.entries.items()
    }


def refusals(
    items: list[ImportItem], entries: dict[str, tuple[dict | None, dict | None, dict]]
) -> dict[str, str]:
    """name -> reason for every item that must not be imported (see module docstring)."""
    refused: dict[str, str] = {}
    seen_identity: dict[tuple, str] = {}
    # Identities of entries that are not part of this import.
    names = {item.name for item in items}
    others: dict[tuple, str] = {}
    for name, (_cur, disc, merged) in entries.items():
        if name in names:
            continue
        ident = download_identity(merged if disc is not None else None)
        if ident:
            others.setdefault(ident, name)
    for item in items:
        current = entries.get(item.name)
        if item.ollama_tag:
            if current is not None:
                refused[item.name] = (
                    "already curated"
                    if current[0] is not None
                    else "name already in use"
                )
            continue
        if current is None:
            refused[item.name] = "not found in the registry"
            continue
        if current[0] is not None:
            refused[item.name] = f"already curated (by {_curated_by(item.name)})"
            continue
        ident = download_identity(current[2])
        if ident and ident in seen_identity:
            refused[item.name] = f"same download as {seen_identity[ident]}"
        elif ident and ident in others:
            refused[item.name] = f"same download as {others[ident]}"
        elif ident:
            seen_identity[ident] = item.name
    return refused


def plan_import(items: list[ImportItem]) -> ImportPlan:
    """Check *items* against the files now; nothing is written."""
    entries = _merged_rows()
    refused = refusals(items, entries)
    plan = ImportPlan()
    seen: set[str] = set()
    for item in items:
        if item.name in seen:
            plan.refused.append((item.name, "listed twice"))
            continue
        seen.add(item.name)
        if item.name in refused:
            plan.refused.append((item.name, refused[item.name]))
            continue
        current = entries.get(item.name)
        plan.entries.append(
            PlannedEntry(
                item=item,
                curated=curated_overlay(item, current[1] if current else None),
                identity=download_identity(current[2]) if current else None,
            )
        )
    return plan


def curated_file_diff(plan: ImportPlan) -> str:
    """Unified diff of the curated file if *plan* were applied (entries appended)."""
    layer = layers.read_layer(registry_dir() / layers.CURATED_FILE, layers.CURATED)
    before = layer.items
    after = list(before) + [copy.deepcopy(p.curated) for p in plan.entries]
    style = layer.style if layer.exists else layers.DEFAULT_STYLE
    old = (
        layers.dumps(before, style).decode("utf-8").splitlines() if layer.exists else []
    )
    new = layers.dumps(after, style).decode("utf-8").splitlines()
    import difflib

    return "\n".join(
        difflib.unified_diff(
            old,
            new,
            fromfile=f"a/{layers.CURATED_FILE}",
            tofile=f"b/{layers.CURATED_FILE}",
            lineterm="",
            n=2,
        )
    )


def apply_import(plan: ImportPlan, actor: Actor) -> ImportResult:
    """Append the planned entries to the curated file in one atomic write.

    The refusal rules are re-checked under the registry lock; entries refused there
    (typically "already curated (by bob)") are reported, the others are imported.
    One ``import`` audit row per entry. Raises ``layers.RegistryWriteError`` for a
    read-only registry (nothing written, the rows record the failure).
    """
    items = [p.item for p in plan.entries]
    overlays = {p.item.name: p.curated for p in plan.entries}
    if not items:
        return ImportResult(imported=[], refused=list(plan.refused))

    def check(registry: layers.Registry) -> dict[str, str]:
        entries = {
            name: (e.curated, e.discovered, e.merged)
            for name, e in registry.entries.items()
        }
        return refusals(items, entries)

    def mutator(name: str):
        return lambda _current: copy.deepcopy(overlays[name])

    batch = change_entries(
        actor,
        Action.IMPORT,
        layers.CURATED,
        {name: mutator(name) for name in overlays},
        check=check,
        messages={
            name: f"Imported {name} into the curated registry" for name in overlays
        },
        details={"count": len(overlays)},
    )
    return ImportResult(
        imported=batch.changed,
        refused=list(plan.refused) + list(batch.refused.items()),
        batch=batch,
    )


def entry_diff(planned: PlannedEntry) -> str:
    """The "new curated entry" diff of one planned entry."""
    return unified_diff(
        None, planned.curated, f"{layers.CURATED_FILE}:{planned.item.name}"
    )
