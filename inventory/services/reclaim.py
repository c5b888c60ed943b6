"""Reclaim plans: what moving folders to the trash would free and break; execute it.

A plan is built from selection keys (``entry:<pk>`` for entries, ``folder:<path>``
for orphan folders of the last scan) and the last scan's disk data. Every item says
what would be freed, what references it, what would break, or why it is refused:

* locked entries (version lock) and active entries (the live vLLM activation, an
  Ollama model loaded) are refused with the reason;
* Ollama tags (no folder of their own), missing paths, paths outside the model
  roots or equal to a root, and folders on another filesystem than their trash
  folder are refused;
* a folder another, unselected entry needs (same folder, nested folders, symlinks
  into it) is refused: "would break X, select it too".

:func:`execute` re-builds the plan, refuses it when it differs from the previewed
one (its digest), moves each folder with one ``os.rename`` (:mod:`inventory.trash`),
marks the entries deprecated through the registry's ``change_entry`` and writes one
``reconcile`` audit row per item. :func:`restore` and :func:`empty_trash` undo and
finish; :func:`sync_trash` finds items from their manifests when rows are missing.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from registry.audit import Actor, audited, record
from registry.choices import Action, Outcome
from registry.models import ModelEntry

from .. import scan, sources, trash
from ..choices import FindingKind, InventoryOp, TrashState, UsageState
from ..models import EntryUsage, Finding, TrashItem
from ..reconcile import human_bytes
from ..usage import freed_bytes
from .disk import entry_activity
from .scanning import latest_scan, trash_dirs, trash_setting


class PlanChanged(Exception):
    """The plan differs from the one previewed; nothing was moved."""


@dataclass
class PlanItem:
    key: str
    label: str
    folder: str = ""
    entry_pk: int | None = None
    entry_names: list[str] = field(default_factory=list)
    size_bytes: int | None = None
    exclusive_bytes: int = 0
    shared: list[dict] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    breaks: list[str] = field(default_factory=list)
    refused: str = ""
    nested_in: str = ""  # label of the selected item whose folder holds this one
    trash_dir: str = ""
    last_used: datetime | None = None
    locked: bool = False
    linked_from: list[str] = field(default_factory=list)

    @property
    def movable(self) -> bool:
        return not self.refused and not self.nested_in

    @property
    def freed_bytes(self) -> int:
        """What moving this folder alone would free once the trash is emptied."""
        return freed_bytes({self.key: self.exclusive_bytes}, {self.key: self.shared})


@dataclass
class Plan:
    items: list[PlanItem]
    scan_time: datetime | None
    unknown: list[str] = field(default_factory=list)

    @property
    def movable(self) -> list[PlanItem]:
        return [i for i in self.items if i.movable]

    @property
    def refused(self) -> list[PlanItem]:
        return [i for i in self.items if i.refused]

    @property
    def freed_bytes(self) -> int:
        chosen = self.movable  # nested items move with (and count in) their outer one
        return freed_bytes(
            {i.key: i.exclusive_bytes for i in chosen},
            {i.key: i.shared for i in chosen},
        )

    @property
    def size_bytes(self) -> int:
        return sum(i.size_bytes or 0 for i in self.movable)

    @property
    def digest(self) -> str:
        data = sorted(
            (i.key, i.folder, i.refused, sorted(i.entry_names), i.nested_in)
            for i in self.items
        )
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()[:32]


# --------------------------------------------------------------------------------------
# Building a plan
# --------------------------------------------------------------------------------------


def entry_key(entry: ModelEntry) -> str:
    return f"entry:{entry.pk}"


def folder_key(path: str) -> str:
    return f"folder:{path}"


class _Context:
    """What every item check needs, read once per plan (fixed number of queries)."""

    def __init__(self) -> None:
        self.roots, _missing = scan.real_roots(sources.model_roots())
        self.trash_setting = trash_setting()
        self.active = sources.active_entries()
        self.entries = list(ModelEntry.objects.select_related("usage").order_by("name"))
        self.by_pk = {e.pk: e for e in self.entries}
        self.paths = {
            e.name: [os.path.realpath(p) for p in _local_paths(e)] for e in self.entries
        }
        self.scan = latest_scan()
        self.orphans = (
            {
                f.path: f
                for f in Finding.objects.filter(
                    scan=self.scan, kind=FindingKind.ORPHAN_FOLDER
                )
            }
            if self.scan
            else {}
        )


def _local_paths(entry: ModelEntry) -> list[str]:
    out = []
    for raw in (entry.model_dir, entry.download_path):
        if raw and not raw.startswith("ollama:"):
            path = os.path.expanduser(raw)
            if path not in out:
                out.append(path)
    return out


def _usage(entry: ModelEntry) -> EntryUsage | None:
    try:
        return entry.usage
    except EntryUsage.DoesNotExist:
        return None


def _entry_item(ctx: _Context, entry: ModelEntry) -> PlanItem:
    item = PlanItem(
        key=entry_key(entry),
        label=entry.name,
        entry_pk=entry.pk,
        entry_names=[entry.name],
        locked=entry.locked,
    )
    usage = _usage(entry)
    if usage is not None:
        item.size_bytes = usage.size_bytes
        item.exclusive_bytes = usage.exclusive_bytes or 0
        item.shared = list(usage.shared or [])
        item.linked_from = list(usage.linked_from or [])
    paths = _local_paths(entry)
    if entry.locked:
        item.refused = "Locked (version lock): unlock it first"
    elif entry.name in ctx.active:
        item.refused = f"Active: {ctx.active[entry.name]}"
    elif not paths:
        item.refused = (
            "No folder of its own (an Ollama tag is removed with `ollama rm`)"
            if entry.backend == sources.OLLAMA
            else "No model path recorded: nothing to move"
        )
    if item.refused:
        return item
    item.folder = os.path.realpath(paths[0])
    if os.path.isfile(item.folder):
        item.refused = "The model path is a single file: only folders move to the trash"
    elif not os.path.isdir(item.folder):
        item.refused = f"The model path does not exist: {paths[0]}"
    elif usage is None or usage.state == UsageState.UNKNOWN:
        item.refused = "Not scanned yet: run the reconcile scan first"
    return item


def _folder_item(ctx: _Context, path: str) -> PlanItem:
    item = PlanItem(key=folder_key(path), label=path, folder=path)
    finding = ctx.orphans.get(path)
    if finding is None:
        item.refused = "Not an orphan folder of the last scan: run the scan again"
        return item
    details = finding.details or {}
    item.size_bytes = finding.size_bytes
    item.exclusive_bytes = int(details.get("exclusive_bytes") or 0)
    item.shared = list(details.get("shared") or [])
    item.linked_from = list(details.get("linked_from") or [])
    claimed = [
        name
        for name, paths in ctx.paths.items()
        if any(scan.is_within(p, path) or scan.is_within(path, p) for p in paths)
    ]
    if claimed:
        item.refused = (
            f"An entry uses it now ({', '.join(claimed)}): run the scan again"
        )
    elif not os.path.isdir(path):
        item.refused = "The folder is gone"
    return item


def _check_place(ctx: _Context, item: PlanItem) -> None:
    """Roots, trash folder and filesystem rules for a movable folder."""
    if item.refused or not item.folder:
        return
    if not any(scan.is_within(item.folder, r) for r in ctx.roots):
        item.refused = (
            "Outside IMAGEWORKS_MODEL_ROOTS (only folders inside a root move)"
        )
        return
    if item.folder in ctx.roots:
        item.refused = "The folder is a model root itself"
        return
    if any(scan.is_within(item.folder, t) for t in trash_dirs(ctx.roots)):
        item.refused = "The folder is inside a trash folder"
        return
    try:
        item.trash_dir = trash.trash_dir_for(item.folder, ctx.roots, ctx.trash_setting)
        trash.check_same_filesystem(item.folder, item.trash_dir)
    except trash.TrashError as exc:
        item.refused = str(exc)


def _relations(ctx: _Context, items: list[PlanItem]) -> None:
    """Same folder, nested folders, symlinks into it: references and breakage.

    Repeated until stable: an item refused here no longer counts as "selected too"
    for the others."""
    for _round in range(len(items) + 1):
        selected = {n for i in items if not i.refused for n in i.entry_names}
        selected |= {i.label for i in items if not i.refused}
        changed = False
        for item in items:
            if not item.folder:
                continue
            item.breaks, item.references = _links(ctx, item, selected)
            if item.breaks and not item.refused:
                item.refused = (
                    "Would break " + "; ".join(item.breaks) + ": select it too"
                )
                changed = True
        if not changed:
            return


def _links(ctx: _Context, item: PlanItem, selected: set[str]) -> tuple[list, list]:
    breaks: list[str] = []
    refs: list[str] = []
    for name, paths in ctx.paths.items():
        if name in item.entry_names:
            continue
        for path in paths:
            if path == item.folder or scan.is_within(path, item.folder):
                how = "the same folder" if path == item.folder else "a folder inside it"
                if name in selected:
                    refs.append(f"{name} uses {how} (selected too)")
                else:
                    breaks.append(f"{name} uses {how}")
                break
            if scan.is_within(item.folder, path) and name not in selected:
                breaks.append(f"{name} uses a folder that holds it")
                break
    for holder in item.linked_from:
        if holder not in selected:
            breaks.append(f"{holder} has symlinks into it")
    sharers = sorted(
        {
            h
            for rec in item.shared
            for h in rec.get("with", [])
            if h not in item.entry_names and h != item.label
        }
    )
    if sharers:
        stay = sum(r["size"] for r in item.shared if r.get("links", 0) < r["nlink"])
        refs.append(
            f"shares files with {', '.join(sharers)}"
            + (f" ({human_bytes(stay)} stay on disk)" if stay else "")
        )
    return breaks, refs


def _nesting(items: list[PlanItem]) -> None:
    """An item inside another selected item's folder moves with it."""
    for item in items:
        if not item.folder or item.refused:
            continue
        for outer in items:
            if outer is item or outer.refused or not outer.folder:
                continue
            inside = scan.is_within(item.folder, outer.folder)
            if inside and (item.folder != outer.folder or outer.key < item.key):
                item.nested_in = outer.label
                for name in item.entry_names:
                    if name not in outer.entry_names:
                        outer.entry_names.append(name)
                break


