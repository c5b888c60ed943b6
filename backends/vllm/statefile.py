"""``_staging/active_vllm.json``: the shared record of the served vLLM model.

The original's exact five-field format (reference §4.1), pretty-printed with
``indent=2``. Written only once the model is ready, atomically (temp file in the
same folder, fsync, rename, fsync of the folder) so a reader never sees a torn
file. No Django imports: the path comes from the caller.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

STATE_FILE = "active_vllm.json"
FIELDS = ("logical_name", "served_model_id", "port", "pid", "started_at")


class InvalidState(ValueError):
    """The state file exists but cannot be read or fails validation."""


def state_path(staging_dir: str | os.PathLike) -> Path:
    return Path(staging_dir) / STATE_FILE


def make_state(
    *, logical_name: str, served_model_id: str, port: int, pid: int, started_at: float
) -> dict[str, Any]:
    """The five fields in the original's order, validated."""
    return validate(
        {
            "logical_name": logical_name,
            "served_model_id": served_model_id,
            "port": port,
            "pid": pid,
            "started_at": started_at,
        }
    )


def validate(data: Any) -> dict[str, Any]:
    """The original's ``from_dict`` rules: all five keys parse, names non-empty, port/pid > 0."""
    if not isinstance(data, dict):
        raise InvalidState("not a JSON object")
    missing = [k for k in FIELDS if k not in data]
    if missing:
        raise InvalidState(f"missing {', '.join(missing)}")
    try:
        state = {
            "logical_name": str(data["logical_name"] or "").strip(),
            "served_model_id": str(data["served_model_id"] or "").strip(),
            "port": int(data["port"]),
            "pid": int(data["pid"]),
            "started_at": float(data["started_at"]),
        }
    except (TypeError, ValueError) as exc:
        raise InvalidState(f"bad value: {exc}")
    if not state["logical_name"] or not state["served_model_id"]:
        raise InvalidState("empty logical_name or served_model_id")
    if state["port"] <= 0 or state["pid"] <= 0:
        raise InvalidState("port and pid must be positive")
    return state


def write_state(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Atomically replace the state file with ``state`` (validated first)."""
    state = validate(state)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = json.dumps(state, indent=2)
    fd, tmp = tempfile.mkstemp(
        dir=target.parent, prefix="." + target.name, suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def read_state(path: str | os.PathLike) -> dict[str, Any] | None:
    """The validated state, ``None`` if there is no file; ``InvalidState`` if corrupt."""
    target = Path(path)
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InvalidState(f"cannot read: {exc}")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidState(f"not valid JSON: {exc}")
    return validate(data)


def remove_state(path: str | os.PathLike) -> bool:
    """Delete the state file; True if there was one."""
    target = Path(path)
    try:
        target.unlink()
    except FileNotFoundError:
        return False
    _fsync_dir(target.parent)
    return True


def _fsync_dir(folder: Path) -> None:
    # The rename is only durable once the directory entry is on disk.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
