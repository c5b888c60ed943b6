"""Lock and unlock an entry's version (``version_lock`` in the discovered layer).

Locking also records the fast fingerprint of the model files (size + mtime per
file, ``version_lock.fast_fingerprint``), which activation preflight compares to
catch a locked model whose files changed since, without hashing.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from ... import hashing, layers
from ...audit import Actor, record
from ...choices import Action
from ...fingerprint import FINGERPRINT_KEY, fast_fingerprint
from ...models import ActionLog, Job, ModelEntry
from ..writeback import EntryNotFound, change_entry
from .common import current_entry, fail_row, lock_state, resolve_model_dir
from .errors import ModelFilesMissing, NotApplicable, OutsideModelRoots, VerifyError
from .gate import needs_verify_before_lock
from .hashcheck import ProgressCallback, VerifyOutcome, verify


@dataclass
class LockOutcome:
    name: str
    locked: bool
    expected_sha256: str
    message: str
    verified: VerifyOutcome | None = None
    action: ActionLog | None = None

    def as_result(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "locked": self.locked,
            "expected_sha256": self.expected_sha256,
            "verified_now": self.verified is not None,
            "aggregate_sha256": self.verified.aggregate_sha256 if self.verified else "",
        }


def lock(
    name: str,
    actor: Actor,
    *,
    set_expected: bool = False,
    job: Job | None = None,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> LockOutcome:
    """Lock an entry's version (``version_lock.locked = true`` in the discovered layer).

    Without ``set_expected`` (the original's ``lock NAME``) the expected hash stays as
    it is; an empty one is seeded by the next verify. With ``set_expected`` (what the
    UI does) the expected hash is the aggregate of the last verify if the files have
    not changed since, else a verify runs first (with ``job``/``on_progress``). An
    entry that is already locked with an expected hash is left as it is: unlock first
    to record a new one. Raises :class:`EntryNotFound`, :class:`NotApplicable` (set
    expected on an Ollama tag) and the verify errors.

    Long on purpose: the lock gate's cases (already locked, stale hash, verify
    first, write) read top to bottom in the order they are decided.
    """
    t0 = time.monotonic()
    try:
        current = current_entry(name, actor)
        locked, expected = lock_state(current.merged)
        if set_expected and locked and expected:
            return _already_locked(name, expected, actor, job=job, started=t0)
        verified, new_expected = None, expected
        if set_expected:
            verified, new_expected = _expected_hash(
                current, actor, job=job, on_progress=on_progress, cancel=cancel
            )
    except (EntryNotFound, NotApplicable, OutsideModelRoots) as exc:
        fail_row(actor, Action.LOCK, name, str(exc), job=job, started=t0)
        raise
    message = f"Locked {name}"
    if new_expected:
        message += f" (expected {new_expected[:12]})"
    else:
        message += " (no expected hash yet: the next verify records it)"
    # Already locked to an expected hash: only a verify may accept the files now.
    fingerprint = None if locked and expected else _fast_fingerprint(current.merged)
    res = change_entry(
        actor,
        Action.LOCK,
        name,
        layers.DISCOVERED,
        _set_lock(
            name,
            True,
            set_expected=set_expected,
            expected=new_expected,
            fingerprint=fingerprint,
        ),
        message=message,
        details={
            "expected": new_expected or None,
            "set_expected": set_expected,
            "verified_now": verified is not None,
            "fingerprint_files": len(fingerprint["files"]) if fingerprint else None,
        },
        job=job,
    )
    _check_effective(res.entry, name, locked=True)
    return LockOutcome(
        name, True, new_expected, message, verified=verified, action=res.action
    )


def _already_locked(
    name: str, expected: str, actor: Actor, *, job: Job | None, started: float
) -> LockOutcome:
    """Nothing to write: one audit row saying so (``details["no_change"]``)."""
    message = (
        f"{name} is already locked (expected {expected[:12]}); "
        "unlock it first to record a new expected hash"
    )
    row = record(
        actor,
        Action.LOCK,
        entry=ModelEntry.objects.filter(name=name).first(),
        entry_name=name,
        message=message,
        details={"expected": expected, "no_change": True},
        duration_ms=int((time.monotonic() - started) * 1000),
        job=job,
    )
    return LockOutcome(name, True, expected, message, action=row)


def _expected_hash(
    current: layers.MergedEntry,
    actor: Actor,
    *,
    job: Job | None,
    on_progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> tuple[VerifyOutcome | None, str]:
    """The hash to lock to: the last verify's when still current, else verify now."""
    name = current.name
    resolve_model_dir(current.merged)  # NotApplicable / roots, before hashing
    row = ModelEntry.objects.filter(name=name).first()
    if (
        row is None
        or needs_verify_before_lock(row)
        or row.fingerprint != current.fingerprint  # the mirror is behind the files
    ):
        verified = verify(name, actor, job=job, on_progress=on_progress, cancel=cancel)
        return verified, verified.aggregate_sha256
    return None, row.aggregate_sha256


def _fast_fingerprint(merged: dict) -> dict | None:
    """Size + mtime of every model file now (``registry.fingerprint``), recorded with
    the lock so activation preflight can tell in milliseconds whether a locked
    model's files changed since. None when the entry has no local folder to read."""
    try:
        return fast_fingerprint(resolve_model_dir(merged))
    except (NotApplicable, ModelFilesMissing, OutsideModelRoots, hashing.HashError):
        return None


def _set_lock(
    name: str,
    locked: bool,
    *,
    set_expected: bool,
    expected: str = "",
    fingerprint: dict | None = None,
):
    """The ``change_entry`` mutator for ``version_lock.locked`` (and the expected
    hash, and the fast fingerprint of the files when locking)."""

    def mutate(raw: dict | None) -> dict:
        raw = raw if isinstance(raw, dict) else {"name": name}
        lock_state = dict(raw.get("version_lock") or {})
        lock_state["locked"] = locked
        if set_expected:
            lock_state["expected_aggregate_sha256"] = expected
        else:
            lock_state.setdefault("expected_aggregate_sha256", None)
        lock_state.setdefault("last_verified", None)
        if locked and fingerprint is not None:
            lock_state[FINGERPRINT_KEY] = fingerprint
        raw["version_lock"] = lock_state
        return raw

    return mutate


def unlock(name: str, actor: Actor, *, job: Job | None = None) -> LockOutcome:
    """Unlock an entry; the expected hash is kept for the record (like the original)."""
    res = change_entry(
        actor,
        Action.UNLOCK,
        name,
        layers.DISCOVERED,
        _set_lock(name, False, set_expected=False),
        message=f"Unlocked {name}",
        job=job,
    )
    _check_effective(res.entry, name, locked=False)
    expected = res.entry.expected_sha256 if res.entry else ""
    return LockOutcome(name, False, expected, f"Unlocked {name}", action=res.action)


def _check_effective(entry: ModelEntry | None, name: str, *, locked: bool) -> None:
    """The curated layer wins the merge: a hand-edited curated ``version_lock`` can hide ours."""
    if entry is not None and entry.locked != locked:
        raise VerifyError(
            f"The discovered layer was updated but the curated layer's version_lock "
            f"overrides it for {name}; remove version_lock from the curated entry"
        )
