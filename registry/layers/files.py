"""The registry write lock and atomic writes (temp file, fsync, rename), with
timestamped backups and the cleanup of temp files a killed writer left behind."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from registry.hashing import hash_file

from .constants import (
    CURATED_FILE,
    DISCOVERED_FILE,
    LOCK_FILE,
    READ_ONLY_MESSAGE,
    SNAPSHOT_FILE,
)
from .errors import FileChangedError, LockTimeout, RegistryNotFound, RegistryWriteError


def write_error(path: Path, exc: OSError) -> RegistryWriteError:
    code = getattr(exc, "errno", None)
    if isinstance(exc, PermissionError) or code in (
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
    ):
        return RegistryWriteError(path, f"{READ_ONLY_MESSAGE}: {path}")
    if code == errno.ENOSPC:
        return RegistryWriteError(path, f"No space left on device while writing {path}")
    detail = exc.strerror or str(exc)
    return RegistryWriteError(path, f"Could not write {path}: {detail}")


def _is_read_only(path: Path) -> bool:
    # Honour "chmod a-w" even for root (os.access says root may write anything): a file
    # or folder nobody may write is a deliberate "do not touch", e.g. a repo checkout.
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return False
    return not os.access(path, os.W_OK) or not mode & 0o222


def _check_writable(path: Path) -> None:
    folder = path.parent
    if _is_read_only(folder):
        raise RegistryWriteError(path, f"{READ_ONLY_MESSAGE}: {path}")
    if _is_read_only(path):
        raise RegistryWriteError(path, f"{READ_ONLY_MESSAGE}: {path}")


@contextmanager
def registry_lock(dir: str | os.PathLike[str], timeout: float = 30.0) -> Iterator[Path]:
    """Hold the registry folder's cross-process write lock (re-entrant per thread).

    Uses one ``filelock.FileLock`` instance per lock path (``is_singleton``), so nested
    use in a thread re-enters while other threads and processes wait. Raises
    :class:`LockTimeout` after *timeout* seconds and :class:`RegistryWriteError` when the
    folder is read-only.
    """
    folder = Path(dir)
    if not folder.is_dir():
        raise RegistryNotFound(folder, f"Registry folder not found: {folder}")
    lock_path = folder / LOCK_FILE
    if _is_read_only(folder):
        raise RegistryWriteError(folder, f"{READ_ONLY_MESSAGE}: {folder}")
    import filelock  # here, not at the top: it imports asyncio (CLI start-up)

    lock = filelock.FileLock(str(lock_path), is_singleton=True)
    outermost = not lock.is_locked
    try:
        lock.acquire(timeout=timeout)
    except filelock.Timeout:
        raise LockTimeout(lock_path, timeout) from None
    except OSError as exc:
        raise write_error(lock_path, exc) from exc
    try:
        if outermost:
            remove_dead_temps(folder, before_ns=time.time_ns())
        yield lock_path
    finally:
        lock.release()


#: Our temp files: ``.<registry file>.<random>.tmp`` (tempfile.NamedTemporaryFile).
_OUR_TEMP = re.compile(r"^\.model_registry[\w.-]*\.json\.\w+\.tmp$")


def remove_dead_temps(folder: Path, before_ns: int) -> list[Path]:
    """Delete the temp files killed writers left, beside the registry files and
    beside the files their links point to; returns the paths removed.

    The rule: every writer of the registry folder creates its temp files only while
    it holds the registry lock, and removes them (renamed or deleted) before it
    releases it. So a temp file of ours that is older than the moment the caller
    acquired the lock (*before_ns*) belongs to a writer that died holding it. Call
    this only under the lock. Only regular files named like ours are touched.
    """
    folders = {folder}
    for name in (CURATED_FILE, DISCOVERED_FILE, SNAPSHOT_FILE):
        link = folder / name
        if link.is_symlink():
            folders.add(write_target(link).parent)
    removed: list[Path] = []
    for where in folders:
        try:
            candidates = [p for p in where.iterdir() if _OUR_TEMP.match(p.name)]
        except OSError:
            continue
        for candidate in candidates:
            try:
                info = candidate.lstat()
                if stat.S_ISREG(info.st_mode) and info.st_mtime_ns < before_ns:
                    candidate.unlink()
                    removed.append(candidate)
            except OSError:
                pass
    return removed


def write_target(path: Path) -> Path:
    """The file a write of *path* must replace: *path* itself, or the file its
    symbolic link (chain) points to, so the link stays a link (issue 17 §2)."""
    if not path.is_symlink():
        return path
    return Path(os.path.realpath(path))


def _default_mode() -> int:
    """0o666 minus the process umask (read without the racy os.umask() dance)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o644


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot fsync a directory; the rename is still atomic
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Spliced:
    """The bytes of *base* with ``base[start:end]`` replaced by *middle*, kept as
    three pieces: :func:`atomic_write` writes them straight to its temp file, so a
    one-entry change of an 84 MB file is never joined into a second 84 MB copy."""

    base: bytes
    start: int
    end: int
    middle: bytes

    def pieces(self) -> tuple[memoryview, bytes, memoryview]:
        view = memoryview(self.base)
        return view[: self.start], self.middle, view[self.end :]

    def __bytes__(self) -> bytes:
        return b"".join(self.pieces())

    def same_as(self, other: bytes) -> bool:
        """Whether these bytes equal *other*; compares the span alone when *other*
        is the base itself (the usual case: the caller passes it as ``current``)."""
        if other is self.base:
            return self.base[self.start : self.end] == self.middle
        return bytes(self) == other


def _same(old: bytes, data: bytes | Spliced) -> bool:
    return data.same_as(old) if isinstance(data, Spliced) else old == data


