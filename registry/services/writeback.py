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
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from .. import layers
from ..audit import Actor, AuditHandle, audited
from ..diffing import diff_entries, summarize
from ..models import ActionLog, EntryChange, Job, ModelEntry
from .sync import (
    SyncResult,
    files_unchanged,
    mirror_row,
    mirror_state,
    record_entry_write,
    registry_dir,
    sync_registry,
)

# The original's dynamic keys (reference 2.5): they live in the discovered layer.
DYNAMIC_KEYS = layers.DYNAMIC_KEYS

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
        what = (
            summarize(self.other_change)
            if self.other_change
            else "see the current version"
        )
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


def read_current(name: str) -> layers.MergedEntry | None:
    """The entry as a full read of the files gives it (None when they have no such
    entry). Raises for a broken or missing registry."""
    registry = layers.load_registry(registry_dir())
    return registry.entries.get(name)


#: How long a read waits for a writer holding the registry lock before reading the
#: files without it (they are whole either way: every write is a rename).
CURRENT_LOCK_WAIT = 5.0


def current_layers(name: str, actor: Actor | None = None) -> layers.MergedEntry | None:
    """The entry as the files hold it right now (None when they have no such entry).

    Verify, lock and the edit conflict check start here. A full read of a
    10,000-entry registry parses ~230 MB: 2-3 s of CPU that every page shares on a
    small host, once per action. Instead, under the registry write lock, another
    tool's change since the last sync is synced first (an implicit sync by *actor*,
    with its own history, which the next page load would run anyway); then, when the
    three files are exactly as that sync left them (path, mtime, size), the mirror
    row is their content. A file the sync could not read, or a problem reported for
    *name*, falls back to reading the files, which raises for a broken file.
    """
    folder = registry_dir()
    try:
        with layers.registry_lock(folder, CURRENT_LOCK_WAIT):
            _catch_up(actor or Actor.system())
            row = mirror_row(name)
    except (layers.LockTimeout, layers.RegistryWriteError):
        row = None  # a busy writer, or a read-only folder: the files can still be read
    return read_current(name) if row is None else _mirrored(row)


def _mirrored(row: ModelEntry) -> layers.MergedEntry:
    """A mirror row as the ``MergedEntry`` a read of the files it mirrors gives."""
    return layers.MergedEntry(
        name=row.name,
        merged=row.merged,
        curated=row.curated_raw,
        discovered=row.discovered_raw,
        from_snapshot=False,
        sources=row.field_sources,
        fingerprint=row.fingerprint,
    )


def _starting_point(
    name: str, fresh_files: bool, expected: str | None, actor: Actor
) -> layers.MergedEntry | None:
    """The version a change starts from: :func:`current_layers` (the mirror row when
    it describes the files, after a catch-up sync), else the files.

    The catch-up also lets the write take the splice path instead of rewriting whole
    files. Safe either way: the row is used only when its fingerprint is the one the
    write will be checked against (the caller's, or its own), so content derived from
    a stale row can never be written: the write compares that fingerprint with the
    files under the registry lock, and a mismatch retries from the files.
    """
    if not fresh_files:
        return read_current(name)
    current = current_layers(name, actor)
    if current is not None and expected is not None and current.fingerprint != expected:
        return read_current(name)
    return current


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
    with audited(
        actor, action, entry=entry, entry_name=name, job=job, details=details
    ) as audit:
        attempt = 0
        while True:
            current = _starting_point(
                name,
                fresh_files=attempt == 0,
                expected=expected_fingerprint,
                actor=actor,
            )
            if current is None and require_exists:
                raise EntryNotFound(name)
            before = copy.deepcopy(_layer_raw(current, layer))
            after = mutate(copy.deepcopy(before))
            expected = expected_fingerprint
            if expected is None:
                expected = current.fingerprint if current else layers.ABSENT_FINGERPRINT
            try:
                write, sync = _write_and_sync(
                    actor, name, layer, after, expected, audit.row
                )
            except layers.ConflictError as exc:
                if expected_fingerprint is None and attempt < retries:
                    attempt += 1
                    continue
                raise explain_conflict(name, layer, exc) from None
            break
        changes = _describe_write(audit, name, layer, before, write)
        audit.message = message or (
            f"{action}: {summarize(changes)}" if changes else f"{action}: no change"
        )
    return ChangeResult(
        entry=audit.row.entry, write=write, action=audit.row, sync=sync, changes=changes
    )


