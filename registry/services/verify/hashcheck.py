"""Verify: hash a model's files (algorithm A) and record the result, file first."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from ... import hashing, layers, normalize
from ...audit import Actor
from ...choices import Action
from ...fingerprint import FINGERPRINT_KEY, fast_fingerprint
from ...models import ActionLog, Job, ModelEntry
from ..writeback import change_entry
from .common import (
    MAX_LISTED_FILES,
    current_entry,
    diff_details,
    fail_row,
    human_bytes,
    lock_state,
    name_of,
    resolve_model_dir,
    stored_files,
    sub,
    utc_stamp,
)
from .errors import LockViolation, ModelFilesMissing, VerifyError, describe_diff

ProgressCallback = Callable[[int, int], None]


@dataclass
class VerifyOutcome:
    """What a successful verify found and stored."""

    name: str
    aggregate_sha256: str
    previous_sha256: str
    expected_sha256: str
    locked: bool
    last_verified: str
    model_dir: str
    files: int
    total_bytes: int
    elapsed_s: float
    seeded_expected: bool = False
    diff: hashing.FileDiff | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    action: ActionLog | None = None

    @property
    def changed(self) -> bool:
        return (
            bool(self.previous_sha256) and self.previous_sha256 != self.aggregate_sha256
        )

    def as_json(self) -> dict[str, Any]:
        """The CLI output, like the original's ``verify``."""
        return {
            "name": self.name,
            "aggregate_sha256": self.aggregate_sha256,
            "last_verified": self.last_verified,
            "locked": self.locked,
        }

    def as_result(self) -> dict[str, Any]:
        """Small JSON for ``Job.result``."""
        return {
            "name": self.name,
            "aggregate_sha256": self.aggregate_sha256,
            "previous_sha256": self.previous_sha256,
            "expected_sha256": self.expected_sha256,
            "locked": self.locked,
            "last_verified": self.last_verified,
            "files": self.files,
            "total_bytes": self.total_bytes,
            "elapsed_s": round(self.elapsed_s, 3),
            "seeded_expected": self.seeded_expected,
        }


@dataclass
class _Hashed:
    """What a verify found, before anything is written."""

    name: str
    path: Path
    locked: bool
    expected: str
    previous: str
    started_at: datetime
    result: hashing.HashResult
    files: list[dict]
    #: Size + mtime of the files before hashing: refreshes the lock's fingerprint
    #: when a locked entry verifies clean (so preflight's "run Verify" fix works).
    diff: hashing.FileDiff | None
    fingerprint: dict | None = None

    @property
    def actual(self) -> str:
        return self.result.aggregate_sha256