def build_plan(keys: list[str]) -> Plan:
    """The plan for these selection keys (nothing is changed)."""
    ctx = _Context()
    items: list[PlanItem] = []
    unknown: list[str] = []
    seen: set[str] = set()
    for key in dict.fromkeys(k.strip() for k in keys if k and k.strip()):
        kind, _, value = key.partition(":")
        if kind == "entry" and value.isdigit() and int(value) in ctx.by_pk:
            item = _entry_item(ctx, ctx.by_pk[int(value)])
        elif kind == "folder" and value:
            item = _folder_item(ctx, value)
        else:
            unknown.append(key)
            continue
        if item.key not in seen:
            seen.add(item.key)
            items.append(item)
    if ctx.scan is None:
        for item in items:
            item.refused = item.refused or "No scan yet: run the reconcile scan first"
    for item in items:
        _check_place(ctx, item)
    _relations(ctx, items)
    _nesting(items)
    activity = entry_activity(
        [ctx.by_pk[i.entry_pk] for i in items if i.entry_pk in ctx.by_pk]
    )
    for item in items:
        act = activity.get(item.label)
        if act:
            item.last_used = act.last_used
            if act.last_activated:
                item.references.append(
                    f"last activated {act.last_activated:%Y-%m-%d %H:%M}"
                )
    return Plan(
        items=items, scan_time=ctx.scan.finished if ctx.scan else None, unknown=unknown
    )