def _describe_write(
    audit: AuditHandle,
    name: str,
    layer: str,
    before: dict | None,
    write: layers.WriteResult,
    **extra_details,
) -> list[dict]:
    """Fill one entry's audit row from a write: before/after, file, backup, diff.

    Returns the key-level diff.
    """
    changes = diff_entries(before, write.after.get(name))
    audit.row.entry = ModelEntry.objects.filter(name=name).first()
    audit.row.before = before
    audit.row.save(update_fields=["before", "entry"])
    audit.after = write.after.get(name)
    audit.details = {
        **audit.details,
        "layer": layer,
        "file": str(write.path),
        "backup": str(write.backup_path) if write.backup_path else None,
        "diff": changes,
        **extra_details,
    }
    if write.snapshot_error:
        audit.details["snapshot_error"] = write.snapshot_error
    return changes


def _catch_up(actor: Actor) -> bool:
    """Sync when another tool changed the files since the last sync; True if it did.

    Call it under the registry write lock: a site writer between its file write and
    its mirror update holds the lock, so what is left is a real outside change, never
    another writer's half-recorded one. The implicit sync has its own audit row and
    history; after it the mirror describes the files again, so an edit can splice (a
    re-sync reads the files; the full path rewrites two whole files on top)."""
    if files_unchanged():
        return False
    return sync_registry(actor, explicit=False).ok


def _write_and_sync(
    actor: Actor,
    name: str,
    layer: str,
    after: dict | None,
    expected: str,
    action_row: ActionLog,
) -> tuple[layers.WriteResult, SyncResult]:
    """Write one entry of one layer and bring the mirror up to date.

    Fast path (the usual edit of a big registry): under the registry lock, when the
    mirror still describes the files byte for byte, splice the entry into the layer and
    the snapshot and update that one row. When another tool changed the files since
    the last sync, sync first (the caller's fingerprint is then checked against the
    new content) and splice after. Otherwise the full path: rewrite the layer,
    re-materialize the snapshot, then ``sync_registry``.
    """
    folder = registry_dir()
    keep = settings.IMAGEWORKS_BACKUPS_KEEP
    with layers.registry_lock(folder):
        state = mirror_state(name)
        if state is None and _catch_up(actor):
            state = mirror_state(name)
        if state is not None:
            spliced = layers.splice_entry_write(
                folder,
                layer,
                name,
                after,
                known=state.known,
                expected=expected,
                keep_backups=keep,
            )
            if spliced is not None:
                sync = record_entry_write(state, spliced, actor, action_row)
                return spliced.write, sync
        write = layers.write_layer_entries(
            folder, layer, {name: after}, expected={name: expected}, keep_backups=keep
        )
    return write, sync_registry(actor, explicit=False, action=action_row)


def _layer_raw(current: layers.MergedEntry | None, layer: str) -> dict | None:
    if current is None:
        return None
    return current.curated if layer == layers.CURATED else current.discovered


def explain_conflict(name: str, layer: str, exc: layers.ConflictError) -> EntryConflict:
    """The operator's view of a conflict: who changed the entry, when, and what."""
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


def _finish_batch(
    handles: dict[str, AuditHandle],
    refused: dict[str, str],
    befores: dict[str, dict | None],
    write: layers.WriteResult | None,
    sync: SyncResult | None,
    layer: str,
) -> dict[str, list[dict]]:
    """Fill each name's audit row (refused ones fail with the reason) and link the
    sync's history to it; returns the diffs of the written names."""
    batch = sorted(befores)
    diffs: dict[str, list[dict]] = {}
    for name, handle in handles.items():
        if name in refused:
            handle.fail(refused[name])
            continue
        diffs[name] = _describe_write(
            handle, name, layer, befores[name], write, batch=batch
        )
        if sync is not None:
            EntryChange.objects.filter(pk__in=sync.history_ids, entry_name=name).update(
                action=handle.row
            )
    return diffs


