"""Edit one registry entry: form values in, a minimal curated patch out.

The editor shows the *merged* entry (what every tool sees) and writes only to the
curated layer, and only the fields the operator changed. Three rules make that safe:

* **Only changed fields are touched.** The form's cleaned values are compared with the
  values the form was opened with (:func:`edit_form_initial`); unchanged fields are not
  written, so a save never invents defaults (the original wrote 0.7/0.9/40/512/4096).
  Key order of the curated entry is kept; new keys are appended.
* **Clearing wins.** The merge rule (curated non-null wins, ``null`` loses) means that
  removing a curated key, or writing ``null``, lets the discovered value show through.
  So a cleared field whose discovered layer still holds a value is written as the
  *empty value of its type* (``""``, ``[]``, ``false``, ``0``; ``""`` for numeric
  ``generation_defaults``, which the original reads back as unset). When the
  discovered layer has nothing there, the curated key is simply removed.
* **Capabilities are groups.** Turning a canonical flag off clears its whole synonym
  group (reference 1.3), including differently spelled keys from the discovered
  layer, otherwise the OR over synonyms would turn it back on.

:func:`save_edit` writes through :func:`registry.services.writeback.change_entry` with the
fingerprint the form was opened with: a change in between raises ``EntryConflict``,
a read-only file raises ``layers.RegistryWriteError``; either way nothing is written
and the audit row records the failure.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from .. import layers, normalize
from ..audit import Actor
from ..choices import Action
from ..diffing import diff_entries, summarize
from ..models import ModelEntry
from .writeback import (
    ChangeResult,
    EntryConflict,
    change_entry,
    current_layers,
    explain_conflict,
)

#: Roles the original GUI offered (reference original-gui 1.3); roles in use are added.
STANDARD_ROLES = (
    "caption",
    "keywords",
    "description",
    "narration",
    "object_detection",
    "vision_general",
    "chat",
    "code",
    "reasoning",
    "ocr",
    "embedding",
)
CAPABILITY_FLAGS = normalize.CANONICAL_FLAGS  # text, vision, embedding, audio, ...
GEN_INT_FIELDS = ("max_tokens", "min_tokens", "top_k", "context_window")
GEN_FLOAT_FIELDS = ("temperature", "top_p", "frequency_penalty", "presence_penalty")
GEN_FIELDS = GEN_INT_FIELDS + GEN_FLOAT_FIELDS

#: form field -> path in the raw entry (scalars and lists; metadata and capabilities
#: are handled separately).
FIELD_PATHS: dict[str, tuple[str, ...]] = {
    "display_name": ("display_name",),
    "backend": ("backend",),
    "served_model_id": ("served_model_id",),
    "roles": ("roles",),
    "aliases": ("model_aliases",),
    "deprecated": ("deprecated",),
    "port": ("backend_config", "port"),
    "host": ("backend_config", "host"),
    "base_url": ("backend_config", "base_url"),
    "model_path": ("backend_config", "model_path"),
    "extra_args": ("backend_config", "extra_args"),
    **{f"gen_{key}": ("generation_defaults", key) for key in GEN_FIELDS},
    "gen_stop_sequences": ("generation_defaults", "stop_sequences"),
}
#: What a cleared field is written as when the discovered layer would otherwise show
#: through (see the module docstring). Others use the empty value of the stored type.
CLEARED_VALUE: dict[tuple[str, ...], Any] = {
    ("served_model_id",): "",
    ("backend_config", "port"): 0,  # the original: 0 = "use the backend default"
    ("backend_config", "host"): "",
    ("backend_config", "base_url"): "",
    ("backend_config", "model_path"): "",
    **{("generation_defaults", key): "" for key in GEN_FIELDS},
}
REMOVE = object()


# --------------------------------------------------------------------------------------
# Small JSON helpers
# --------------------------------------------------------------------------------------


def _dig(raw: Any, path: tuple[str, ...]) -> Any:
    value = raw
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _number(value: Any, integer: bool = False) -> int | float | None:
    """A stored number as the form shows it (as-is, never defaulted); else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text) if text.lstrip("-").isdigit() else float(text)
        except ValueError:
            return None
    if isinstance(value, float) and integer and value.is_integer():
        return int(value)
    return value if isinstance(value, int | float) else None