# --------------------------------------------------------------------------------------
# Suggestions
# --------------------------------------------------------------------------------------


@dataclass
class Candidate:
    entry: ModelEntry
    usage: EntryUsage | None
    last_used: datetime | None
    idle_since: datetime | None
    blocked: str = ""  # why it cannot be reclaimed ("" = it can)
    suggested: bool = False

    @property
    def size(self) -> int | None:
        return self.usage.size_bytes if self.usage else None


def candidates(days: int | None = None) -> list[Candidate]:
    """Entries with a folder of their own, with why they can(not) be reclaimed.

    ``suggested`` marks entries unused for ``days`` days (last activated or last
    accessed; never used: since the download or since the entry appeared), not
    locked and not active.
    """
    active = sources.active_entries()
    entries = [
        e
        for e in ModelEntry.objects.select_related("usage").order_by("name")
        if _local_paths(e)
    ]
    activity = entry_activity(entries)
    now = timezone.now()
    cutoff = now - timedelta(days=days) if days is not None else None
    out = []
    for entry in entries:
        act = activity[entry.name]
        usage = _usage(entry)
        idle = act.last_used or _downloaded_at(entry) or entry.created
        blocked = ""
        if entry.locked:
            blocked = "locked"
        elif entry.name in active:
            blocked = "active"
        elif usage is None or usage.state not in (UsageState.OK, UsageState.EMPTY):
            blocked = usage.get_state_display().lower() if usage else "not scanned"
        out.append(
            Candidate(
                entry=entry,
                usage=usage,
                last_used=act.last_used,
                idle_since=idle,
                blocked=blocked,
                suggested=bool(
                    cutoff and not blocked and idle is not None and idle < cutoff
                ),
            )
        )
    return out


