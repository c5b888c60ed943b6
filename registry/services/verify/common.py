"""Helpers the verify, lock and gate modules share: reading lock state and file
lists from a merged entry, the model directory and its allowed roots, failed rows."""

from __future__ import annotations

import os
import shlex
import time
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings

from ... import hashing, layers, normalize
from ...audit import Actor, record
from ...choices import Outcome
from ...models import ActionLog, Job, ModelEntry
from ...normalize import local_path
from ..writeback import EntryNotFound, current_layers
from .errors import (
    NOT_APPLICABLE_MESSAGE,
    ModelFilesMissing,
    NotApplicable,
    OutsideModelRoots,
)

MAX_LISTED_FILES = 200  # per-file lists kept in audit details


def cli_command(action: str, name: str) -> str:
    """The CLI equivalent of a drawer action, shell-quoted (shown in the confirm dialog)."""
    argv = {
        "verify": ["imageworks-models", "verify", name],
        "lock": ["imageworks-models", "lock", name, "--set-expected"],
        "unlock": ["imageworks-models", "unlock", name],
    }[action]
    return shlex.join(argv)


def name_of(entry_or_name: ModelEntry | str) -> str:
    return (
        entry_or_name.name
        if isinstance(entry_or_name, ModelEntry)
        else str(entry_or_name)
    )


def utc_stamp(moment: datetime) -> str:
    """UTC ISO seconds, like the original: ``2026-11-02T10:11:12+00:00``."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def sub(merged: dict, key: str) -> dict:
    """``merged[key]`` when it is a dict, else an empty dict."""
    value = merged.get(key) if isinstance(merged, dict) else None
    return value if isinstance(value, dict) else {}


def lock_state(merged: dict) -> tuple[bool, str]:
    """``(locked, expected aggregate in lower case or "")`` of a merged entry."""
    lock = sub(merged, "version_lock")
    expected = lock.get("expected_aggregate_sha256")
    return normalize.to_bool(lock.get("locked")), str(expected or "").strip().lower()


def stored_files(merged: dict) -> list[dict]:
    """The per-file hashes the last verify stored (``artifacts.files``)."""
    files = sub(merged, "artifacts").get("files")
    if not isinstance(files, list):
        return []
    return [f for f in files if isinstance(f, dict) and isinstance(f.get("path"), str)]


def diff_details(diff: hashing.FileDiff | None) -> dict:
    """The per-file differences for an audit row (bounded lists)."""
    if diff is None:
        return {"file_list_compared": False}
    return {
        "file_list_compared": True,
        "changed_files": diff.changed[:MAX_LISTED_FILES],
        "added_files": diff.added[:MAX_LISTED_FILES],
        "removed_files": diff.removed[:MAX_LISTED_FILES],
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
        real_root = os.path.realpath(local_path(root))
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
    path = local_path(raw)
    check_model_root(path)
    return path


def current_entry(name: str, actor: Actor) -> layers.MergedEntry:
    """The entry as the layer files hold it now; ``EntryNotFound`` when absent.

    Another tool's change is synced first, by *actor* (``current_layers``)."""
    current = current_layers(name, actor)
    if current is None:
        raise EntryNotFound(name)
    return current


def fail_row(
    actor: Actor,
    action: str,
    name: str,
    message: str,
    *,
    job: Job | None,
    started: float,
    details: dict | None = None,
) -> ActionLog:
    """One failed audit row for *action* on *name* (timed from *started*)."""
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


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"
