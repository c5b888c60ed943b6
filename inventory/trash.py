"""The trash: model folders moved aside with ``os.rename`` (no Django).

Layout of one trash item (inside a trash folder on the same filesystem)::

    <trash>/<UTC stamp>-<slug>-<6 hex>/
        imageworks-trash.json     # the manifest: where it came from, who, when
        <original folder name>/   # the folder, renamed here (never copied)

* **Same filesystem only.** A folder moves with one ``os.rename``; a folder on
  another filesystem than its trash folder is refused (``EXDEV``), never copied and
  deleted.
* **Never outside the model roots.** The trash folder, the folder moved and the
  place it is restored to must all be inside a root.
* **The way back survives the database.** The manifest is written (atomically)
  before the move; :func:`read_manifests` finds every item again.
* **Only our own items are deleted**: :func:`delete_item` removes a folder only if it
  holds our manifest and sits directly in a trash folder.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from .scan import is_within

TRASH_NAME = ".imageworks-trash"
MANIFEST = "imageworks-trash.json"
MANIFEST_VERSION = 1


class TrashError(Exception):
    """A move, restore or delete that must not happen; the message says why."""


def trash_dir_for(folder: str, roots: list[str], configured: str = "") -> str:
    """The trash folder for ``folder``: ``configured`` (must be inside a root), else
    ``<root>/.imageworks-trash`` of the root holding ``folder``."""
    if configured:
        trash = os.path.realpath(os.path.expanduser(configured))
        if not any(is_within(trash, r) for r in roots):
            raise TrashError(
                f"IMAGEWORKS_TRASH_DIR {configured} is outside the model roots; "
                "the trash must be inside a root (same filesystem, rename only)"
            )
        return trash
    holding = [r for r in roots if is_within(folder, r)]
    if not holding:
        raise TrashError(f"{folder} is outside the model roots")
    return os.path.join(max(holding, key=len), TRASH_NAME)


def all_trash_dirs(roots: list[str], configured: str = "") -> list[str]:
    """Every trash folder that may hold items (for the scan to skip, the page to list)."""
    out = [os.path.join(r, TRASH_NAME) for r in roots]
    if configured:
        out.append(os.path.realpath(os.path.expanduser(configured)))
    return sorted(set(out))


def _device(path: str) -> int:
    """st_dev of ``path`` or of its nearest existing parent."""
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return os.stat(path).st_dev


def check_same_filesystem(folder: str, trash: str) -> None:
    if _device(folder) != _device(trash):
        raise TrashError(
            f"{folder} is on another filesystem than the trash folder {trash}; "
            "set IMAGEWORKS_TRASH_DIR to a folder on that filesystem (inside a model "
            "root): folders are renamed, never copied"
        )


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return (slug or "folder")[:60]


def write_manifest(item_dir: str, data: dict) -> None:
    """Write the manifest atomically (temp file, fsync, rename)."""
    payload = json.dumps(
        {"version": MANIFEST_VERSION, **data}, indent=2, ensure_ascii=False
    )
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", dir=item_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(payload + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, os.path.join(item_dir, MANIFEST))
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_manifest(item_dir: str) -> dict:
    with open(os.path.join(item_dir, MANIFEST), encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict) or not data.get("original_path"):
        raise TrashError(f"{item_dir}: not an ImageWorks trash manifest")
    return data


@dataclass(frozen=True)
class Moved:
    item_dir: str
    trash_path: str


def move_to_trash(folder: str, trash: str, manifest: dict) -> Moved:
    """Rename ``folder`` into a new item of ``trash`` (created if needed).

    ``manifest`` gets ``original_path``, ``trash_path`` and ``moved_at`` added. On any
    failure nothing is left behind except an empty trash folder.
    """
    folder = os.path.realpath(folder)
    if not os.path.isdir(folder) or os.path.islink(folder):
        raise TrashError(f"{folder} is not a folder")
    if is_within(trash, folder):
        raise TrashError(f"the trash folder {trash} is inside {folder}")
    check_same_filesystem(folder, trash)
    os.makedirs(trash, mode=0o700, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = os.path.basename(folder)
    item_dir = os.path.join(trash, f"{stamp}-{_slug(name)}-{secrets.token_hex(3)}")
    os.mkdir(item_dir, mode=0o700)
    target = os.path.join(item_dir, name if name != MANIFEST else "files")
    try:
        write_manifest(
            item_dir,
            {
                **manifest,
                "original_path": folder,
                "trash_path": target,
                "moved_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
        os.rename(folder, target)
    except OSError as exc:
        shutil.rmtree(item_dir, ignore_errors=True)
        if exc.errno == errno.EXDEV:
            raise TrashError(
                f"{folder} and {trash} are on different filesystems"
            ) from None
        if exc.errno == errno.ENOENT:
            raise TrashError(f"{folder} is gone (moved by someone else?)") from None
        raise TrashError(f"could not move {folder}: {exc.strerror or exc}") from None
    return Moved(item_dir=item_dir, trash_path=target)


def restore(item_dir: str, trash_path: str, original: str) -> None:
    """Rename the folder back; refuse when ``original`` is occupied now."""
    if os.path.lexists(original):
        raise TrashError(
            f"{original} exists again: move it away first, then restore "
            "(nothing was overwritten)"
        )
    if not os.path.isdir(trash_path):
        raise TrashError(f"{trash_path} is missing from the trash")
    parent = os.path.dirname(original)
    os.makedirs(parent, exist_ok=True)
    try:
        os.rename(trash_path, original)
    except OSError as exc:
        raise TrashError(
            f"could not move {trash_path} back: {exc.strerror or exc}"
        ) from None
    try:
        os.unlink(os.path.join(item_dir, MANIFEST))
        os.rmdir(item_dir)
    except OSError:
        pass  # an emptied item folder left behind is harmless


def delete_item(item_dir: str, trash_dirs: Iterable[str]) -> None:
    """Delete one trash item for good (only ours: manifest present, in a trash folder)."""
    item_dir = os.path.realpath(item_dir)
    if os.path.dirname(item_dir) not in {os.path.realpath(t) for t in trash_dirs}:
        raise TrashError(f"{item_dir} is not an item of a trash folder")
    if not os.path.isfile(os.path.join(item_dir, MANIFEST)):
        raise TrashError(f"{item_dir} holds no trash manifest: not deleted")
    shutil.rmtree(item_dir)


def read_manifests(trash_dirs: Iterable[str]) -> list[tuple[str, dict]]:
    """``(item_dir, manifest)`` of every item found in the trash folders."""
    found = []
    for trash in trash_dirs:
        try:
            names = sorted(os.listdir(trash))
        except OSError:
            continue
        for name in names:
            item_dir = os.path.join(trash, name)
            if not os.path.isfile(os.path.join(item_dir, MANIFEST)):
                continue
            try:
                found.append((item_dir, read_manifest(item_dir)))
            except (OSError, ValueError, TrashError):
                continue
    return found