def _downloaded_at(entry: ModelEntry) -> datetime | None:
    from .disk import _parse

    merged = entry.merged or {}
    return _parse(merged.get("downloaded_at")) if isinstance(merged, dict) else None


# --------------------------------------------------------------------------------------
# Execute, restore, empty
# --------------------------------------------------------------------------------------


@dataclass
class ExecuteResult:
    moved: list[TrashItem] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    batch: str = ""

    @property
    def message(self) -> str:
        parts = []
        if self.moved:
            total = sum(i.freed_bytes for i in self.moved)
            parts.append(
                f"Moved {len(self.moved)} folder(s) to the trash ({human_bytes(total)} "
                "freed when the trash is emptied)"
            )
        if self.refused:
            parts.append(
                "refused: "
                + "; ".join(f"{label}: {why}" for label, why in self.refused)
            )
        parts.extend(self.warnings)
        return "; ".join(parts) or "Nothing to do"


def execute(keys: list[str], actor: Actor, digest: str) -> ExecuteResult:
    """Move the plan's folders to the trash and mark their entries deprecated.

    Raises :class:`PlanChanged` (nothing moved) when the plan is not the one
    previewed (``digest``). Refused items get a failed audit row with the reason.
    """
    plan = build_plan(keys)
    if plan.digest != digest:
        raise PlanChanged(
            "The plan changed since the preview (files, locks or activations moved "
            "on); review the new plan and confirm again. Nothing was moved."
        )
    result = ExecuteResult(batch=uuid.uuid4().hex[:12])
    by_name = {
        e.name: e
        for e in ModelEntry.objects.filter(
            name__in=[n for i in plan.items for n in i.entry_names]
        )
    }
    for item in plan.items:
        if item.refused:
            record(
                actor,
                Action.RECONCILE,
                entry=by_name.get(item.label),
                entry_name=item.label if item.entry_pk else "",
                outcome=Outcome.FAILED,
                message=f"Not moved to trash: {item.label}: {item.refused}",
                details={
                    "op": InventoryOp.RECLAIM,
                    "batch": result.batch,
                    "folder": item.folder,
                    "refused": item.refused,
                },
            )
            result.refused.append((item.label, item.refused))
        elif item.movable:
            moved = _move(item, actor, result, by_name, plan)
            if moved is not None:
                result.moved.append(moved)
    return result


