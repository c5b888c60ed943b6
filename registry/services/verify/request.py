"""What a front end asks for (the site's drawer, the CLI, the coming API): one rule
each for "verify this entry" and "lock this entry", so every front end gets the same
answer. The caller renders the outcome; nothing here knows about requests or HTML.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied

from ... import layers
from ...audit import Actor
from ...choices import JobKind, JobStatus, LockRequestStatus
from ...jobs import JobConflict, enqueue, live_job
from ...models import Job, ModelEntry
from ..writeback import EntryNotFound
from .errors import NOT_APPLICABLE_MESSAGE, VerifyError
from .gate import needs_verify_before_lock
from .hashcheck import ProgressCallback
from .locking import LockOutcome, lock

LOCK_NOT_APPLICABLE_MESSAGE = "Lock does not apply to Ollama tags (no local files)"


def busy_message(job: Job) -> str:
    who = f" by {job.user_name}" if job.user_name else ""
    return f"A verify job is already running for {job.entry_name}{who}."


def live_verify_job(name: str) -> Job | None:
    """The queued or running verify (or verify-then-lock) job of an entry."""
    return live_job(JobKind.VERIFY, name)


@dataclass(frozen=True)
class VerifyRequest:
    """A queued verify job, or why none was queued (``refusal``; ``job`` is then the
    live job that is in the way, if any)."""

    job: Job | None
    refusal: str = ""


def request_verify(entry: ModelEntry, actor: Actor) -> VerifyRequest:
    """Queue a verify job for *entry*; refused for Ollama tags and while one is live."""
    if not entry.has_local_files:
        return VerifyRequest(None, NOT_APPLICABLE_MESSAGE)
    try:
        job = enqueue(
            JobKind.VERIFY,
            actor=actor,
            entry=entry,
            message=f"Queued: verify {entry.name}",
        )
    except JobConflict as exc:
        existing = exc.existing
        return VerifyRequest(existing, busy_message(existing) if existing else str(exc))
    return VerifyRequest(job)


@dataclass(frozen=True)
class LockRequest:
    """What became of a lock request. ``error``: show the message as an error;
    ``changed``: the entry may have changed (refresh its row and drawer); ``job``:
    the verify-then-lock job queued, or the live one that refused the request."""

    status: LockRequestStatus
    message: str
    error: bool = False
    changed: bool = False
    job: Job | None = None
    outcome: LockOutcome | None = None


def request_lock(
    entry: ModelEntry | str,
    actor: Actor,
    *,
    set_expected: bool = True,
    background: bool = True,
    on_progress: ProgressCallback | None = None,
) -> LockRequest:
    """Lock an entry for a front end: the drawer's Lock, ``imageworks-models lock``.

    The rule, in order: refused while a verify (or verify-then-lock) job of the entry
    is live. With *set_expected* (the drawer always; the CLI with
    ``--set-expected``): an entry already locked with an expected hash is left as it
    is, and one without local files (an Ollama tag) is refused. When the last verify
    is not current a verify runs first: in a background job (*background*, the site;
    the actor needs ``registry.verify_entry`` too, else ``PermissionDenied``) or
    inline (the CLI, with *on_progress*). Otherwise the entry is locked now. Service
    errors (unknown entry, lock violation, read-only file...) come back as FAILED.
    """
    row = entry if isinstance(entry, ModelEntry) else _row(entry)
    name = row.name if row is not None else str(entry)
    live = live_verify_job(name)
    if live is not None:
        return LockRequest(
            LockRequestStatus.BUSY, busy_message(live), error=True, job=live
        )
    if row is not None and set_expected:
        if row.locked and row.expected_sha256:
            message = f"{name} is already locked."
            return LockRequest(LockRequestStatus.ALREADY_LOCKED, message)
        if not row.has_local_files:
            return LockRequest(
                LockRequestStatus.NOT_APPLICABLE,
                LOCK_NOT_APPLICABLE_MESSAGE,
                error=True,
            )
        if background and needs_verify_before_lock(row):
            broken = _broken_file(actor)
            if broken:  # the lock could not be written: say so now, queue nothing
                return LockRequest(LockRequestStatus.FAILED, broken, error=True)
            return _queue_verify_then_lock(row, actor)
    try:
        outcome = lock(name, actor, set_expected=set_expected, on_progress=on_progress)
    except (VerifyError, EntryNotFound, layers.RegistryError) as exc:
        return LockRequest(LockRequestStatus.FAILED, str(exc), error=True, changed=True)
    return LockRequest(
        LockRequestStatus.LOCKED, outcome.message, changed=True, outcome=outcome
    )


def _broken_file(actor: Actor) -> str:
    """The error of a broken registry file (after a cheap sync), else ""."""
    from ..sync import sync_registry

    result = sync_registry(actor, explicit=False)
    return result.error if result.broken else ""


def _row(name: str) -> ModelEntry | None:
    return ModelEntry.objects.filter(name=name.strip()).first()


def _queue_verify_then_lock(entry: ModelEntry, actor: Actor) -> LockRequest:
    if not actor.may("registry.verify_entry"):
        raise PermissionDenied("Your role may not do that.")
    try:
        job = enqueue(
            JobKind.VERIFY,
            actor=actor,
            entry=entry,
            params={"then_lock": True},
            message=f"Queued: verify, then lock {entry.name}",
        )
    except JobConflict as exc:
        existing = exc.existing
        text = busy_message(existing) if existing else str(exc)
        return LockRequest(LockRequestStatus.BUSY, text, error=True, job=existing)
    job.refresh_from_db()  # inline task runners may have finished it already
    if job.status == JobStatus.FAILED:
        return LockRequest(
            LockRequestStatus.QUEUED,
            job.error or job.message,
            error=True,
            changed=True,
            job=job,
        )
    if job.is_terminal:
        return LockRequest(LockRequestStatus.QUEUED, job.message, changed=True, job=job)
    message = f"Verifying {entry.name}; it is locked when the hash is recorded."
    return LockRequest(LockRequestStatus.QUEUED, message, job=job)
