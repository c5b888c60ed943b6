"""Bulk actions on many entries at once (Django admin's actions): verify, lock, unlock.

One rule for every front end (the Models page's selection, ``imageworks-models bulk``):

* :func:`plan_bulk` says what would happen to each entry, writing nothing: the
  confirmation page (Django admin's intermediate page) and ``bulk --dry-run`` show it.
  A row the operator may not act on, or that the single-entry rule refuses (an Ollama
  tag has no files to verify, a verify job is already running...), is listed with the
  reason, never dropped.
* :func:`start_bulk` queues one ``JobKind.BULK`` job for the batch (the site). Its task,
  :func:`bulk_job`, works through the entries with the single-entry services
  (``request_verify``, ``request_lock``, ``unlock``): verifies become their own verify
  jobs (one per entry, in parallel on the workers), locks and unlocks are written by
  the bulk job. Progress and per-entry outcomes go to the job's ``data["items"]``.
* :func:`run_bulk` does the same inline (the CLI), verifying in the foreground.

Permissions are checked per entry when the work is done (``actor.may``), not only when
the page was shown. Every entry gets an audit row with the operator's name: the
services write theirs; a refusal or "nothing to do" is recorded here.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from django.core.exceptions import PermissionDenied

from .. import layers
from ..audit import Actor, record
from ..choices import Action, BulkAction, JobKind, LockRequestStatus, Outcome
from ..jobs import JobCancelled, enqueue, is_cancel_requested, log, progress
from ..models import Job, ModelEntry
from .verify import (
    LOCK_NOT_APPLICABLE_MESSAGE,
    NOT_APPLICABLE_MESSAGE,
    EntryNotFound,
    VerifyError,
    busy_message,
    live_verify_job,
    needs_verify_before_lock,
    request_lock,
    request_verify,
    unlock,
    verify,
)

#: The most entries one bulk action takes (the largest page is 200 rows).
MAX_ENTRIES = 500

#: The permission each action needs, per entry.
PERMISSIONS = {
    BulkAction.VERIFY: "registry.verify_entry",
    BulkAction.LOCK: "registry.lock_entry",
    BulkAction.UNLOCK: "registry.lock_entry",
}
AUDIT_ACTIONS = {
    BulkAction.VERIFY: Action.VERIFY,
    BulkAction.LOCK: Action.LOCK,
    BulkAction.UNLOCK: Action.UNLOCK,
}
ROLE_NEEDED = "the operator role"

# Per-entry states: what the plan promises, then what happened.
WILL = "will"  # plan: the action will run
REFUSED = "refused"  # not allowed or not applicable (audited as failed)
UNCHANGED = "unchanged"  # nothing to do (already locked/unlocked)
QUEUED = "queued"  # a verify (or verify-then-lock) job of its own was queued
DONE = "done"
FAILED = "failed"


class BulkError(ValueError):
    """Bad input for a bulk action (unknown action, no entries, too many)."""


@dataclass
class BulkItem:
    """One entry of a batch: its state, a sentence for the operator, a job if any."""

    name: str
    state: str
    message: str
    pk: int | None = None
    job_id: int | None = None

    @property
    def acts(self) -> bool:
        return self.state in (WILL, QUEUED, DONE)


@dataclass
class BulkPlan:
    action: str
    items: list[BulkItem]

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(item.state for item in self.items))

    @property
    def actionable(self) -> int:
        return sum(1 for item in self.items if item.state == WILL)

    @property
    def label(self) -> str:
        return BulkAction(self.action).label


def check_action(action: str) -> BulkAction:
    if not action:
        raise BulkError("Choose an action for the selected rows.")
    try:
        return BulkAction(action)
    except ValueError:
        choices = ", ".join(BulkAction.values)
        raise BulkError(f"Unknown bulk action {action!r}; choose {choices}.") from None


def resolve_entries(
    names: Iterable[str] = (), pks: Iterable[int] = ()
) -> tuple[list[ModelEntry], list[str]]:
    """The entries named or selected (in the given order, no duplicates), and the
    names that match nothing (the CLI reports them)."""
    names = [n.strip() for n in names if n and n.strip()]
    pks = list(pks)
    if len(names) + len(pks) > MAX_ENTRIES:
        raise BulkError(f"Too many entries: at most {MAX_ENTRIES} at once.")
    rows = []
    if pks:
        by_pk = ModelEntry.objects.in_bulk(pks)
        rows.extend(by_pk[pk] for pk in dict.fromkeys(pks) if pk in by_pk)
    missing = []
    if names:
        by_name = ModelEntry.objects.in_bulk(names, field_name="name")
        for name in dict.fromkeys(names):
            if name in by_name:
                rows.append(by_name[name])
            else:
                missing.append(name)
    seen: set[int] = set()
    unique = [r for r in rows if not (r.pk in seen or seen.add(r.pk))]
    return unique, missing


def _refusal(action: BulkAction, entry: ModelEntry, actor: Actor) -> BulkItem | None:
    """Why *entry* is refused or left alone for *action* now, or None if it can go."""
    verb = action.label.lower()
    if not actor.may(PERMISSIONS[action]):
        return BulkItem(
            entry.name,
            REFUSED,
            f"Your role may not {verb} entries (needs {ROLE_NEEDED}).",
            entry.pk,
        )
    if action == BulkAction.UNLOCK:
        if not entry.locked:
            return BulkItem(entry.name, UNCHANGED, "Already unlocked.", entry.pk)
        return None
    live = live_verify_job(entry.name)
    if live is not None:
        return BulkItem(entry.name, REFUSED, busy_message(live), entry.pk, live.pk)
    if action == BulkAction.LOCK and entry.locked and entry.expected_sha256:
        return BulkItem(entry.name, UNCHANGED, "Already locked.", entry.pk)
    if not entry.has_local_files:
        text = (
            NOT_APPLICABLE_MESSAGE
            if action == BulkAction.VERIFY
            else LOCK_NOT_APPLICABLE_MESSAGE
        )
        return BulkItem(entry.name, REFUSED, text, entry.pk)
    if (
        action == BulkAction.LOCK
        and needs_verify_before_lock(entry)
        and not actor.may(PERMISSIONS[BulkAction.VERIFY])
    ):
        return BulkItem(
            entry.name,
            REFUSED,
            "Needs a verify first, and your role may not verify.",
            entry.pk,
        )
    return None


def _promise(action: BulkAction, entry: ModelEntry) -> str:
    if action == BulkAction.VERIFY:
        return "Hash the files in a verify job of its own."
    if action == BulkAction.UNLOCK:
        return "Unlock (the expected hash is kept)."
    if needs_verify_before_lock(entry):
        return "Verify first (no current verify), then lock to that hash."
    return f"Lock to the last verified hash {entry.aggregate_sha256[:12]}."


def plan_bulk(action: str, entries: Iterable[ModelEntry], actor: Actor) -> BulkPlan:
    """What :func:`start_bulk` would do to each entry now (writes nothing)."""
    action = check_action(action)
    items = []
    for entry in entries:
        refusal = _refusal(action, entry, actor)
        items.append(
            refusal or BulkItem(entry.name, WILL, _promise(action, entry), entry.pk)
        )
    return BulkPlan(action, items)


def start_bulk(action: str, entries: list[ModelEntry], actor: Actor) -> Job:
    """Queue one bulk job for *entries* (the site); its page shows the progress."""
    action = check_action(action)
    if not entries:
        raise BulkError("Select at least one entry.")
    if len(entries) > MAX_ENTRIES:
        raise BulkError(f"Too many entries: at most {MAX_ENTRIES} at once.")
    names = [e.name for e in entries]
    return enqueue(
        JobKind.BULK,
        actor=actor,
        # One live job per (kind, entry_name): each batch has a name of its own.
        entry_name=f"{action.label.lower()} {len(names)} entries #{uuid.uuid4().hex[:8]}",
        params={"action": action.value, "names": names},
        message=f"Queued: {action.label.lower()} {len(names)} entries",
    )


def _audit_refusal(action: BulkAction, item: BulkItem, actor: Actor, job) -> None:
    record(
        actor,
        AUDIT_ACTIONS[action],
        entry=ModelEntry.objects.filter(name=item.name).first(),
        entry_name=item.name,
        outcome=Outcome.FAILED if item.state == REFUSED else Outcome.SUCCEEDED,
        message=f"Bulk {action.label.lower()}: {item.message}",
        details={"bulk": True, "no_change": item.state == UNCHANGED},
        job=job,
    )


def apply_one(
    action: BulkAction,
    entry: ModelEntry,
    actor: Actor,
    *,
    background: bool,
    job: Job | None = None,
    on_progress=None,
) -> BulkItem:
    """Run *action* on one entry through its single-entry service.

    *background* (the site): verifies are queued as their own jobs and a lock without
    a current verify becomes a verify-then-lock job; otherwise (the CLI) they run here.
    """
    item = _refusal(action, entry, actor)
    if item is not None:
        _audit_refusal(action, item, actor, job)
        return item
    name, pk = entry.name, entry.pk
    if action == BulkAction.VERIFY:
        if background:
            result = request_verify(entry, actor)
            if result.refusal:
                item = BulkItem(name, REFUSED, result.refusal, pk)
                _audit_refusal(action, item, actor, job)
                return item
            return BulkItem(name, QUEUED, "Verify job queued.", pk, result.job.pk)
        try:
            outcome = verify(name, actor, job=job, on_progress=on_progress)
        except (VerifyError, EntryNotFound, layers.RegistryError) as exc:
            return BulkItem(name, FAILED, str(exc), pk)  # verify audited it
        return BulkItem(name, DONE, f"Verified: {outcome.aggregate_sha256[:12]}", pk)
    if action == BulkAction.LOCK:
        try:
            result = request_lock(
                entry, actor, background=background, on_progress=on_progress
            )
        except PermissionDenied as exc:
            item = BulkItem(name, REFUSED, str(exc), pk)
            _audit_refusal(action, item, actor, job)
            return item
        status = result.status
        if status == LockRequestStatus.LOCKED:
            return BulkItem(name, DONE, result.message, pk)
        if status == LockRequestStatus.QUEUED:
            state = FAILED if result.error else QUEUED
            return BulkItem(name, state, result.message, pk, result.job.pk)
        if status == LockRequestStatus.FAILED:
            return BulkItem(name, FAILED, result.message, pk)  # lock audited it
        state = UNCHANGED if status == LockRequestStatus.ALREADY_LOCKED else REFUSED
        item = BulkItem(name, state, result.message, pk)
        _audit_refusal(action, item, actor, job)
        return item
    try:
        outcome = unlock(name, actor, job=job)
    except (VerifyError, EntryNotFound, layers.RegistryError) as exc:
        return BulkItem(name, FAILED, str(exc), pk)  # change_entry audited it
    return BulkItem(name, DONE, outcome.message, pk)


def run_bulk(
    action: str,
    entries: list[ModelEntry],
    actor: Actor,
    *,
    background: bool = False,
    job: Job | None = None,
    on_item: Callable[[int, BulkItem], None] | None = None,
    progress_for: Callable[[ModelEntry], object] | None = None,
) -> list[BulkItem]:
    """Apply *action* to every entry in turn; one entry's failure never stops the rest."""
    action = check_action(action)
    items = []
    for index, entry in enumerate(entries):
        if job is not None and is_cancel_requested(job):
            raise JobCancelled(f"Cancelled after {index} of {len(entries)} entries")
        entry.refresh_from_db()  # the plan may be minutes old
        meter = progress_for(entry) if progress_for else None
        item = apply_one(
            action, entry, actor, background=background, job=job, on_progress=meter
        )
        items.append(item)
        if on_item is not None:
            on_item(index, item)
    return items