def _apply_mutators(
    registry: layers.Registry, layer: str, mutators: dict[str, Mutator]
) -> tuple[dict[str, dict | None], dict[str, str], dict[str, dict | None]]:
    """``(updates, expected fingerprints, befores)`` of each name's mutation of its
    current raw dict in *layer*."""
    updates: dict[str, dict | None] = {}
    expected: dict[str, str] = {}
    befores: dict[str, dict | None] = {}
    for name, mutate in mutators.items():
        current = registry.entries.get(name)
        befores[name] = copy.deepcopy(_layer_raw(current, layer))
        updates[name] = mutate(copy.deepcopy(befores[name]))
        expected[name] = current.fingerprint if current else layers.ABSENT_FINGERPRINT
    return updates, expected, befores


def dynamic_layer(key: str) -> str:
    """Which layer a top-level key belongs in (the original's rule)."""
    return layers.DISCOVERED if key in DYNAMIC_KEYS else layers.CURATED


@dataclass
class BatchResult:
    """Outcome of :func:`change_entries`: one audit row per requested name."""

    changed: list[str]
    refused: dict[str, str]
    actions: dict[str, ActionLog]
    write: layers.WriteResult | None
    sync: SyncResult | None
    diffs: dict[str, list[dict]] = field(default_factory=dict)


def change_entries(
    actor: Actor,
    action: str,
    layer: str,
    mutators: dict[str, Mutator],
    *,
    check: Callable[[layers.Registry], dict[str, str]] | None = None,
    messages: dict[str, str] | None = None,
    details: dict | None = None,
) -> BatchResult:
    """Change several entries of one layer in ONE atomic write, one audit row each.

    Under the registry lock: re-read the files, let ``check(registry)`` refuse names
    (name -> reason; those rows are marked failed with the reason and nothing is written
    for them), apply each remaining ``mutate`` to the name's current raw dict in
    ``layer`` and write them all with ``layers.write_layer_entries`` (fingerprints read
    under the same lock, so no other writer can slip in). A write error fails every row.

    Long on purpose: the read, check, mutate and write happen under one lock, and
    the audit rows must follow each name's outcome exactly.
    """
    messages = messages or {}
    rows = {row.name: row for row in ModelEntry.objects.filter(name__in=list(mutators))}
    with ExitStack() as stack:
        handles = {
            name: stack.enter_context(
                audited(
                    actor,
                    action,
                    entry=rows.get(name),
                    entry_name=name,
                    details=details,
                )
            )
            for name in mutators
        }
        folder = registry_dir()
        with layers.registry_lock(folder):
            registry = layers.load_registry(folder)
            refused = dict(check(registry) if check else {})
            wanted = {n: m for n, m in mutators.items() if n not in refused}
            updates, expected, befores = _apply_mutators(registry, layer, wanted)
            write = None
            if updates:
                write = layers.write_layer_entries(
                    folder,
                    layer,
                    updates,
                    expected=expected,
                    keep_backups=settings.IMAGEWORKS_BACKUPS_KEEP,
                )
        sync = None
        first = next((handles[n] for n in updates), None)
        if write is not None and first is not None:
            sync = sync_registry(actor, explicit=False, action=first.row)
        diffs = _finish_batch(handles, refused, befores, write, sync, layer)
        for name, diff in diffs.items():
            handles[name].message = messages.get(name) or f"{action}: {summarize(diff)}"
    return BatchResult(
        changed=list(updates),
        refused=refused,
        actions={name: handle.row for name, handle in handles.items()},
        write=write,
        sync=sync,
        diffs=diffs,
    )