def _replace_file(
    path: Path, data: bytes | Spliced, mode: int, expected_sha256: str | None = None
) -> None:
    """Write *data* to a temp file beside *path*, fsync, chmod, rename over *path*.

    With *expected_sha256*, the file is hashed again once the temp file is written,
    immediately before the rename: a file another program replaced meanwhile raises
    :class:`FileChangedError` (the temp file is removed, nothing is replaced).
    """
    tmp: Path | None = None
    try:
        with tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
        ) as fh:
            tmp = Path(fh.name)
            for piece in data.pieces() if isinstance(data, Spliced) else (data,):
                fh.write(piece)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        if expected_sha256 is not None and _sha256_of(path) != expected_sha256:
            raise FileChangedError(path)
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    except OSError as exc:
        raise write_error(path, exc) from exc
    finally:
        if tmp is not None:
            try:
                tmp.unlink()
            except OSError:
                pass


def _sha256_of(path: Path) -> str | None:
    """The file's sha256, read in blocks (no copy of the whole file in memory)."""
    try:
        return hash_file(path)
    except FileNotFoundError:
        return None


def _read_old(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise write_error(path, exc) from exc


def _save_backup(path: Path, backup: Path, old: bytes, mode: int) -> None:
    """Keep the file at *path* (bytes *old*) as *backup*: a hard link, else a copy
    (another file system, or one without links)."""
    try:
        os.link(path, backup)
    except OSError:
        _replace_file(backup, old, mode)
    else:
        _fsync_dir(backup.parent)


def _backup_stem(path: Path) -> str:
    return path.name[: -len(".json")] if path.name.endswith(".json") else path.name


def _backup_pattern(path: Path) -> re.Pattern[str]:
    # Only our own microsecond-stamped names: hand-made or tool-made backups such as
    # model_registry.discovered.20251022-175925.bak.json are never pruned.
    return re.compile(
        rf"^{re.escape(_backup_stem(path))}\.\d{{8}}-\d{{6}}-\d{{6}}\.bak\.json$"
    )


def _backup_path(path: Path) -> Path:
    stamp = datetime.now(UTC)
    while True:
        name = f"{_backup_stem(path)}.{stamp:%Y%m%d-%H%M%S-%f}.bak.json"
        candidate = path.with_name(name)
        if not candidate.exists():
            return candidate
        stamp += timedelta(microseconds=1)


def _prune_backups(path: Path, keep: int) -> None:
    pattern = _backup_pattern(path)
    backups = sorted(p for p in path.parent.iterdir() if pattern.match(p.name))
    for old in backups[: max(len(backups) - keep, 0)]:
        try:
            old.unlink()
        except OSError:
            pass  # a stale backup is harmless; never fail a write over it


def atomic_write(
    path: str | os.PathLike[str],
    data: bytes | Spliced,
    *,
    keep_backups: int = 20,
    expected_sha256: str | None = None,
    current: bytes | None = None,
) -> Path | None:
    """Replace *path* with *data* so readers only ever see the old or the new bytes.

    Does nothing (returns None) when the bytes are unchanged. Otherwise, when the file
    existed and ``keep_backups > 0``, first saves the old bytes as
    ``<stem>.<YYYYmmdd-HHMMSS-ffffff>.bak.json`` (UTC) beside it, prunes that file's own
    older backups beyond *keep_backups*, and returns the backup path. Permission bits of
    the old file are kept. Raises :class:`RegistryWriteError` (nothing partial left).
    With *expected_sha256* (the sha256 of the bytes the caller read), a file replaced
    meanwhile by a tool that does not take our lock raises :class:`FileChangedError`;
    the hash is checked again once the temp file is written, immediately before the
    rename (the window left is that re-read and the rename: docs/compatibility.md).
    A caller that has just read the file's bytes under the registry lock (and
    checked them against *expected_sha256*) passes them as *current*: they are not
    read and hashed a second time (80 MB for a big registry). *data* may be a
    :class:`Spliced` (that *current* with one span replaced): written piece by piece.

    The backup is a hard link to the old file (no copy of tens of megabytes, no
    second fsync); where links are not possible, a copy. With *expected_sha256* the
    re-check before the rename also proves the link holds the bytes the caller read.

    A symbolic link is written through: the temp file is written beside the file the
    link points to and renamed there, so the link stays; the backup is a regular file
    beside the link (in the registry folder, never in a linked checkout).
    """
    link = Path(path)
    path = write_target(link)  # a link is written through: the link stays
    if current is not None:
        old: bytes | None = current  # read (and hashed) by the caller, under the lock
    else:
        old = _read_old(path)
        if (
            expected_sha256
            and old is not None
            and hashlib.sha256(old).hexdigest() != expected_sha256
        ):
            raise FileChangedError(path)
    if old is not None and _same(old, data):
        return None
    _check_writable(path)
    try:
        mode = _default_mode() if old is None else stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:  # gone since the caller read it (*current*)
        mode = _default_mode()
    backup: Path | None = None
    if old is not None and keep_backups > 0:
        # Beside the name the registry uses (the link), never in a linked checkout.
        backup = _backup_path(link)
        _save_backup(path, backup, old, mode)
        _prune_backups(link, keep_backups)
    # The hash the caller read is checked again right before the rename, so another
    # program's write in between is not renamed over.
    check = expected_sha256 if old is not None else None
    try:
        _replace_file(path, data, mode, expected_sha256=check)
    except (FileChangedError, RegistryWriteError):
        if backup is not None:  # nothing was replaced: nothing to keep a backup of
            backup.unlink(missing_ok=True)
        raise
    return backup