def bulk_job(job: Job) -> dict:
    """Task of ``JobKind.BULK``: ``params = {"action", "names"}``."""
    from .verify.jobs import job_actor

    params = job.params or {}
    action = check_action(params.get("action", ""))
    entries, missing = resolve_entries(names=params.get("names") or [])
    actor = job_actor(job)
    items = [BulkItem(name, FAILED, "No such entry any more.") for name in missing]
    for item in items:
        log(job, f"{item.name}: {item.message}", level="warning")
    total = len(entries) + len(items)

    def on_item(index: int, item: BulkItem) -> None:
        items.append(item)
        log(job, f"{item.name}: {item.state}: {item.message}")
        progress(
            job,
            len(items) / total,
            f"{len(items)} of {total} entries",
            items=[asdict(i) for i in items],
        )

    run_bulk(action, entries, actor, background=True, job=job, on_item=on_item)
    counts = dict(Counter(item.state for item in items))
    return {
        "action": action.value,
        "items": [asdict(i) for i in items],
        "counts": counts,
    }


def batch_items(job: Job) -> list[dict]:
    """The batch's per-entry rows for its page, each with the live state of its own
    verify job (one query for all of them)."""
    items = (job.result or {}).get("items") or (job.data or {}).get("items") or []
    items = [dict(i) for i in items]
    done = {i["name"] for i in items}
    for name in (job.params or {}).get("names") or []:
        if name not in done:
            message = (
                "Not run: the batch ended first." if job.is_terminal else "Waiting."
            )
            items.append({"name": name, "state": "pending", "message": message})
    ids = [i["job_id"] for i in items if i.get("job_id")]
    children = Job.objects.in_bulk(ids) if ids else {}
    for item in items:
        item["job"] = children.get(item.get("job_id"))
    return items


def batch_finished(job: Job, items: list[dict]) -> bool:
    return job.is_terminal and all(
        item["job"] is None or item["job"].is_terminal
        for item in items
        if item.get("state") == QUEUED
    )


__all__ = [
    "DONE",
    "FAILED",
    "MAX_ENTRIES",
    "QUEUED",
    "REFUSED",
    "UNCHANGED",
    "WILL",
    "BulkError",
    "BulkItem",
    "BulkPlan",
    "apply_one",
    "batch_finished",
    "batch_items",
    "bulk_job",
    "check_action",
    "plan_bulk",
    "resolve_entries",
    "run_bulk",
    "start_bulk",
]
