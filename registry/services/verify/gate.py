"""The lock gate: is a locked entry's last verify still current? (``stat`` only)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from django.utils import timezone

from ... import hashing
from ...models import ModelEntry
from ...normalize import local_path
from .common import stored_files
from .errors import describe_diff


@dataclass(frozen=True)
class GateResult:
    ok: bool
    reason: str

    def __bool__(self) -> bool:
        return self.ok


def changed_since(path: Path, since: datetime, stored: list[dict]) -> str | None:
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


def last_verify_stale(entry: ModelEntry) -> str | None:
    """Why the entry's last verify cannot be trusted now (None: it can)."""
    if not entry.aggregate_sha256:
        return "never verified"
    if entry.last_verified_at is None:
        return "no verify time recorded"
    try:
        path = local_path(entry.model_dir)
    except (TypeError, ValueError):
        return "no model path"
    return changed_since(path, entry.last_verified_at, stored_files(entry.merged or {}))


def needs_verify_before_lock(entry: ModelEntry) -> bool:
    """True when ``lock(set_expected=True)`` would have to hash first.

    It can reuse the last verify only if one is recorded and the files have not
    changed since (the same cheap check as the lock gate).
    """
    if entry.locked and entry.expected_sha256:
        return False
    if not entry.has_local_files:
        return False
    return last_verify_stale(entry) is not None


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
    path = local_path(entry.model_dir)
    if not path.is_dir():
        return GateResult(False, f"Model files not found at {path}")
    why = changed_since(path, entry.last_verified_at, stored_files(entry.merged or {}))
    if why:
        return GateResult(False, f"Locked hash not verified since {why} — run Verify")
    when = timezone.localtime(entry.last_verified_at).strftime("%Y-%m-%d %H:%M")
    return GateResult(True, f"Locked hash verified on {when}; files unchanged since")
