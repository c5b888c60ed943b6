"""Content hashing for model directories (the registry's canonical "algorithm A").

Pure Python, no Django imports: used by the web jobs, the CLI and the tests alike.

Algorithm A (the original ``compute_artifact_hashes``), which every aggregate in this
project uses:

* every regular file under the model directory, recursively (dotfiles,
  ``*:Zone.Identifier`` files, ``.cache/`` folders included);
* per-file SHA-256 (lower-case hex);
* one line per file: ``"<sha256>  <posix relative path>"`` (two spaces, sha256sum format);
* the lines sorted as strings, joined with ``"\\n"`` (no trailing newline);
* aggregate = SHA-256 of that text encoded as UTF-8.

An empty directory hashes to ``sha256(b"")`` (:data:`AGGREGATE_EMPTY`).

The file set matches Python 3.11's ``sorted(p for p in root.rglob("*") if p.is_file())``:
symlinked *files* are followed, symlinked *directories* are listed but not descended into,
dangling symlinks and special files (FIFOs, sockets, devices) are left out. Unlike the
original, what is left out is reported in :attr:`HashResult.skipped`, and anything that
cannot be read (file or directory) fails the hash instead of silently changing it.
See ``docs/hashing.md``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "AGGREGATE_EMPTY",
    "DEFAULT_CHUNK_SIZE",
    "FileDiff",
    "FileHash",
    "HashCancelled",
    "HashError",
    "HashResult",
    "aggregate_from_hashes",
    "compare_files",
    "default_workers",
    "hash_directory",
    "hash_file",
    "list_model_files",
]

#: Aggregate of a directory with no files: sha256 of empty bytes.
AGGREGATE_EMPTY = hashlib.sha256(b"").hexdigest()

#: Read size for :func:`hash_file`. hashlib releases the GIL for any buffer over 2 KiB,
#: so threads hash in parallel. Measured on the dev VM (SHA-NI, OpenSSL 3): 2 MiB gave
#: the best per-core rate (~1.30 GB/s vs ~1.19 GB/s for 8 MiB, which falls out of
#: cache between the read and the hash). See docs/hashing.md.
DEFAULT_CHUNK_SIZE = 2 * 1024 * 1024

#: Minimum interval between two ``progress`` calls of :func:`hash_directory`.
PROGRESS_INTERVAL_S = 0.2

# Reasons used in HashResult.skipped.
SKIP_DANGLING = "dangling symlink"
SKIP_LOOP = "symlink loop"
SKIP_SYMLINK_DIR = "symlinked directory (not followed, like the original rglob)"
SKIP_SPECIAL = "not a regular file"
SKIP_DIR_LOOP = "directory already visited (loop)"


class HashError(Exception):
    """Hashing could not produce a trustworthy aggregate (missing root, unreadable file)."""


class HashCancelled(HashError):
    """The caller's cancel event was set while hashing."""

    def __init__(self, message: str = "hashing cancelled") -> None:
        super().__init__(message)


@dataclass
class FileHash:
    path: str  # posix path relative to the model root
    sha256: str
    size: int


@dataclass
class HashResult:
    root: str
    aggregate_sha256: str
    files: list[FileHash]  # sorted like the original (Path order, parts-wise)
    total_bytes: int
    elapsed_s: float
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (rel path, reason)

    def files_as_artifacts(self) -> list[dict]:
        """The registry's ``artifacts.files`` shape: ``[{"path": ..., "sha256": ...}]``."""
        return [{"path": f.path, "sha256": f.sha256} for f in self.files]

    @property
    def file_count(self) -> int:
        return len(self.files)


@dataclass
class FileDiff:
    changed: list[str]  # in both, different sha256
    added: list[str]  # only in actual
    removed: list[str]  # only in expected

    @property
    def has_differences(self) -> bool:
        return bool(self.changed or self.added or self.removed)


# --------------------------------------------------------------------------- formula


def aggregate_from_hashes(pairs: Iterable[tuple[str, str]]) -> str:
    """Algorithm A over ``(relative posix path, sha256 hex)`` pairs.

    Lines ``"<sha>  <path>"`` sorted as strings, joined by ``"\\n"`` (no trailing
    newline), sha256 of the UTF-8 text. Paths that came from undecodable file names
    (surrogate escapes) are encoded back to their original bytes.
    """
    lines = sorted(f"{sha}  {path}" for path, sha in pairs)
    text = "\n".join(lines)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def compare_files(expected: list[dict], actual: list[dict]) -> FileDiff:
    """Per-file comparison of two ``artifacts.files`` lists (which files differ)."""
    exp = {f["path"]: f.get("sha256") for f in expected or []}
    act = {f["path"]: f.get("sha256") for f in actual or []}
    changed = sorted(p for p in exp.keys() & act.keys() if exp[p] != act[p])
    added = sorted(act.keys() - exp.keys())
    removed = sorted(exp.keys() - act.keys())
    return FileDiff(changed=changed, added=added, removed=removed)