def verify(
    entry_or_name: ModelEntry | str,
    actor: Actor,
    *,
    job: Job | None = None,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> VerifyOutcome:
    """Hash a model's files (algorithm A) and record the result, file first.

    Reads the entry from the layer files (not the mirror). Raises
    :class:`EntryNotFound`, :class:`NotApplicable` (Ollama tags),
    :class:`ModelFilesMissing` ("model files not found at PATH"),
    :class:`OutsideModelRoots`, :class:`LockViolation` (locked entry, hash differs from
    the expected one: nothing is written) or ``hashing.HashCancelled``. Every failure
    writes one failed ``verify`` audit row; success writes one through
    ``change_entry`` with the hashes, file counts and per-file differences.
    ``on_progress(bytes_done, bytes_total)`` is called while hashing.
    """
    name = name_of(entry_or_name)
    t0 = time.monotonic()
    details: dict[str, Any] = {}
    try:
        found = _hash_entry(name, actor, details, on_progress, cancel)
    except BaseException as exc:
        message = str(exc) or exc.__class__.__name__
        if isinstance(exc, hashing.HashCancelled):
            message = "Verify cancelled"
        if isinstance(exc, LockViolation):
            details["violation"] = True
        fail_row(
            actor, Action.VERIFY, name, message, job=job, started=t0, details=details
        )
        if isinstance(exc, LockViolation):
            # Nothing is written, but the Models table now shows a red padlock.
            from registry.version import bump

            bump(listing=False)
        raise
    return _record(found, actor, details, job)


def _hash_entry(
    name: str,
    actor: Actor,
    details: dict[str, Any],
    on_progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> _Hashed:
    """Hash the entry's files and compare with what is recorded; writes nothing.

    Fills *details* (for the audit row) as it goes, so a failure row says how far it
    got. Raises :class:`LockViolation` for a locked entry whose hash differs.
    """
    merged = current_entry(name, actor).merged
    path = resolve_model_dir(merged)
    details["model_dir"] = str(path)
    locked, expected = lock_state(merged)
    previous = str(sub(merged, "artifacts").get("aggregate_sha256") or "")
    stored = stored_files(merged)
    started_at = timezone.now()
    fingerprint = _fingerprint(path) if locked else None
    result = _hash_directory(path, on_progress, cancel)
    actual = result.aggregate_sha256
    files = result.files_as_artifacts()
    diff = hashing.compare_files(stored, files) if stored else None
    details.update(
        expected=expected or None,
        actual=actual,
        previous=previous or None,
        locked=locked,
        files=result.file_count,
        bytes=result.total_bytes,
        hash_seconds=round(result.elapsed_s, 3),
        skipped=[f"{p} ({why})" for p, why in result.skipped[:MAX_LISTED_FILES]],
        **diff_details(diff),
    )
    if locked and expected and actual != expected:
        raise LockViolation(name, expected, actual, diff)
    return _Hashed(
        name,
        path,
        locked,
        expected,
        previous,
        started_at,
        result,
        files,
        diff,
        fingerprint,
    )


def _fingerprint(path: Path) -> dict | None:
    try:
        return fast_fingerprint(path)
    except hashing.HashError:
        return None


def _hash_directory(
    path: Path,
    on_progress: ProgressCallback | None,
    cancel: threading.Event | None,
) -> hashing.HashResult:
    try:
        return hashing.hash_directory(
            path,
            workers=getattr(settings, "IMAGEWORKS_HASH_WORKERS", None),
            progress=on_progress,
            cancel=cancel,
        )
    except hashing.HashCancelled:
        raise
    except hashing.HashError as exc:
        text = str(exc)
        if text.startswith("model files not found"):
            raise ModelFilesMissing(text) from None
        raise VerifyError(text) from None


def _record(
    found: _Hashed, actor: Actor, details: dict[str, Any], job: Job | None
) -> VerifyOutcome:
    """Store the hashes in the discovered layer (one audit row) and the mirror."""
    name, result = found.name, found.result
    stamp = utc_stamp(found.started_at)
    seed = found.locked and not found.expected
    res = change_entry(
        actor,
        Action.VERIFY,
        name,
        layers.DISCOVERED,
        _store_hashes(found, stamp, seed),
        message=_summary(found, seed),
        details={**details, "seeded_expected": seed, "last_verified": stamp},
        job=job,
    )
    # DB-only: who verified, and the exact start time (the file keeps whole seconds).
    ModelEntry.objects.filter(name=name).update(
        last_verified_by=actor.name[:150], last_verified_at=found.started_at
    )
    return VerifyOutcome(
        name=name,
        aggregate_sha256=found.actual,
        previous_sha256=found.previous,
        expected_sha256=found.actual if seed else found.expected,
        locked=found.locked,
        last_verified=stamp,
        model_dir=str(found.path),
        files=result.file_count,
        total_bytes=result.total_bytes,
        elapsed_s=result.elapsed_s,
        seeded_expected=seed,
        diff=found.diff,
        skipped=list(result.skipped),
        action=res.action,
    )


def _store_hashes(found: _Hashed, stamp: str, seed: bool):
    """The ``change_entry`` mutator: artifacts and ``version_lock.last_verified``."""
    name, actual = found.name, found.actual

    def mutate(raw: dict | None) -> dict:
        raw = raw if isinstance(raw, dict) else {"name": name}
        lock = dict(raw.get("version_lock") or {})
        raw_expected = str(lock.get("expected_aggregate_sha256") or "").lower()
        if (
            normalize.to_bool(lock.get("locked"))
            and raw_expected
            and raw_expected != actual
        ):
            # Locked by someone else while we were hashing: still a violation.
            raise LockViolation(name, raw_expected, actual, found.diff)
        artifacts = dict(raw.get("artifacts") or {})
        artifacts["aggregate_sha256"] = actual
        artifacts["files"] = found.files
        raw["artifacts"] = artifacts
        lock.setdefault("locked", False)
        lock.setdefault("expected_aggregate_sha256", None)
        lock["last_verified"] = stamp
        if seed:
            lock["expected_aggregate_sha256"] = actual
        if found.fingerprint is not None and normalize.to_bool(lock.get("locked")):
            # The files hash to the locked version: they are the lock's files now.
            lock[FINGERPRINT_KEY] = found.fingerprint
        raw["version_lock"] = lock
        return raw

    return mutate


def _summary(found: _Hashed, seed: bool) -> str:
    result, actual, previous = found.result, found.actual, found.previous
    summary = (
        f"Verified {found.name}: {actual[:12]} ({result.file_count} files, "
        f"{human_bytes(result.total_bytes)} in {result.elapsed_s:.1f} s)"
    )
    if previous and previous != actual:
        summary += f"; hash changed from {previous[:12]} ({describe_diff(found.diff)})"
    if seed:
        summary += "; expected hash recorded (the entry is locked)"
    return summary
