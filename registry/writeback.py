"""File-first changes to registry entries, shared by every feature that writes.

``change_entry`` is the one write path: it computes the new raw dict for one
layer from the current one, writes it through ``layers.write_layer_entries``
(registry lock, conflict check, atomic write, backup), re-syncs the mirror and
writes exactly one audit row, all in one call.

Layer rule (the original's, reference 2.5): curated content goes to the curated
layer; lock state and other dynamic fields (``version_lock``, ``artifacts``,
``download_*``) go to the discovered layer, so the original's tools read them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from . import layers
from .audit import Actor, audited
from .diffing import diff_entries, summarize
from .models import ActionLog, EntryChange, Job, ModelEntry
from .sync import SyncResult, registry_dir, sync_registry

DYNAMIC_KEYS = frozenset(
    {
        "download_format",
        "download_location",
        "download_path",
        "download_size_bytes",
        "download_files",
        "download_directory_checksum",
        "downloaded_at",
        "last_accessed",
        "artifacts",
        "performance",
        "probes",
        "version_lock",
    }
)

Mutator = Callable[[dict | None], dict | None]


class EntryNotFound(layers.RegistryError):
    def __init__(self, name: str):
        super().__init__(f"Model '{name}' not found in registry")
        self.name = name


@dataclass
class EntryConflict(layers.RegistryError):
    """The entry changed on disk after the caller read it; nothing was written."""

    name: str
    layer: str
    current_curated: dict | None
    current_discovered: dict | None
    # The other change, as far as we can tell: keys that differ between the version
    # the caller started from (the mirror, when it still matches) and the file now.
    other_change: list[dict] = field(default_factory=list)
    changed_by: str = ""
    changed_at: Any = None
    fingerprint: str = ""

    def __str__(self) -> str:
        who = f" by {self.changed_by}" if self.changed_by else ""
        when = f" at {self.changed_at:%H:%M}" if self.changed_at else ""
        what = summarize(self.other_change) if self.other_change else "see the current version"
        return f"'{self.name}' was changed{who}{when} since you opened it ({what}). Nothing was written."


@dataclass
class ChangeResult:
    entry: ModelEntry | None
    write: layers.WriteResult
    action: ActionLog
    sync: SyncResult
    changes: list[dict]

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def current_layers(name: str) -> layers.MergedEntry | None:
    """The entry as the files hold it right now (not the mirror)."""
    registry = layers.load_registry(registry_dir())
    return registry.entries.get(name)


def change_entry(
    actor: Actor,
    action: str,
    name: str,
    layer: str,
    mutate: Mutator,
    *,
    expected_fingerprint: str | None = None,
    require_exists: bool = True,
    message: str = "",
    details: dict | None = None,
    job: Job | None = None,
    retries: int = 2,
) -> ChangeResult:
    """Change one entry's raw dict in one layer, file first.

    ``mutate`` receives a deep copy of the entry's current raw dict in ``layer``
    (None when the layer has no copy) and returns the new dict (or None to remove
    it from that layer). With ``expected_fingerprint`` a change on disk since the
    caller read the entry raises :class:`EntryConflict`; without it the mutation is
    simply re-applied to the newest version (used by verify/lock, whose change is
    re-applicable). Raises ``layers.RegistryWriteError`` for read-only files.
    """
    entry = ModelEntry.objects.filter(name=name).first()
    with audited(actor, action, entry=entry, entry_name=name, job=job, details=details) as audit:
        attempt = 0
        while True:
            current = current_layers(name)
            if current is None and require_exists:
                raise EntryNotFound(name)
            before = copy.deepcopy(_layer_raw(current, layer))
            after = mutate(copy.deepcopy(before))
            expected = expected_fingerprint
            if expected is None:
                expected = current.fingerprint if current else layers.ABSENT_FINGERPRINT
            try:
                write = layers.write_layer_entries(
                    registry_dir(),
                    layer,
                    {name: after},
                    expected={name: expected},
                    keep_backups=settings.IMAGEWORKS_BACKUPS_KEEP,
                )
            except layers.ConflictError as exc:
                if expected_fingerprint is None and attempt < retries:
                    attempt += 1
                    continue
                raise _conflict(name, layer, exc) from None
            break
        changes = diff_entries(before, write.after.get(name))
        sync = sync_registry(actor, explicit=False, action=audit.row)
        audit.row.entry = ModelEntry.objects.filter(name=name).first()
        audit.after = write.after.get(name)
        audit.details = {
            **audit.details,
            "layer": layer,
            "file": str(write.path),
            "backup": str(write.backup_path) if write.backup_path else None,
            "diff": changes,
        }
        if write.snapshot_error:
            audit.details["snapshot_error"] = write.snapshot_error
        audit.row.before = before
        audit.row.save(update_fields=["before", "entry"])
        audit.message = message or (f"{action}: {summarize(changes)}" if changes else f"{action}: no change")
    return ChangeResult(
        entry=audit.row.entry, write=write, action=audit.row, sync=sync, changes=changes
    )


def _layer_raw(current: layers.MergedEntry | None, layer: str) -> dict | None:
    if current is None:
        return None
    return current.curated if layer == layers.CURATED else current.discovered


def _conflict(name: str, layer: str, exc: layers.ConflictError) -> EntryConflict:
    row = ModelEntry.objects.filter(name=name).first()
    other: list[dict] = []
    if row is not None and row.fingerprint == exc.expected_fingerprint:
        # The mirror still shows the caller's version: diff it against the file.
        other = diff_entries(row.curated_raw, exc.current_curated) + diff_entries(
            row.discovered_raw, exc.current_discovered
        )
    last = EntryChange.objects.filter(entry_name=name).order_by("-time", "-pk").first()
    if not other and last is not None:
        other = last.changes
    return EntryConflict(
        name=name,
        layer=layer,
        current_curated=exc.current_curated,
        current_discovered=exc.current_discovered,
        other_change=other,
        changed_by=(last.user_name or "another tool") if last else "another tool",
        changed_at=last.time if last else None,
        fingerprint=exc.current_fingerprint,
    )


def dynamic_layer(key: str) -> str:
    """Which layer a top-level key belongs in (the original's rule)."""
    return layers.DISCOVERED if key in DYNAMIC_KEYS else layers.CURATED
