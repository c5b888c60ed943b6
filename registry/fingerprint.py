"""A fast fingerprint of a model directory: size + mtime of every file, no hashing.

Recorded when an entry is locked (under ``version_lock.fast_fingerprint``) and
compared by activation preflight, so a locked model whose files changed since the
lock is caught in milliseconds; the operator is then sent to a full Verify, which
hashes. Same file set as the hash (``hashing.list_model_files``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from . import hashing

#: Where the lock records it: ``version_lock[FINGERPRINT_KEY]``.
FINGERPRINT_KEY = "fast_fingerprint"


def fast_fingerprint(model_dir: str | os.PathLike) -> dict[str, Any]:
    """``{"files": {rel: [size, mtime_ns]}, "recorded_at": ISO time}``.

    Raises ``hashing.HashError`` when the directory is missing or unreadable.
    """
    files: dict[str, list[int]] = {}
    for rel, path, _size in hashing.list_model_files(model_dir):
        st = os.stat(path)
        files[rel] = [st.st_size, st.st_mtime_ns]
    return {
        "files": files,
        "recorded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def recorded_fingerprint(merged: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The fingerprint a lock recorded for this merged entry, None if there is none."""
    lock = merged.get("version_lock")
    fp = lock.get(FINGERPRINT_KEY) if isinstance(lock, Mapping) else None
    if isinstance(fp, Mapping) and isinstance(fp.get("files"), Mapping):
        return fp
    return None


def fingerprint_drift(
    recorded: Mapping[str, Any], model_dir: str | os.PathLike
) -> dict[str, list[str]]:
    """What changed since ``recorded``: ``{"changed": [...], "added": [...], "removed": [...]}``.

    All three lists empty means unchanged. Raises ``hashing.HashError`` like
    ``fast_fingerprint``.
    """
    before = {k: list(v) for k, v in (recorded.get("files") or {}).items()}
    now = fast_fingerprint(model_dir)["files"]
    return {
        "changed": sorted(k for k in before.keys() & now.keys() if before[k] != now[k]),
        "added": sorted(now.keys() - before.keys()),
        "removed": sorted(before.keys() - now.keys()),
    }
