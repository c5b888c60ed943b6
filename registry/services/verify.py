"""Verify model files against their recorded hash, lock/unlock versions, the lock gate.

One algorithm everywhere: ``registry.hashing`` (algorithm A, parallel, with progress).
Lock state lives where the original keeps it (reference 2.5): the DISCOVERED layer's
``version_lock {locked, expected_aggregate_sha256, last_verified}`` and
``artifacts {aggregate_sha256, files: [{path, sha256}]}``, written only through
``writeback.change_entry`` (file first, one audit row per call).

Services (web jobs and the CLI call the same functions):

* :func:`verify` hashes the model directory. On success it stores ``artifacts`` and
  ``version_lock.last_verified`` (and, for a locked entry without an expected hash,
  seeds the expected hash, like the original). On a locked entry whose hash differs
  from the expected one it raises :class:`LockViolation`: nothing is written, the audit
  row is failed and lists both hashes and the per-file differences.
* :func:`lock` / :func:`unlock` set ``version_lock.locked``; ``lock(set_expected=True)``
  records the hash of a verify that is still current (or verifies first). Unlock keeps
  the expected hash.
* :func:`lock_gate` answers "is this entry's lock satisfied?" with a cheap ``stat`` of
  the model files (no re-hash).
* :func:`verify_job` / :func:`lock_job` are the task functions for ``registry.jobs``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils import timezone

from .. import hashing, layers, normalize
from ..audit import Actor, record
from ..choices import Action, Outcome
from ..jobs import JobCancelled, JobFailed, is_cancel_requested, log, progress
from ..models import ActionLog, Job, ModelEntry
from .writeback import EntryNotFound, change_entry, current_layers

__all__ = [
    "EntryNotFound",
    "GateResult",
    "LockOutcome",
    "LockViolation",
    "ModelFilesMissing",
    "NotApplicable",
    "OutsideModelRoots",
    "VerifyError",
    "VerifyOutcome",
    "cli_command",
    "lock",
    "lock_gate",
    "lock_job",
    "needs_verify_before_lock",
    "unlock",
    "verify",
    "verify_job",
]

ProgressCallback = Callable[[int, int], None]

NOT_APPLICABLE_MESSAGE = "Verify does not apply to Ollama tags (no local files)"
MAX_LISTED_FILES = 200  # per-file lists kept in audit details
CANCEL_CHECK_INTERVAL_S = 1.0


# --------------------------------------------------------------------------- errors


class VerifyError(Exception):
    """A verify/lock that could not be done; the message is shown to the operator."""


class NotApplicable(VerifyError):
    """The entry has no local files (an Ollama tag)."""


class ModelFilesMissing(VerifyError):
    """The model directory is not there (or no path is recorded)."""


class OutsideModelRoots(VerifyError):
    """The model path is outside ``settings.IMAGEWORKS_MODEL_ROOTS``."""


class LockViolation(VerifyError):
    """A locked entry's files do not hash to the expected aggregate. Nothing was written."""

    def __init__(
        self, name: str, expected: str, actual: str, diff: hashing.FileDiff | None
    ):
        self.name = name
        self.expected = expected
        self.actual = actual
        self.diff = diff
        super().__init__(
            f"Lock violation: expected {expected} got {actual} ({describe_diff(diff)})"
        )


def describe_diff(diff: hashing.FileDiff | None, limit: int = 5) -> str:
    """``"changed: config.json; added: extra.bin"`` (or why there is no list)."""
    if diff is None:
        return "no stored file list to compare"
    parts = []
    for label, paths in (
        ("changed", diff.changed),
        ("added", diff.added),
        ("removed", diff.removed),
    ):
        if paths:
            shown = ", ".join(paths[:limit])
            if len(paths) > limit:
                shown += f" (+{len(paths) - limit} more)"
            parts.append(f"{label}: {shown}")
    return "; ".join(parts) or "the stored file list has the same hashes"


# --------------------------------------------------------------------------- results


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


@dataclass(frozen=True)
class GateResult:
    ok: bool
    reason: str

    def __bool__(self) -> bool:
        return self.ok


# --------------------------------------------------------------------------- helpers


