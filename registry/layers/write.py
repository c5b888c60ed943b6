"""Write-back: patch some entries of one layer under the lock, conflict-checked.

:func:`write_layer_entries` takes the cross-process lock, re-reads both layers,
refuses the write if an entry changed since the caller read it (fingerprints),
patches the raw items in place, writes atomically (temp file, fsync, rename,
timestamped backup), then re-materializes the snapshot. A crash at any point leaves
each file old or new.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .constants import CURATED, LAYER_FILES, SNAPSHOT_FILE
from .errors import ConflictError, FileChangedError, RegistryError
from .files import atomic_write, registry_lock
from .load import Registry, build_registry
from .merge import ABSENT_FINGERPRINT, copy_json
from .read import Layer, item_name, unwritable
from .style import DEFAULT_STYLE, dumps, snapshot_bytes

#: How often a write is redone on the new version of a layer another program
#: replaced while we wrote it, before :class:`FileChangedError` is raised.
REDO_ATTEMPTS = 5


@dataclass
class WriteResult:
    layer: str
    path: Path
    backup_path: Path | None
    before: dict[str, dict | None]
    after: dict[str, dict | None]
    fingerprints: dict[str, str] = field(default_factory=dict)
    snapshot_error: str | None = None
    changed: bool = True


def validate_updates(updates: Mapping[str, dict | None]) -> None:
    for name, raw in updates.items():
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise ValueError(f"Invalid entry name {name!r} in update")
        if raw is None:
            continue
        if not isinstance(raw, dict):
            raise ValueError(f"Update for {name!r} must be a dict or None")
        raw_name = raw.get("name")
        if not isinstance(raw_name, str) or raw_name.strip() != name:
            raise ValueError(f"Update for {name!r} has name {raw_name!r}")
        reason = unwritable(raw)
        if reason:
            raise ValueError(f"Update for {name!r}: {reason}")


def ordered_like(old: Any, new: Any) -> Any:
    """*new* with its dict keys in *old*'s order (new keys last), for minimal diffs."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return copy_json(new)
    ordered = {key: ordered_like(old[key], new[key]) for key in old if key in new}
    for key, value in new.items():
        if key not in ordered:
            ordered[key] = copy_json(value)
    return ordered


def _apply_updates(items: list[Any], updates: Mapping[str, dict | None]) -> list[Any]:
    """Patch raw items by name, keeping every other item (even invalid ones) as is.

    An updated name takes the position of its first item; later items with the same
    name are dropped, because with "last wins" they would otherwise hide the update.
    New names are appended.
    """
    result: list[Any] = []
    handled: set[str] = set()
    for item in items:
        name = item_name(item)
        if name is None or name not in updates:
            result.append(item)
            continue
        if name in handled:
            continue
        handled.add(name)
        if updates[name] is not None:
            result.append(ordered_like(item, updates[name]))
    for name, raw in updates.items():
        if name not in handled and raw is not None:
            result.append(copy_json(raw))
    return result


def _check_expected(
    registry: Registry, layer: str, expected: Mapping[str, str | None]
) -> None:
    for name, want in expected.items():
        want = ABSENT_FINGERPRINT if want is None else want
        entry = registry.entries.get(name)
        current = entry.fingerprint if entry else ABSENT_FINGERPRINT
        if current != want:
            raise ConflictError(
                name,
                layer,
                want,
                current,
                copy_json(entry.curated) if entry else None,
                copy_json(entry.discovered) if entry else None,
            )


def _materialize_snapshot(registry: Registry) -> str | None:
    """Rewrite the snapshot from *registry*; return an error message instead of raising.

    Like the original, a snapshot that cannot be written never fails the operation.
    """
    try:
        atomic_write(
            registry.dir / SNAPSHOT_FILE,
            snapshot_bytes([entry.merged for entry in registry.entries.values()]),
            keep_backups=0,
        )
    except (RegistryError, OSError) as exc:
        return str(exc)
    return None


def _write_layer(
    path: Path,
    target: Layer,
    updates: Mapping[str, dict | None],
    keep_backups: int,
) -> tuple[bool, Path | None]:
    """Patch *target*'s items and write them in its style: ``(changed, backup)``."""
    style = target.style if target.exists else DEFAULT_STYLE
    try:
        data = dumps(_apply_updates(target.items, updates), style)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Update cannot be stored as JSON: {exc}") from None
    changed = hashlib.sha256(data).hexdigest() != target.sha256
    if not target.exists and data == dumps([], style):
        changed = False  # removing from a missing layer must not create it
    if not changed:
        return False, None
    backup = atomic_write(
        path,
        data,
        keep_backups=keep_backups,
        expected_sha256=target.sha256 if target.exists else None,
    )
    return True, backup


def write_layer_entries(
    dir: str | os.PathLike[str],
    layer: str,
    updates: Mapping[str, dict | None],
    *,
    expected: Mapping[str, str | None] | None = None,
    keep_backups: int = 20,
    lock_timeout: float = 30.0,
) -> WriteResult:
    """Write some entries of one layer back to disk, safely.

    *updates* maps a name to its new raw dict for *layer* (None removes it). *expected*
    maps names to the fingerprint the caller read (:attr:`MergedEntry.fingerprint`, or
    None / :data:`ABSENT_FINGERPRINT` for "must not exist"); any mismatch raises
    :class:`ConflictError` and nothing is written. Under the registry lock: re-read both
    layers, check, patch the raw items in place, write atomically with a backup, then
    re-materialize the snapshot (its errors are returned, not raised). Removing a name
    also drops it from the snapshot, so it is not re-adopted on the next load.
    """
    if layer not in LAYER_FILES:
        raise ValueError(
            f"Unknown layer {layer!r} (expected 'curated' or 'discovered')"
        )
    validate_updates(updates)
    folder = Path(dir)
    path = folder / LAYER_FILES[layer]
    with registry_lock(folder, lock_timeout):
        for attempt in range(1, REDO_ATTEMPTS + 1):
            current = build_registry(folder)
            _check_expected(current, layer, expected or {})
            target = current.curated if layer == CURATED else current.discovered
            before = {name: copy_json(target.entries.get(name)) for name in updates}
            try:
                changed, backup = _write_layer(path, target, updates, keep_backups)
                break
            except FileChangedError:
                # Another program (without our lock) replaced the layer while we
                # wrote: redo the patch on its version (a real conflict on one of
                # *updates* is refused by the fingerprint check above).
                if attempt == REDO_ATTEMPTS:
                    raise
        removed = {name for name, raw in updates.items() if raw is None}
        fresh = build_registry(folder, drop_adopted=removed)
        snapshot_error = _materialize_snapshot(fresh)
    fresh_layer = fresh.curated if layer == CURATED else fresh.discovered
    return WriteResult(
        layer=layer,
        path=path,
        backup_path=backup,
        before=before,
        after={name: copy_json(fresh_layer.entries.get(name)) for name in updates},
        fingerprints={
            name: fresh.entries[name].fingerprint
            if name in fresh.entries
            else ABSENT_FINGERPRINT
            for name in updates
        },
        snapshot_error=snapshot_error,
        changed=changed,
    )