# --------------------------------------------------------------------------- listing


def _sort_key(rel: str) -> list[str]:
    # pathlib (3.11, posix) orders paths by their parts, case-sensitively.
    return rel.split("/")


def _resolve_root(root: str | os.PathLike[str]) -> Path:
    if isinstance(root, str) and not root.strip():
        # The original hashed the current working directory for model_path="".
        raise HashError("model path is empty")
    path = Path(os.path.expanduser(root))  # an unknown ~user: left as written
    try:
        st = path.stat()  # follows a symlinked root, like rglob does
    except FileNotFoundError:
        raise HashError(f"model files not found at {path}")
    except OSError as exc:
        raise HashError(f"cannot access model path {path}: {exc.strerror or exc}")
    if not stat.S_ISDIR(st.st_mode):
        raise HashError(f"model path {path} is not a directory")
    return path


def _scan(root: Path) -> tuple[list[tuple[str, Path, int]], list[tuple[str, str]]]:
    files: list[tuple[str, Path, int]] = []
    skipped: list[tuple[str, str]] = []
    root_st = os.stat(root)
    visited: set[tuple[int, int]] = {(root_st.st_dev, root_st.st_ino)}
    stack: list[tuple[str, str]] = [(os.fspath(root), "")]  # (abs dir, rel prefix)
    while stack:
        dir_abs, prefix = stack.pop()
        try:
            with os.scandir(dir_abs) as it:
                entries = list(it)
        except OSError as exc:
            where = prefix.rstrip("/") or "."
            raise HashError(f"cannot read directory {where}: {exc.strerror or exc}")
        for entry in entries:
            rel = prefix + entry.name
            try:
                if entry.is_symlink():
                    try:
                        st = os.stat(entry.path)  # follow the link
                    except OSError as exc:
                        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                            skipped.append((rel, SKIP_DANGLING))
                            continue
                        if exc.errno == errno.ELOOP:
                            skipped.append((rel, SKIP_LOOP))
                            continue
                        raise
                    if stat.S_ISREG(st.st_mode):
                        files.append((rel, Path(entry.path), st.st_size))
                    elif stat.S_ISDIR(st.st_mode):
                        skipped.append((rel, SKIP_SYMLINK_DIR))
                    else:
                        skipped.append((rel, SKIP_SPECIAL))
                elif entry.is_dir(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    key = (st.st_dev, st.st_ino)
                    if key in visited:  # bind-mount style loop; cannot be a symlink
                        skipped.append((rel, SKIP_DIR_LOOP))
                        continue
                    visited.add(key)
                    stack.append((entry.path, rel + "/"))
                elif entry.is_file(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    files.append((rel, Path(entry.path), st.st_size))
                else:
                    skipped.append((rel, SKIP_SPECIAL))
            except OSError as exc:
                raise HashError(f"cannot read {rel}: {exc.strerror or exc}")
    files.sort(key=lambda item: _sort_key(item[0]))
    skipped.sort(key=lambda item: _sort_key(item[0]))
    return files, skipped


def list_model_files(
    root: str | os.PathLike[str],
    *,
    skipped: list[tuple[str, str]] | None = None,
) -> list[tuple[str, Path, int]]:
    """Every regular file under ``root`` as ``(posix rel path, path, size)``, Path-sorted.

    Same file set as Python 3.11's ``sorted(p for p in root.rglob("*") if p.is_file())``.
    Entries left out (dangling symlinks, symlinked directories, special files) are
    appended to ``skipped`` as ``(rel path, reason)`` when a list is given.
    Raises :class:`HashError` if the root is missing, not a directory, or if a
    directory inside it cannot be read.
    """
    files, skip = _scan(_resolve_root(root))
    if skipped is not None:
        skipped.extend(skip)
    return files


# --------------------------------------------------------------------------- hashing


def hash_file(
    path: str | os.PathLike[str],
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    on_bytes: Callable[[int], None] | None = None,
    cancel: threading.Event | None = None,
) -> str:
    """SHA-256 (lower-case hex) of one file, read in large chunks without copies.

    ``on_bytes(n)`` is called after each chunk; if ``cancel`` is set between chunks,
    :class:`HashCancelled` is raised. OS errors (e.g. PermissionError) propagate.
    """
    should_stop = cancel.is_set if cancel is not None else None
    return _hash_file(path, chunk_size, on_bytes, should_stop)


def _hash_file(
    path: str | os.PathLike[str],
    chunk_size: int,
    on_bytes: Callable[[int], None] | None,
    should_stop: Callable[[], bool] | None,
) -> str:
    if chunk_size <= 0:
        raise ValueError("chunk_size must be positive")
    digest = hashlib.sha256()
    # One preallocated buffer; readinto + memoryview slices avoid per-chunk copies.
    view = memoryview(bytearray(chunk_size))
    with open(path, "rb", buffering=0) as fh:
        while True:
            if should_stop is not None and should_stop():
                raise HashCancelled()
            n = fh.readinto(view)
            if not n:
                break
            digest.update(view[:n])
            if on_bytes is not None:
                on_bytes(n)
    return digest.hexdigest()


def default_workers() -> int:
    return max(2, os.cpu_count() or 1)


class _Counter:
    __slots__ = ("_lock", "value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self, n: int) -> None:
        with self._lock:
            self.value += n


def hash_directory(
    root: str | os.PathLike[str],
    *,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: threading.Event | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> HashResult:
    """Hash every file under ``root`` in parallel and compute the algorithm A aggregate.

    Files are scheduled largest first on a thread pool of ``workers`` threads
    (default ``max(2, os.cpu_count())``). ``progress(bytes_done, bytes_total)`` is called
    on the calling thread at most every 0.2 s while hashing, and once at the end with
    ``bytes_done == bytes_total``; values never decrease. Setting ``cancel`` raises
    :class:`HashCancelled`. Any unreadable file raises :class:`HashError` naming it.

    Kept as one function on purpose (~100 lines): the worker, progress and cancel
    closures share one run's counters and stop flag, and this is the hot path
    ``bench/bench_hashing.py`` measures; split up they would only move into a class.

    Long on purpose: the thread pool, progress throttling and cancellation share
    local state that a split would have to pass around.
    """
    started = time.perf_counter()
    root_path = _resolve_root(root)
    entries, skipped = _scan(root_path)
    total = sum(size for _, _, size in entries)
    n_workers = max(1, workers if workers is not None else default_workers())

    done_bytes = _Counter()
    stop = threading.Event()  # set on cancel or on the first error

    def _stopping() -> bool:
        return stop.is_set() or (cancel is not None and cancel.is_set())

    def _work(rel: str, path: Path) -> FileHash:
        if _stopping():
            raise HashCancelled()
        read = _Counter()

        def _on_bytes(n: int) -> None:
            read.value += n  # only this thread touches `read`
            done_bytes.add(n)

        try:
            sha = _hash_file(path, chunk_size, _on_bytes, _stopping)
        except HashCancelled:
            raise
        except OSError as exc:
            raise HashError(f"cannot read {rel}: {exc.strerror or exc}")
        return FileHash(path=rel, sha256=sha, size=read.value)

    last_report = 0.0
    last_done = -1

    def _report(force: bool = False) -> None:
        nonlocal last_report, last_done
        if progress is None:
            return
        now = time.monotonic()
        done = min(done_bytes.value, total)
        if done < last_done:
            done = last_done
        if force or (now - last_report >= PROGRESS_INTERVAL_S and done != last_done):
            last_report = now
            last_done = done
            progress(done, total)

    results: list[FileHash] = []
    if entries:
        # Largest first, so big shards start early and all workers stay busy.
        order = sorted(entries, key=lambda item: item[2], reverse=True)
        pool = ThreadPoolExecutor(
            max_workers=min(n_workers, len(entries)), thread_name_prefix="hash"
        )
        try:
            pending: set[Future[FileHash]] = {
                pool.submit(_work, rel, path) for rel, path, _ in order
            }
            while pending:
                if cancel is not None and cancel.is_set():
                    raise HashCancelled()
                finished, pending = wait(
                    pending, timeout=PROGRESS_INTERVAL_S, return_when=FIRST_EXCEPTION
                )
                for fut in finished:
                    results.append(fut.result())  # re-raises HashError / cancel
                _report()
        except BaseException:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)
    if cancel is not None and cancel.is_set():
        raise HashCancelled()

    results.sort(key=lambda fh: _sort_key(fh.path))
    aggregate = aggregate_from_hashes((fh.path, fh.sha256) for fh in results)
    if progress is not None and last_done != total:
        progress(total, total)  # the last call is always (total, total)
    return HashResult(
        root=os.fspath(root_path),
        aggregate_sha256=aggregate,
        files=results,
        total_bytes=sum(fh.size for fh in results),
        elapsed_s=time.perf_counter() - started,
        skipped=skipped,
    )
