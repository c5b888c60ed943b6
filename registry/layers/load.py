"""Load a registry folder: both layers, the snapshot's adoptions, the legacy split."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .constants import (
    CURATED,
    CURATED_FILE,
    DISCOVERED,
    DISCOVERED_FILE,
    LEGACY_BACKUP_FILE,
    SNAPSHOT,
    SNAPSHOT_FILE,
)
from .errors import LayerParseError, RegistryNotFound
from .files import atomic_write, registry_lock, write_error
from .merge import MergedEntry, copy_json
from .read import EntryProblem, Layer, item_name, load_legacy_file, read_layer
from .style import DEFAULT_STYLE, dumps, gc_paused


@dataclass
class Registry:
    dir: Path
    curated: Layer
    discovered: Layer
    snapshot: Layer | None
    entries: dict[str, MergedEntry]
    problems: list[EntryProblem]
    migrated: bool = False


def _known_names(layer: Layer) -> set[str]:
    # Includes names of skipped (invalid) items, so a broken layer entry is reported
    # rather than silently replaced by a stale snapshot copy.
    return {name for name in map(item_name, layer.items) if name}


def _merge_layers(
    curated: Layer,
    discovered: Layer,
    snapshot: Layer | None,
    drop_adopted: set[str] = frozenset(),  # type: ignore[assignment]
) -> dict[str, MergedEntry]:
    """Discovered order, then snapshot adoptions, then curated-only names."""
    base: dict[str, tuple[dict, bool]] = {
        name: (raw, False) for name, raw in discovered.entries.items()
    }
    if snapshot is not None:
        known = _known_names(curated) | _known_names(discovered)
        for name, raw in snapshot.entries.items():
            if name not in known and name not in drop_adopted:
                base[name] = (raw, True)
    entries: dict[str, MergedEntry] = {}
    for name, (raw, adopted) in base.items():
        entries[name] = MergedEntry(name, curated.entries.get(name), raw, adopted)
    for name, raw in curated.entries.items():
        if name not in entries:
            entries[name] = MergedEntry(name, raw, None, False)
    return entries


def _read_snapshot(folder: Path) -> tuple[Layer | None, list[EntryProblem]]:
    """The snapshot, or None when missing or unreadable (the original ignores it)."""
    try:
        layer = read_layer(folder / SNAPSHOT_FILE, SNAPSHOT)
    except LayerParseError as exc:
        return None, [EntryProblem(SNAPSHOT_FILE, -1, None, f"ignored: {exc}")]
    return (layer if layer.exists else None), []


def build_registry(
    folder: Path,
    drop_adopted: set[str] = frozenset(),  # type: ignore[assignment]
) -> Registry:
    curated = read_layer(folder / CURATED_FILE, CURATED)
    discovered = read_layer(folder / DISCOVERED_FILE, DISCOVERED)
    snapshot, snapshot_problems = _read_snapshot(folder)
    return Registry(
        dir=folder,
        curated=curated,
        discovered=discovered,
        snapshot=snapshot,
        entries=_merge_layers(curated, discovered, snapshot, drop_adopted),
        problems=curated.problems + discovered.problems + snapshot_problems,
    )


def _classify_legacy(item: Any) -> str:
    """The original's split rule; non-objects go to discovered so nothing is lost."""
    if not isinstance(item, dict):
        return DISCOVERED
    meta = item.get("metadata")
    from_download = isinstance(meta, dict) and meta.get("created_from_download")
    if from_download or item.get("backend") in {"ollama", "unassigned"}:
        return DISCOVERED
    return CURATED


def _migrate_legacy(folder: Path) -> bool:
    """Split a legacy single-file registry into the two layers (reference §2.2 step 4).

    The layers are written before the snapshot is renamed (the original renames first):
    a crash in between then leaves a loadable registry instead of only a backup file.
    """
    curated_path = folder / CURATED_FILE
    discovered_path = folder / DISCOVERED_FILE
    snapshot_path = folder / SNAPSHOT_FILE
    with registry_lock(folder):
        if curated_path.exists() or discovered_path.exists():
            return False  # another process migrated while we waited for the lock
        if not snapshot_path.exists():
            return False
        legacy = load_legacy_file(snapshot_path)
        split: dict[str, list[Any]] = {CURATED: [], DISCOVERED: []}
        for item in legacy.items:
            split[_classify_legacy(item)].append(item)
        atomic_write(curated_path, dumps(split[CURATED], legacy.style), keep_backups=0)
        atomic_write(
            discovered_path, dumps(split[DISCOVERED], legacy.style), keep_backups=0
        )
        backup = folder / LEGACY_BACKUP_FILE
        if not backup.exists():
            try:
                os.rename(snapshot_path, backup)
            except OSError as exc:
                raise write_error(snapshot_path, exc) from exc
        return True


def load_registry(
    dir: str | os.PathLike[str], *, migrate_legacy: bool = True
) -> Registry:
    """Load and merge a registry folder (reference §2.2), never writing the snapshot.

    With only ``model_registry.json`` present the legacy file is split into the two
    layers (``migrate_legacy=True``, under the write lock) or, without migration, read as
    if every entry had been adopted from the snapshot. Raises :class:`RegistryNotFound`
    when the folder is missing or holds no registry file, :class:`LayerParseError` for a
    broken layer file.
    """
    folder = Path(dir)
    if not folder.is_dir():
        raise RegistryNotFound(folder, f"Registry folder not found: {folder}")
    migrated = False
    has_layer = (folder / CURATED_FILE).exists() or (folder / DISCOVERED_FILE).exists()
    if not has_layer and migrate_legacy and (folder / SNAPSHOT_FILE).exists():
        migrated = _migrate_legacy(folder)
    with gc_paused():
        registry = build_registry(folder)
    if not (registry.curated.exists or registry.discovered.exists or registry.snapshot):
        raise RegistryNotFound(folder)
    registry.migrated = migrated
    return registry


def export_merged(registry: Registry) -> list[dict]:
    """The merged raw dicts in registry order: what the original writes as the snapshot."""
    return [copy_json(entry.merged) for entry in registry.entries.values()]


def layer_signatures(dir: str | os.PathLike[str]) -> dict[str, tuple[int, int] | None]:
    """Cheap change detection: ``(mtime_ns, size)`` of each file, None when missing."""
    folder = Path(dir)
    files = {
        CURATED: CURATED_FILE,
        DISCOVERED: DISCOVERED_FILE,
        SNAPSHOT: SNAPSHOT_FILE,
    }
    result: dict[str, tuple[int, int] | None] = {}
    for key, file_name in files.items():
        try:
            info = os.stat(folder / file_name)
        except OSError:
            result[key] = None
        else:
            result[key] = (info.st_mtime_ns, info.st_size)
    return result


def snapshot_matches(registry: Registry) -> bool:
    """True when the snapshot holds exactly the merged entries (what a write would put).

    Compares values and top-level key order (nested key order is checked per entry
    when :func:`splice_entry_write` touches it).
    """
    snap = registry.snapshot
    if snap is None or snap.style != DEFAULT_STYLE:
        return False
    merged = [entry.merged for entry in registry.entries.values()]
    if len(snap.items) != len(merged) or snap.items != merged:
        return False
    return all(list(a) == list(b) for a, b in zip(snap.items, merged, strict=True))