def _lines(value: Any) -> str:
    if not isinstance(value, list):
        value = normalize.aliases(value)
    return "\n".join(str(item) for item in value)


def same_value(old: Any, new: Any) -> bool:
    """JSON equality, but ``1 == 1.0`` for numbers (the form cannot tell them apart)."""
    numeric = (int, float)
    if (
        isinstance(old, numeric)
        and isinstance(new, numeric)
        and not isinstance(old, bool)
        and not isinstance(new, bool)
    ):
        return old == new
    return type(old) is type(new) and old == new


def empty_like(value: Any) -> Any:
    """The empty value of *value*'s type, which the merge treats as set."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return 0
    if isinstance(value, str):
        return ""
    if isinstance(value, list):
        return []
    if isinstance(value, dict):
        # Dicts merge key by key, so every key has to be blanked.
        return {
            key: empty_like(item) for key, item in value.items() if item is not None
        }
    return REMOVE


def _set_path(raw: dict, path: tuple[str, ...], value: Any) -> None:
    target = raw
    for key in path[:-1]:
        if not isinstance(target.get(key), dict):
            target[key] = {}
        target = target[key]
    if value is REMOVE:
        target.pop(path[-1], None)
    else:
        target[path[-1]] = value


def _clear_path(raw: dict, discovered: dict | None, path: tuple[str, ...]) -> None:
    """Clear *path* so that the merged entry really shows it unset."""
    shown_through = _dig(discovered, path)
    if shown_through is None:
        parent = raw if len(path) == 1 else _dig(raw, path[:-1])
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
        return
    value = CLEARED_VALUE.get(path, REMOVE)
    if value is REMOVE:
        value = empty_like(shown_through)
    _set_path(raw, path, value)


# --------------------------------------------------------------------------------------
# Form initial values
# --------------------------------------------------------------------------------------


def edit_form_initial(entry: ModelEntry) -> dict[str, Any]:
    """The form's starting values from the merged entry (stored values as they are).

    Unset numeric fields are ``None`` (a blank input), never a default; out-of-range
    stored values are shown unchanged.
    """
    merged = entry.merged or {}
    cfg = (
        merged.get("backend_config")
        if isinstance(merged.get("backend_config"), dict)
        else {}
    )
    gen = (
        merged.get("generation_defaults")
        if isinstance(merged.get("generation_defaults"), dict)
        else {}
    )
    metadata = (
        merged.get("metadata") if isinstance(merged.get("metadata"), dict) else {}
    )
    flags = normalize.canonical_flags(merged.get("capabilities"))
    initial: dict[str, Any] = {
        "display_name": str(merged.get("display_name") or "").strip(),
        "backend": str(merged.get("backend") or "").strip(),
        "served_model_id": normalize.served_id(merged.get("served_model_id")),
        "roles": normalize.roles(merged.get("roles")),
        "roles_extra": "",
        "aliases": _lines(merged.get("model_aliases") or []),
        "deprecated": normalize.to_bool(merged.get("deprecated")),
        "port": _number(cfg.get("port"), integer=True),
        "host": normalize.clean_str(cfg.get("host")),
        "base_url": normalize.clean_str(cfg.get("base_url")),
        "model_path": normalize.clean_str(cfg.get("model_path")),
        "extra_args": _lines(cfg.get("extra_args") or []),
        "gen_stop_sequences": _lines(gen.get("stop_sequences") or []),
        "metadata": json.dumps(metadata, indent=2, ensure_ascii=False),
        "fingerprint": entry.fingerprint,
    }
    for key in GEN_INT_FIELDS:
        initial[f"gen_{key}"] = _number(gen.get(key), integer=True)
    for key in GEN_FLOAT_FIELDS:
        initial[f"gen_{key}"] = _number(gen.get(key))
    for flag in CAPABILITY_FLAGS:
        initial[f"cap_{flag}"] = flags[flag]
    return initial


def field_layer(entry: ModelEntry, field: str) -> str:
    """Which layer a form field's current value comes from.

    ``curated``, ``discovered``, ``both`` (curated overrides a discovered value) or
    ``unset``. Uses ``entry.field_sources`` for top-level keys and looks into the raw
    layers for nested ones (``backend_config.port``...).
    """
    if field.startswith("cap_"):
        path: tuple[str, ...] = ("capabilities",)
    elif field == "metadata":
        path = ("metadata",)
    elif field in ("roles_extra",):
        path = ("roles",)
    else:
        path = FIELD_PATHS.get(field, (field,))
    if len(path) == 1:
        source = (entry.field_sources or {}).get(path[0])
        if source:
            return source
    in_cur = _dig(entry.curated_raw, path) is not None
    in_disc = _dig(entry.discovered_raw, path) is not None
    if in_cur and in_disc:
        return "both"
    if in_cur:
        return layers.CURATED
    if in_disc:
        return layers.DISCOVERED
    return "unset"


# --------------------------------------------------------------------------------------
# Building the new curated entry
# --------------------------------------------------------------------------------------


def _ordered_roles(old: list[str], chosen: list[str]) -> list[str]:
    """Kept roles in their stored order, then new ones in the order given."""
    chosen_set = list(dict.fromkeys(chosen))
    kept = [role for role in old if role in chosen_set]
    return kept + [role for role in chosen_set if role not in kept]


def _form_value(field: str, cleaned: dict, initial: dict) -> Any:
    """The JSON value a form field stands for (None = cleared)."""
    value = cleaned.get(field)
    if field == "roles":
        extra = normalize.roles(
            [
                part
                for line in (cleaned.get("roles_extra") or "").splitlines()
                for part in line.split(",")
            ]
        )
        return _ordered_roles(initial.get("roles") or [], list(value or []) + extra)
    if field in ("aliases", "extra_args", "gen_stop_sequences"):
        lines = [line.strip() for line in (value or "").splitlines()]
        return [line for line in lines if line]
    if field == "deprecated":
        return bool(value)
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _initial_value(field: str, initial: dict) -> Any:
    if field in ("aliases", "extra_args", "gen_stop_sequences"):
        return _form_value(field, {field: initial.get(field)}, initial)
    if field == "roles":
        return list(initial.get("roles") or [])
    value = initial.get(field)
    if isinstance(value, str):
        return value.strip() or None
    return value


def _patch_capabilities(
    curated: dict, discovered: dict | None, changes: dict[str, bool]
) -> None:
    """Turn canonical flags on/off in the curated capability map (synonym-group rule).

    Only the touched groups are written. A curated map that was a full normalized map
    (the original's format) is kept normalized.
    """
    current = curated.get("capabilities")
    base = dict(current) if isinstance(current, dict) else {}
    was_normalized = bool(base) and base == normalize.normalize_capabilities(base)
    disc_caps = _dig(discovered, ("capabilities",))
    disc_keys = (
        [k for k in disc_caps if isinstance(k, str)]
        if isinstance(disc_caps, dict)
        else []
    )
    blank: dict[str, bool] = {}
    for flag, on in changes.items():
        group = normalize.SYNONYM_GROUPS[flag]
        if on:
            base[flag] = True
            continue
        for alias in group:
            base[alias] = False
        # Differently spelled discovered keys ("VL", " Vision ") would win the OR.
        for key in disc_keys:
            if key.strip().lower() in group and key not in group:
                blank[key] = False
    if was_normalized:
        base = normalize.normalize_capabilities(base)
    base.update(blank)
    curated["capabilities"] = base


def _patch_dict(target: dict, discovered: Any, old: dict, new: dict) -> None:
    """Apply the key-level change *old* -> *new* to *target* with the clearing rule."""
    disc = discovered if isinstance(discovered, dict) else {}
    for key, value in new.items():
        before = old.get(key, REMOVE)
        if before is not REMOVE and same_value(before, value):
            continue
        if value is None:
            if key in old:
                _clear_key(target, disc, key)
            continue
        if isinstance(value, dict) and isinstance(before, dict):
            if not isinstance(target.get(key), dict):
                target[key] = {}
            _patch_dict(target[key], disc.get(key), before, value)
        else:
            target[key] = copy.deepcopy(value)
    for key in old:
        if key not in new:
            _clear_key(target, disc, key)


def _clear_key(target: dict, disc: dict, key: str) -> None:
    shown_through = disc.get(key)
    if shown_through is None:
        target.pop(key, None)
        return
    value = empty_like(shown_through)
    if value is REMOVE:
        target.pop(key, None)
    else:
        target[key] = value


def build_curated(
    current_curated: dict | None,
    cleaned_data: dict,
    *,
    initial: dict,
    name: str,
    merged: dict | None = None,
    discovered: dict | None = None,
) -> dict:
    """The new curated raw dict: *current_curated* plus the fields that changed.

    *initial* is what the form was opened with (:func:`edit_form_initial`); a field
    whose cleaned value equals its initial value is not touched. Cleared fields follow
    the clearing rule (module docstring). Returns a new dict; the input is not changed.
    """
    merged = merged or {}
    curated = copy.deepcopy(current_curated) if current_curated else {"name": name}
    for field, path in FIELD_PATHS.items():
        if field not in cleaned_data:
            continue
        new = _form_value(field, cleaned_data, initial)
        old = _initial_value(field, initial)
        if same_value(old, new) or (old is None and new is None):
            continue
        if new is None:
            _clear_path(curated, discovered, path)
        else:
            _set_path(curated, path, new)
    cap_changes = {
        flag: bool(cleaned_data.get(f"cap_{flag}"))
        for flag in CAPABILITY_FLAGS
        if f"cap_{flag}" in cleaned_data
        and bool(cleaned_data.get(f"cap_{flag}")) != bool(initial.get(f"cap_{flag}"))
    }
    # thinking and reasoning share one group: one flag stands for both.
    if cap_changes:
        _patch_capabilities(curated, discovered, cap_changes)
    if "metadata" in cleaned_data:
        old_meta = json.loads(initial.get("metadata") or "{}")
        new_meta = cleaned_data["metadata"]
        if isinstance(new_meta, str):
            new_meta = json.loads(new_meta or "{}")
        if not same_value(old_meta, new_meta):
            target = curated.get("metadata")
            target = copy.deepcopy(target) if isinstance(target, dict) else {}
            _patch_dict(target, _dig(discovered, ("metadata",)), old_meta, new_meta)
            curated["metadata"] = target
    if not current_curated and len(curated) > 1:
        # A new overlay: mark it curated, as the original's save logic expects (§2.5).
        meta = curated.setdefault("metadata", {})
        if isinstance(meta, dict):
            meta.setdefault("registry_layer", "curated")
    return curated


# --------------------------------------------------------------------------------------
# Preview and save
# --------------------------------------------------------------------------------------


@dataclass
class Preview:
    """What Confirm would write: key-level diff, unified text, the new curated dict."""

    diff: list[dict]
    unified_text: str
    new_curated: dict | None
    before: dict | None
    digest: str

    @property
    def changed(self) -> bool:
        return bool(self.diff)

    @property
    def summary(self) -> str:
        return summarize(self.diff)

    @property
    def rows(self) -> list[dict]:
        """The key-level diff with values as compact JSON text (for display)."""
        return diff_rows(self.diff)

    @property
    def unified_lines(self) -> list[tuple[str, str]]:
        """(css class, line) pairs for the template: add/del/hunk/context."""
        out = []
        for line in self.unified_text.splitlines():
            if line.startswith(("+++", "---")):
                css = "diff-file"
            elif line.startswith("@@"):
                css = "diff-hunk"
            elif line.startswith("+"):
                css = "diff-add"
            elif line.startswith("-"):
                css = "diff-del"
            else:
                css = "diff-ctx"
            out.append((css, line))
        return out


def diff_rows(changes: list[dict]) -> list[dict]:
    """Key-level changes with before/after rendered as JSON text."""

    def text(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    return [
        {
            "path": c["path"],
            "op": c["op"],
            "before": text(c.get("before")),
            "after": text(c.get("after")),
        }
        for c in changes
    ]


def unified_diff(
    before: Any, after: Any, label: str = "entry", context: int = 3
) -> str:
    """A git-style unified diff of two JSON values (``indent=2``, key order kept)."""
    old = (
        json.dumps(before, indent=2, ensure_ascii=False).splitlines()
        if before is not None
        else []
    )
    new = (
        json.dumps(after, indent=2, ensure_ascii=False).splitlines()
        if after is not None
        else []
    )
    return "\n".join(
        difflib.unified_diff(
            old, new, fromfile=f"a/{label}", tofile=f"b/{label}", lineterm="", n=context
        )
    )


def digest(value: Any) -> str:
    """A short stable hash of a JSON value (ties a Confirm to what was previewed)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def preview_edit(
    entry: ModelEntry, cleaned_data: dict, initial: dict | None = None
) -> Preview:
    """Compute the curated entry Confirm would write (nothing is written)."""
    initial = initial if initial is not None else edit_form_initial(entry)
    before = entry.curated_raw
    new = build_curated(
        before,
        cleaned_data,
        initial=initial,
        name=entry.name,
        merged=entry.merged,
        discovered=entry.discovered_raw,
    )
    # The file keeps the old key order (layers.ordered_like); show the diff the same way.
    new = layers.ordered_like(before, new) if before else new
    if before is None and new == {"name": entry.name}:
        new = None  # nothing changed: no overlay would be created
    return preview_of(entry.name, before, new)


def preview_of(name: str, before: dict | None, new: dict | None) -> Preview:
    """The preview of replacing curated entry ``name``'s ``before`` with ``new``."""
    label = f"{layers.CURATED_FILE}:{name}"
    changes = diff_entries(before, new)
    return Preview(
        diff=changes,
        unified_text=unified_diff(before, new, label) if changes else "",
        new_curated=new,
        before=before,
        digest=digest(new),
    )


def save_edit(
    entry: ModelEntry,
    actor: Actor,
    cleaned_data: dict,
    expected_fingerprint: str,
    initial: dict | None = None,
) -> ChangeResult:
    """Write the edit to the curated layer, file first, with conflict detection.

    Raises ``writeback.EntryConflict`` when the entry changed since the form was opened
    (its fingerprint), ``layers.RegistryWriteError`` for a read-only registry. Exactly
    one audit row (``edit``) is written, with the diff in ``details["diff"]``.
    """
    initial = initial if initial is not None else edit_form_initial(entry)
    merged, discovered = entry.merged, entry.discovered_raw

    def mutate(current: dict | None) -> dict | None:
        new = build_curated(
            current,
            cleaned_data,
            initial=initial,
            name=entry.name,
            merged=merged,
            discovered=discovered,
        )
        return None if current is None and new == {"name": entry.name} else new

    preview = preview_edit(entry, cleaned_data, initial)
    return change_entry(
        actor,
        Action.EDIT,
        entry.name,
        layers.CURATED,
        mutate,
        expected_fingerprint=expected_fingerprint,
        message=f"Saved {entry.name}: {preview.summary}",
        details={"fingerprint": expected_fingerprint},
    )


def check_conflict(
    entry: ModelEntry, fingerprint: str, actor: Actor | None = None
) -> EntryConflict | None:
    """An ``EntryConflict`` when the files or the mirror moved past *fingerprint* (the
    version the form was opened with); None when both still hold it. Another tool's
    change is synced first, by *actor* (``current_layers``).
    """
    current = current_layers(entry.name, actor)
    current_fp = current.fingerprint if current else layers.ABSENT_FINGERPRINT
    if current_fp == fingerprint and entry.fingerprint == fingerprint:
        return None
    exc = layers.ConflictError(
        entry.name,
        layers.CURATED,
        fingerprint,
        current_fp,
        current.curated if current else None,
        current.discovered if current else None,
    )
    return explain_conflict(entry.name, layers.CURATED, exc)
