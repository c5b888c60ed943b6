"""Revert one recorded change (``EntryChange``) of an entry's curated layer.

The history holds, per change, the keys that changed with their values before and
after. Reverting puts the *before* values back (and removes keys the change added),
as an edit: the same preview as the editor (key-level diff + unified diff, writes
nothing), then a confirm that writes through ``writeback.change_entry`` with the
fingerprint the preview was made from (a change in between: ``EntryConflict``,
nothing written) and one audit row (``edit``, ``details["revert_of"]``).

Only a change whose keys still hold the values it wrote can be reverted: when a
later change moved one of them, the preview lists those keys and Confirm is refused
(revert the later change first, or edit by hand). Only curated changes are
reverted: the discovered layer holds lock state and hashes, which Verify, Lock and
Unlock own.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from .. import layers
from ..audit import Actor
from ..choices import Action, Layer
from ..models import EntryChange, ModelEntry
from .editing import Preview, check_conflict, digest, preview_of, same_value
from .writeback import ChangeResult, change_entry

MISSING = object()


class RevertRefused(layers.RegistryError):
    """This change cannot be reverted (shown to the operator; nothing written)."""


@dataclass
class RevertPreview:
    change: EntryChange
    preview: Preview
    fingerprint: str
    #: Paths a later change moved: reverting would overwrite it, so it is refused.
    moved: list[dict] = field(default_factory=list)

    @property
    def allowed(self) -> bool:
        return not self.moved and self.preview.changed


def _split(raw: dict, path: str) -> tuple[dict | None, str]:
    """The dict holding *path*'s last key, and that key (keys may contain dots)."""
    node: Any = raw
    rest = path
    while True:
        if not isinstance(node, dict):
            return None, rest
        if rest in node or "." not in rest:
            return node, rest
        # The longest key that is a prefix of the rest, like diff_entries joined them.
        parts = rest.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            head = ".".join(parts[:cut])
            if isinstance(node.get(head), dict):
                node, rest = node[head], ".".join(parts[cut:])
                break
        else:
            return node, rest


def _get(raw: dict | None, path: str) -> Any:
    if raw is None:
        return MISSING
    node, key = _split(raw, path)
    if node is None or key not in node:
        return MISSING
    return node[key]


def _set(raw: dict, path: str, value: Any) -> None:
    parts = path.split(".")
    node, key = _split(raw, path)
    if node is None:  # an intermediate dict is gone: rebuild it
        node = raw
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise RevertRefused(f"Cannot restore {path}: {part} is not an object")
        key = parts[-1]
    node[key] = copy.deepcopy(value)


def _remove(raw: dict, path: str) -> None:
    node, key = _split(raw, path)
    if node is not None:
        node.pop(key, None)


def reverted(current: dict | None, change: EntryChange, name: str) -> dict | None:
    """*current* with *change* undone (None: the entry leaves the curated layer)."""
    new = copy.deepcopy(current) if isinstance(current, dict) else {"name": name}
    for item in change.changes or []:
        if item.get("op") == "added":
            _remove(new, item["path"])
        else:
            _set(new, item["path"], item.get("before"))
    if set(new) <= {"name"}:
        return None
    return new


def moved_since(current: dict | None, change: EntryChange) -> list[dict]:
    """The change's keys that no longer hold what it wrote (a later change)."""
    moved = []
    for item in change.changes or []:
        now = _get(current, item["path"])
        wrote = MISSING if item.get("op") == "removed" else item.get("after")
        same = (now is MISSING and wrote is MISSING) or (
            now is not MISSING and wrote is not MISSING and same_value(now, wrote)
        )
        if not same:
            moved.append(
                {
                    "path": item["path"],
                    "wrote": None if wrote is MISSING else wrote,
                    "now": None if now is MISSING else now,
                }
            )
    return moved


def check_revertible(entry: ModelEntry, change: EntryChange) -> None:
    if change.entry_id != entry.pk and change.entry_name != entry.name:
        raise RevertRefused("That change belongs to another entry.")
    if change.layer != Layer.CURATED:
        raise RevertRefused(
            "Only curated changes can be reverted; the discovered layer's lock state "
            "and hashes change through Verify, Lock and Unlock."
        )
    if not change.changes:
        raise RevertRefused("This change recorded no keys to put back.")


def preview_revert(entry: ModelEntry, change: EntryChange) -> RevertPreview:
    """What Confirm would write (from the mirror, which sync keeps equal to the file)."""
    check_revertible(entry, change)
    before = entry.curated_raw
    new = reverted(before, change, entry.name)
    new = layers.ordered_like(before, new) if before and new else new
    return RevertPreview(
        change,
        preview_of(entry.name, before, new),
        entry.fingerprint,
        moved=moved_since(before, change),
    )


def save_revert(
    entry: ModelEntry,
    change: EntryChange,
    actor: Actor,
    expected_fingerprint: str,
    expected_digest: str,
) -> ChangeResult:
    """Write the previewed revert. Raises ``RevertRefused`` (a later change moved its
    keys, or the preview is out of date), ``writeback.EntryConflict`` (the entry
    changed since the preview) and ``layers.RegistryWriteError``."""
    check_revertible(entry, change)
    conflict = check_conflict(entry, expected_fingerprint, actor)
    if conflict is not None:  # the editor's guard: say who changed what since
        raise conflict

    def mutate(current: dict | None) -> dict | None:
        if moved_since(current, change):
            raise RevertRefused(
                "A later change moved some of these keys; revert that one first."
            )
        new = reverted(current, change, entry.name)
        if digest(new) != expected_digest:
            raise RevertRefused("The entry changed since the preview: check it again.")
        return new

    return change_entry(
        actor,
        Action.EDIT,
        entry.name,
        layers.CURATED,
        mutate,
        expected_fingerprint=expected_fingerprint,
        message=f"Reverted change #{change.pk} of {entry.name} ({change.time:%Y-%m-%d %H:%M})",
        details={"revert_of": change.pk, "fingerprint": expected_fingerprint},
    )


__all__ = [
    "RevertPreview",
    "RevertRefused",
    "check_revertible",
    "moved_since",
    "preview_revert",
    "reverted",
    "save_revert",
]