def _move(
    item: PlanItem, actor: Actor, result: ExecuteResult, by_name, plan
) -> TrashItem | None:
    """One item: rename into the trash, record it, deprecate; one audit row.

    The manifest is on disk before the rename, so even a failure between the rename
    and the database row leaves an item :func:`sync_trash` adopts."""
    names = list(item.entry_names)
    primary = by_name.get(names[0]) if names else None
    details = {
        "op": InventoryOp.RECLAIM,
        "batch": result.batch,
        "folder": item.folder,
        "entries": names,
        "bytes": item.size_bytes,
        "freed_bytes": item.freed_bytes,
    }
    try:
        with audited(
            actor,
            Action.RECONCILE,
            entry=primary,
            entry_name=names[0] if names else "",
            details=details,
        ) as audit:
            row = _trash_item(item, names, primary, actor, result.batch)
            notes = _deprecate(row, names, by_name, actor)
            audit.details = {
                **details,
                "trash_path": row.trash_path,
                "item": row.pk,
                "deprecated": row.deprecated_by_us,
            }
            audit.after = {"trash_path": row.trash_path}
            audit.message = (
                f"Moved {item.folder} to the trash "
                f"({human_bytes(item.freed_bytes)} freed when emptied)"
                + (f"; {notes}" if notes else "")
            )
            if notes:
                result.warnings.append(notes)
            return row
    except trash.TrashError as exc:
        result.refused.append((item.label, str(exc)))
        return None


def _trash_item(item: PlanItem, names, primary, actor: Actor, batch: str) -> TrashItem:
    moved = trash.move_to_trash(
        item.folder,
        item.trash_dir,
        {
            "entries": names,
            "moved_by": actor.name,
            "batch": batch,
            "size_bytes": item.size_bytes,
            "freed_bytes": item.freed_bytes,
        },
    )
    return TrashItem.objects.create(
        entry=primary,
        entry_names=names,
        original_path=item.folder,
        item_dir=moved.item_dir,
        trash_path=moved.trash_path,
        size_bytes=item.size_bytes or 0,
        freed_bytes=item.freed_bytes,
        batch=batch,
        moved_by=actor.name[:150],
    )


def _deprecate(row: TrashItem, names: list[str], by_name, actor: Actor) -> str:
    """Mark the moved entries deprecated (curated layer); return a note on failures."""
    failures = []
    for name in names:
        entry = by_name.get(name)
        if entry is None or entry.deprecated:
            continue
        try:
            sources.set_deprecated(
                actor,
                name,
                True,
                reason=f"folder moved to the trash (item #{row.pk})",
                details={"trash_item": row.pk},
            )
        except sources.EditRefused as exc:
            failures.append(f"{name} not marked deprecated: {exc}")
            continue
        row.deprecated_by_us.append(name)
    row.note = "; ".join(failures)
    row.save(update_fields=["deprecated_by_us", "note"])
    try:
        manifest = trash.read_manifest(row.item_dir)
        trash.write_manifest(
            row.item_dir, {**manifest, "deprecated_by_us": row.deprecated_by_us}
        )
    except (OSError, ValueError, trash.TrashError) as exc:
        failures.append(f"manifest not updated: {exc}")
    return "; ".join(failures)


class RestoreRefused(Exception):
    pass


def restore(item: TrashItem, actor: Actor) -> TrashItem:
    """Move the folder back (refused when its place is occupied) and clear the
    deprecated flag this reclaim set. One audit row."""
    roots, _ = scan.real_roots(sources.model_roots())
    details = {"op": InventoryOp.RESTORE, "item": item.pk, "folder": item.original_path}
    with audited(
        actor,
        Action.RECONCILE,
        entry=item.entry,
        entry_name=(item.entry_names or [""])[0],
        details=details,
    ) as audit:
        if item.state != TrashState.IN_TRASH:
            raise RestoreRefused(f"This item is {item.get_state_display().lower()}")
        if not any(scan.is_within(item.original_path, r) for r in roots):
            raise RestoreRefused(
                f"{item.original_path} is no longer inside IMAGEWORKS_MODEL_ROOTS"
            )
        try:
            trash.restore(item.item_dir, item.trash_path, item.original_path)
        except trash.TrashError as exc:
            raise RestoreRefused(str(exc)) from None
        item.state = TrashState.RESTORED
        item.restored_at = timezone.now()
        item.restored_by = actor.name[:150]
        notes = []
        for name in item.deprecated_by_us:
            if ModelEntry.objects.filter(name=name, deprecated=True).exists():
                try:
                    sources.set_deprecated(
                        actor,
                        name,
                        False,
                        reason=f"restored from the trash (item #{item.pk})",
                    )
                except sources.EditRefused as exc:
                    notes.append(f"{name} still deprecated: {exc}")
        item.note = "; ".join(notes)
        item.save()
        audit.message = f"Restored {item.original_path} from the trash" + (
            f"; {item.note}" if item.note else ""
        )
    return item