def cli_command(action: str, name: str) -> str:
    """The CLI equivalent of a drawer action, shell-quoted (shown in the confirm dialog)."""
    import shlex

    argv = {
        "verify": ["imageworks-models", "verify", name],
        "lock": ["imageworks-models", "lock", name, "--set-expected"],
        "unlock": ["imageworks-models", "unlock", name],
    }[action]
    return shlex.join(argv)


def _name_of(entry_or_name: ModelEntry | str) -> str:
    return (
        entry_or_name.name
        if isinstance(entry_or_name, ModelEntry)
        else str(entry_or_name)
    )


def _utc_stamp(moment: datetime) -> str:
    """UTC ISO seconds, like the original: ``2026-11-02T10:11:12+00:00``."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def _sub(merged: dict, key: str) -> dict:
    value = merged.get(key) if isinstance(merged, dict) else None
    return value if isinstance(value, dict) else {}


def _lock_state(merged: dict) -> tuple[bool, str]:
    lock = _sub(merged, "version_lock")
    expected = lock.get("expected_aggregate_sha256")
    return normalize.to_bool(lock.get("locked")), str(expected or "").strip().lower()


def _stored_files(merged: dict) -> list[dict]:
    files = _sub(merged, "artifacts").get("files")
    if not isinstance(files, list):
        return []
    return [f for f in files if isinstance(f, dict) and isinstance(f.get("path"), str)]


def _short_list(paths: list[str]) -> list[str]:
    return paths[:MAX_LISTED_FILES]


def _diff_details(diff: hashing.FileDiff | None) -> dict:
    if diff is None:
        return {"file_list_compared": False}
    return {
        "file_list_compared": True,
        "changed_files": _short_list(diff.changed),
        "added_files": _short_list(diff.added),
        "removed_files": _short_list(diff.removed),
    }


def model_roots() -> list[str]:
    return [
        str(r)
        for r in (getattr(settings, "IMAGEWORKS_MODEL_ROOTS", None) or [])
        if str(r)
    ]


def check_model_root(path: Path) -> None:
    """Refuse paths outside ``IMAGEWORKS_MODEL_ROOTS`` (when that list is set)."""
    roots = model_roots()
    if not roots:
        return
    real = os.path.realpath(path)
    for root in roots:
        real_root = os.path.realpath(Path(root).expanduser())
        if real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep):
            return
    raise OutsideModelRoots(
        f"Model path {path} is outside the allowed model roots ({', '.join(roots)}); "
        "add its folder to IMAGEWORKS_MODEL_ROOTS to verify it"
    )


def resolve_model_dir(merged: dict) -> Path:
    """The model directory (``backend_config.model_path``, else ``download_path``), ``~`` expanded.

    Raises :class:`NotApplicable` for Ollama tags, :class:`ModelFilesMissing` when no
    path is recorded, :class:`OutsideModelRoots` when the path is not allowed.
    """
    raw = normalize.model_dir(merged)
    backend = str(merged.get("backend") or "").strip().lower()
    if raw.startswith("ollama:") or (not raw and backend == "ollama"):
        raise NotApplicable(NOT_APPLICABLE_MESSAGE)
    if not raw:
        raise ModelFilesMissing(
            "No model path recorded (backend_config.model_path or download_path)"
        )
    path = Path(raw).expanduser()
    check_model_root(path)
    return path


def _current(name: str) -> layers.MergedEntry:
    current = current_layers(name)
    if current is None:
        raise EntryNotFound(name)
    return current


def _fail_row(
    actor: Actor,
    action: str,
    name: str,
    message: str,
    *,
    job: Job | None,
    started: float,
    details: dict | None = None,
) -> ActionLog:
    return record(
        actor,
        action,
        entry=ModelEntry.objects.filter(name=name).first(),
        entry_name=name,
        outcome=Outcome.FAILED,
        message=message,
        details=details,
        duration_ms=int((time.monotonic() - started) * 1000),
        job=job,
    )


# --------------------------------------------------------------------------- verify


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
    name = _name_of(entry_or_name)
    t0 = time.monotonic()
    details: dict[str, Any] = {}
    try:
        current = _current(name)
        merged = current.merged
        path = resolve_model_dir(merged)
        details["model_dir"] = str(path)
        locked, expected = _lock_state(merged)
        previous = str(_sub(merged, "artifacts").get("aggregate_sha256") or "")
        stored = _stored_files(merged)
        started_at = timezone.now()
        try:
            result = hashing.hash_directory(
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
            **_diff_details(diff),
        )
        if locked and expected and actual != expected:
            raise LockViolation(name, expected, actual, diff)
    except BaseException as exc:
        message = str(exc) or exc.__class__.__name__
        if isinstance(exc, hashing.HashCancelled):
            message = "Verify cancelled"
        if isinstance(exc, LockViolation):
            details["violation"] = True
        _fail_row(
            actor, Action.VERIFY, name, message, job=job, started=t0, details=details
        )
        raise

    stamp = _utc_stamp(started_at)
    seed = locked and not expected

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
            raise LockViolation(name, raw_expected, actual, diff)
        artifacts = dict(raw.get("artifacts") or {})
        artifacts["aggregate_sha256"] = actual
        artifacts["files"] = files
        raw["artifacts"] = artifacts
        lock.setdefault("locked", False)
        lock.setdefault("expected_aggregate_sha256", None)
        lock["last_verified"] = stamp
        if seed:
            lock["expected_aggregate_sha256"] = actual
        raw["version_lock"] = lock
        return raw

    summary = (
        f"Verified {name}: {actual[:12]} ({result.file_count} files, "
        f"{_human_bytes(result.total_bytes)} in {result.elapsed_s:.1f} s)"
    )
    if previous and previous != actual:
        summary += f"; hash changed from {previous[:12]} ({describe_diff(diff)})"
    if seed:
        summary += "; expected hash recorded (the entry is locked)"
    res = change_entry(
        actor,
        Action.VERIFY,
        name,
        layers.DISCOVERED,
        mutate,
        message=summary,
        details={**details, "seeded_expected": seed, "last_verified": stamp},
        job=job,
    )
    # DB-only: who verified, and the exact start time (the file keeps whole seconds).
    ModelEntry.objects.filter(name=name).update(
        last_verified_by=actor.name[:150], last_verified_at=started_at
    )
    return VerifyOutcome(
        name=name,
        aggregate_sha256=actual,
        previous_sha256=previous,
        expected_sha256=actual if seed else expected,
        locked=locked,
        last_verified=stamp,
        model_dir=str(path),
        files=result.file_count,
        total_bytes=result.total_bytes,
        elapsed_s=result.elapsed_s,
        seeded_expected=seed,
        diff=diff,
        skipped=list(result.skipped),
        action=res.action,
    )


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"


# --------------------------------------------------------------------------- lock / unlock


def needs_verify_before_lock(entry: ModelEntry) -> bool:
    """True when ``lock(set_expected=True)`` would have to hash first.

    It can reuse the last verify only if one is recorded and the files have not
    changed since (the same cheap check as the lock gate).
    """
    if entry.locked and entry.expected_sha256:
        return False
    if not entry.has_local_files:
        return False
    return _last_verify_stale(entry) is not None


def _last_verify_stale(entry: ModelEntry) -> str | None:
    """Why the entry's last verify cannot be trusted now (None: it can)."""
    if not entry.aggregate_sha256:
        return "never verified"
    if entry.last_verified_at is None:
        return "no verify time recorded"
    try:
        path = Path(entry.model_dir).expanduser()
    except (TypeError, ValueError):
        return "no model path"
    return _changed_since(
        path, entry.last_verified_at, _stored_files(entry.merged or {})
    )


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
    """
    t0 = time.monotonic()
    try:
        current = _current(name)
        locked, expected = _lock_state(current.merged)
        if set_expected and locked and expected:
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
                duration_ms=int((time.monotonic() - t0) * 1000),
                job=job,
            )
            return LockOutcome(name, True, expected, message, action=row)
        verified = None
        new_expected = expected
        if set_expected:
            resolve_model_dir(current.merged)  # NotApplicable / roots, before hashing
            row = ModelEntry.objects.filter(name=name).first()
            if (
                row is None
                or needs_verify_before_lock(row)
                or _mirror_stale(row, current)
            ):
                verified = verify(
                    name, actor, job=job, on_progress=on_progress, cancel=cancel
                )
                new_expected = verified.aggregate_sha256
            else:
                new_expected = row.aggregate_sha256
    except EntryNotFound as exc:
        _fail_row(actor, Action.LOCK, name, str(exc), job=job, started=t0)
        raise
    except (NotApplicable, OutsideModelRoots) as exc:
        _fail_row(actor, Action.LOCK, name, str(exc), job=job, started=t0)
        raise

    def mutate(raw: dict | None) -> dict:
        raw = raw if isinstance(raw, dict) else {"name": name}
        lock_state = dict(raw.get("version_lock") or {})
        lock_state["locked"] = True
        if set_expected:
            lock_state["expected_aggregate_sha256"] = new_expected
        else:
            lock_state.setdefault("expected_aggregate_sha256", None)
        lock_state.setdefault("last_verified", None)
        raw["version_lock"] = lock_state
        return raw

    message = f"Locked {name}"
    if new_expected:
        message += f" (expected {new_expected[:12]})"
    else:
        message += " (no expected hash yet: the next verify records it)"
    res = change_entry(
        actor,
        Action.LOCK,
        name,
        layers.DISCOVERED,
        mutate,
        message=message,
        details={
            "expected": new_expected or None,
            "set_expected": set_expected,
            "verified_now": verified is not None,
        },
        job=job,
    )
    _check_effective(res.entry, name, locked=True)
    return LockOutcome(
        name, True, new_expected, message, verified=verified, action=res.action
    )


def unlock(name: str, actor: Actor, *, job: Job | None = None) -> LockOutcome:
    """Unlock an entry; the expected hash is kept for the record (like the original)."""

    def mutate(raw: dict | None) -> dict:
        raw = raw if isinstance(raw, dict) else {"name": name}
        lock_state = dict(raw.get("version_lock") or {})
        lock_state["locked"] = False
        lock_state.setdefault("expected_aggregate_sha256", None)
        lock_state.setdefault("last_verified", None)
        raw["version_lock"] = lock_state
        return raw

    res = change_entry(
        actor,
        Action.UNLOCK,
        name,
        layers.DISCOVERED,
        mutate,
        message=f"Unlocked {name}",
        job=job,
    )
    _check_effective(res.entry, name, locked=False)
    expected = res.entry.expected_sha256 if res.entry else ""
    return LockOutcome(name, False, expected, f"Unlocked {name}", action=res.action)


def _mirror_stale(row: ModelEntry, current: layers.MergedEntry) -> bool:
    return row.fingerprint != current.fingerprint


def _check_effective(entry: ModelEntry | None, name: str, *, locked: bool) -> None:
    """The curated layer wins the merge: a hand-edited curated ``version_lock`` can hide ours."""
    if entry is not None and entry.locked != locked:
        raise VerifyError(
            f"The discovered layer was updated but the curated layer's version_lock "
            f"overrides it for {name}; remove version_lock from the curated entry"
        )


# --------------------------------------------------------------------------- lock gate


def _changed_since(path: Path, since: datetime, stored: list[dict]) -> str | None:
    """Why the files may differ from what was hashed at ``since`` (None: unchanged).

    A cheap check: the file list (same set as the hash) against the stored one, and
    every file's mtime (symlinks followed) against ``since``.
    """
    try:
        files = hashing.list_model_files(path)
    except hashing.HashError as exc:
        return str(exc)
    if stored:
        diff = hashing.compare_files(
            [{"path": f["path"], "sha256": ""} for f in stored],
            [{"path": rel, "sha256": ""} for rel, _, _ in files],
        )
        if diff.added or diff.removed:
            return f"files {describe_diff(diff)} since the last verify"
    limit = since.timestamp()
    newest: tuple[float, str] | None = None
    for rel, file_path, _ in files:
        try:
            mtime = os.stat(file_path).st_mtime
        except OSError as exc:
            return f"cannot read {rel}: {exc.strerror or exc}"
        if mtime > limit and (newest is None or mtime > newest[0]):
            newest = (mtime, rel)
    if newest is None:
        return None
    when = datetime.fromtimestamp(newest[0], UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"files changed on {when} ({newest[1]})"


def lock_gate(entry: ModelEntry) -> GateResult:
    """Is this entry's lock satisfied? (For activation; cheap: ``stat`` only, no hash.)

    Unlocked entries, locked entries without an expected hash, and entries without
    local files pass. A locked entry with an expected hash passes only if its last
    verify found exactly the expected aggregate and no model file was added, removed
    or modified (mtime) since that verify.
    """
    if not entry.locked:
        return GateResult(True, "Not locked")
    expected = (entry.expected_sha256 or "").lower()
    if not expected:
        return GateResult(
            True, "Locked without an expected hash (the next verify records it)"
        )
    if not entry.has_local_files:
        return GateResult(True, "No local files to check (Ollama tag)")
    actual = (entry.aggregate_sha256 or "").lower()
    if not actual or entry.last_verified_at is None:
        return GateResult(False, "Locked hash has never been verified — run Verify")
    if actual != expected:
        return GateResult(
            False,
            f"Last verify found {actual[:12]}, the locked hash is {expected[:12]} — run Verify",
        )
    path = Path(entry.model_dir).expanduser()
    if not path.is_dir():
        return GateResult(False, f"Model files not found at {path}")
    why = _changed_since(
        path, entry.last_verified_at, _stored_files(entry.merged or {})
    )
    if why:
        return GateResult(False, f"Locked hash not verified since {why} — run Verify")
    when = timezone.localtime(entry.last_verified_at).strftime("%Y-%m-%d %H:%M")
    return GateResult(True, f"Locked hash verified on {when}; files unchanged since")


# --------------------------------------------------------------------------- jobs


def _job_actor(job: Job) -> Actor:
    return Actor(name=job.user_name or "system", source=job.source, user=job.user)


class _JobProgress:
    """``hash_directory`` progress -> ``Job`` progress with bytes/s, plus cancel checks."""

    def __init__(self, job: Job, label: str):
        self.job = job
        self.label = label
        self.cancel = threading.Event()
        self.started = time.monotonic()
        self.last_cancel_check = 0.0

    def __call__(self, done: int, total: int) -> None:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        fraction = done / total if total else 1.0
        progress(
            self.job,
            fraction,
            f"{self.label}: {int(fraction * 100)}%",
            bytes_done=done,
            bytes_total=total,
            rate_bps=int(done / elapsed),
        )
        now = time.monotonic()
        if now - self.last_cancel_check >= CANCEL_CHECK_INTERVAL_S:
            self.last_cancel_check = now
            if is_cancel_requested(self.job):
                self.cancel.set()


def _run_in_job(job: Job, func: Callable[[_JobProgress], dict]) -> dict:
    tracker = _JobProgress(job, "Hashing")
    progress(job, 0.0, f"Hashing the files of {job.entry_name}")
    try:
        return func(tracker)
    except hashing.HashCancelled:
        raise JobCancelled("Verify cancelled")
    except (VerifyError, EntryNotFound, layers.RegistryError) as exc:
        raise JobFailed(str(exc))


def verify_job(job: Job) -> dict:
    """Task: verify ``job.entry_name`` (progress: bytes_done/bytes_total/rate_bps)."""

    def run(tracker: _JobProgress) -> dict:
        outcome = verify(
            job.entry_name,
            _job_actor(job),
            job=job,
            on_progress=tracker,
            cancel=tracker.cancel,
        )
        log(job, outcome.action.message if outcome.action else "Verified")
        progress(job, 1.0, f"Verified: {outcome.aggregate_sha256[:12]}")
        return outcome.as_result()

    return _run_in_job(job, run)


def lock_job(job: Job) -> dict:
    """Task: verify if needed, then lock with the expected hash (the UI's Lock)."""

    def run(tracker: _JobProgress) -> dict:
        outcome = lock(
            job.entry_name,
            _job_actor(job),
            set_expected=bool((job.params or {}).get("set_expected", True)),
            job=job,
            on_progress=tracker,
            cancel=tracker.cancel,
        )
        log(job, outcome.message)
        progress(job, 1.0, outcome.message)
        return outcome.as_result()

    return _run_in_job(job, run)