def empty_trash(items: list[TrashItem], actor: Actor) -> tuple[int, int, list[str]]:
    """Delete these trash items for good: ``(items deleted, bytes freed, problems)``.

    Only items in the trash whose folder holds our manifest are deleted; one audit
    row per item."""
    dirs = trash_dirs()
    done = freed = 0
    problems: list[str] = []
    for item in items:
        details = {
            "op": InventoryOp.EMPTY_TRASH,
            "item": item.pk,
            "trash_path": item.trash_path,
            "freed_bytes": item.freed_bytes,
        }
        try:
            with audited(
                actor,
                Action.RECONCILE,
                entry=item.entry,
                entry_name=(item.entry_names or [""])[0],
                details=details,
            ) as audit:
                if item.state != TrashState.IN_TRASH:
                    raise trash.TrashError(f"item #{item.pk} is not in the trash")
                trash.delete_item(item.item_dir, dirs)
                item.state = TrashState.EMPTIED
                item.emptied_at = timezone.now()
                item.emptied_by = actor.name[:150]
                item.save(update_fields=["state", "emptied_at", "emptied_by"])
                audit.message = (
                    f"Deleted {item.original_path} from the trash for good "
                    f"({human_bytes(item.freed_bytes)} freed)"
                )
        except (trash.TrashError, OSError) as exc:
            problems.append(f"{item.label}: {exc}")
            continue
        done += 1
        freed += item.freed_bytes
    return done, freed, problems


def sync_trash(actor: Actor) -> dict[str, Any]:
    """Match the trash folders with the rows: adopt manifests without a row (a lost
    database), mark rows whose folder vanished as lost. Cheap (one listdir each)."""
    found = trash.read_manifests(trash_dirs())
    known = set(TrashItem.objects.values_list("item_dir", flat=True))
    adopted = []
    for item_dir, manifest in found:
        if item_dir in known or not os.path.isdir(
            str(manifest.get("trash_path") or "")
        ):
            continue
        names = [str(n) for n in manifest.get("entries") or []]
        row = TrashItem.objects.create(
            entry=ModelEntry.objects.filter(name__in=names[:1]).first(),
            entry_names=names,
            deprecated_by_us=[str(n) for n in manifest.get("deprecated_by_us") or []],
            original_path=str(manifest["original_path"]),
            item_dir=item_dir,
            trash_path=str(manifest["trash_path"]),
            size_bytes=int(manifest.get("size_bytes") or 0),
            freed_bytes=int(manifest.get("freed_bytes") or 0),
            batch=str(manifest.get("batch") or "")[:32],
            moved_by=str(manifest.get("moved_by") or "")[:150],
            note="Found in the trash from its manifest",
        )
        adopted.append(row.pk)
    if adopted:
        record(
            actor,
            Action.RECONCILE,
            message=f"Adopted {len(adopted)} trash item(s) from their manifests",
            details={"op": InventoryOp.ADOPT, "items": adopted},
        )
    lost = 0
    for row in TrashItem.objects.filter(state=TrashState.IN_TRASH):
        if not os.path.isdir(row.trash_path):
            row.state = TrashState.LOST
            row.note = "The folder is no longer in the trash (removed outside the site)"
            row.save(update_fields=["state", "note"])
            lost += 1
    return {"adopted": adopted, "lost": lost}
