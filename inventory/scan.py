"""Walk the model roots once and describe what is on disk (no Django).

:func:`scan` walks every root of ``IMAGEWORKS_MODEL_ROOTS`` with ``os.scandir`` and
an explicit stack (no recursion limit, no ``os.walk`` overhead):

* **Metadata only.** One ``lstat`` per file (``DirEntry.stat(follow_symlinks=False)``);
  no file is opened, except the small JSON manifests of the Ollama store (the only
  place where a fingerprint, the manifest digest, is needed).
* **Symlinks are never followed out of the roots.** A symlink is resolved with
  ``os.path.realpath``; a target inside a root is recorded (sizes are attributed
  through it, each inode once), a target outside is a :class:`LinkProblem`
  ("outside"), a missing target another ("broken"). Directory symlinks are never
  descended into, so loops are impossible.
* **Each inode counted once.** Files are keyed by ``(st_dev, st_ino)``: hard links
  and symlinked copies (the Hugging Face cache layout) add no bytes.
* **Partial downloads**: ``*.incomplete`` (huggingface_hub), ``*.part`` /
  ``*.partial`` / ``*.aria2`` / ``*.crdownload`` (browsers, aria2, curl), Ollama's
  ``sha256-…-partial`` blobs, and zero-byte weight shards.
* **The Ollama store** (``<models>/manifests`` + ``<models>/blobs``) is read
  separately (it may live outside the roots): manifests map tags to blobs, blobs
  shared by several tags count once. Inside a root it is not walked as ordinary
  folders (it is never an "orphan").

The result is plain data (:class:`ScanResult`); :mod:`inventory.usage` attributes
it to registry entries and :mod:`inventory.reconcile` turns it into findings.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from stat import S_ISREG
from typing import NamedTuple

Key = tuple[int, int]  # (st_dev, st_ino)

#: A folder holding one of these is a model folder (see :func:`model_folders`).
MARKER_FILES = frozenset(
    {
        "config.json",
        "model_index.json",
        "params.json",
        "adapter_config.json",
        "modelfile",
    }
)
WEIGHT_SUFFIXES = (
    ".safetensors",
    ".bin",
    ".gguf",
    ".ggml",
    ".pt",
    ".pth",
    ".ckpt",
    ".onnx",
    ".h5",
    ".msgpack",
    ".tflite",
    ".nemo",
)
PARTIAL_SUFFIXES = (".incomplete", ".part", ".partial", ".aria2", ".crdownload")
#: Never model folders and never descended into.
IGNORED_DIRS = frozenset({".git", "__pycache__", ".locks", ".ipynb_checkpoints"})
#: Hugging Face hub cache repository folders (``models--org--name``) are one model
#: folder each, although their files sit in ``blobs/`` and ``snapshots/<rev>/``.
HF_CACHE_PREFIXES = ("models--", "datasets--", "spaces--")

ProgressCallback = Callable[[float, str, int], None]  # fraction, message, files


class ScanCancelled(Exception):
    """The caller's cancel event was set during the walk."""


class Inode(NamedTuple):
    size: int
    blocks: int  # 512-byte blocks actually allocated (``du``)
    nlink: int


@dataclass
class DirInfo:
    """What one directory directly holds (enough to decide "model folder")."""

    files: int = 0
    links: int = 0
    marker: bool = False
    subdirs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LinkProblem:
    path: str
    target: str
    reason: str  # "outside" (points out of every root) | "broken"


@dataclass(frozen=True)
class Partial:
    path: str
    size: int
    reason: str


@dataclass
class OllamaManifest:
    tag: str  # normalised: "qwen3:8b", "hf.co/user/repo:q4_k_m"
    path: str
    digest: str  # sha256 of the manifest bytes: what ``/api/tags`` reports
    blobs: list[str]  # blob file paths (config + layers)
    missing_blobs: list[str] = field(default_factory=list)


@dataclass
class OllamaStore:
    path: str
    manifests: dict[str, OllamaManifest] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class ScanResult:
    roots: list[str]
    missing_roots: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    files: dict[str, Key] = field(default_factory=dict)
    inodes: dict[Key, Inode] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)  # symlink -> target (inside)
    link_problems: list[LinkProblem] = field(default_factory=list)
    dirs: dict[str, DirInfo] = field(default_factory=dict)
    partials: list[Partial] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    ollama: OllamaStore | None = None
    elapsed_s: float = 0.0
    _sorted_files: list[str] | None = field(default=None, repr=False)
    _sorted_links: list[str] | None = field(default=None, repr=False)

    # --- totals ------------------------------------------------------------------

    @property
    def file_count(self) -> int:
        return len(self.files)

    @property
    def dir_count(self) -> int:
        return len(self.dirs)

    @property
    def total_bytes(self) -> int:
        """Bytes of every distinct inode seen (hard links and blobs once)."""
        return sum(i.size for i in self.inodes.values())

    @property
    def total_disk_bytes(self) -> int:
        return sum(i.blocks * 512 for i in self.inodes.values())

    # --- lookups -----------------------------------------------------------------

    def inside_roots(self, path: str) -> bool:
        return any(is_within(path, root) for root in self.roots)

    def root_of(self, path: str) -> str | None:
        """The (longest) root holding ``path``."""
        best = None
        for root in self.roots:
            if is_within(path, root) and (best is None or len(root) > len(best)):
                best = root
        return best

    def files_under(self, folder: str) -> Iterator[tuple[str, Key]]:
        """Regular files at or below ``folder`` (a real path), in path order."""
        if self._sorted_files is None:
            self._sorted_files = sorted(self.files)
        yield from (
            (p, self.files[p]) for p in _prefix_range(self._sorted_files, folder)
        )

    def links_under(self, folder: str) -> Iterator[tuple[str, str]]:
        """Symlinks (inside the roots) at or below ``folder``: (link, target)."""
        if self._sorted_links is None:
            self._sorted_links = sorted(self.links)
        yield from (
            (p, self.links[p]) for p in _prefix_range(self._sorted_links, folder)
        )

    def partials_under(self, folder: str) -> list[Partial]:
        return [p for p in self.partials if is_within(p.path, folder)]

    def resolve_keys(self, folder: str) -> tuple[dict[Key, int], set[Key]]:
        """The inodes a folder uses: ``({key: hard links inside it}, {keys via symlinks})``.

        Symlinks inside the folder that point elsewhere inside the roots add their
        target's inodes (a directory target: every file below it, one level of
        indirection, so link loops cannot recurse).
        """
        own: dict[Key, int] = {}
        for _path, key in self.files_under(folder):
            own[key] = own.get(key, 0) + 1
        via: set[Key] = set()
        for _link, target in self.links_under(folder):
            key = self.files.get(target)
            if key is not None:
                via.add(key)
            elif target in self.dirs and not is_within(target, folder):
                via.update(k for _p, k in self.files_under(target))
        return own, via - own.keys()


def is_within(path: str, folder: str) -> bool:
    """``path`` is ``folder`` or below it (both real, absolute paths)."""
    if path == folder:
        return True
    base = folder if folder.endswith(os.sep) else folder + os.sep
    return path.startswith(base)


def _prefix_range(sorted_paths: list[str], folder: str) -> list[str]:
    base = folder.rstrip(os.sep) or os.sep
    lo = bisect.bisect_left(sorted_paths, base)
    out = []
    if lo < len(sorted_paths) and sorted_paths[lo] == base:
        out.append(base)
        lo += 1
    prefix = base if base.endswith(os.sep) else base + os.sep
    lo = bisect.bisect_left(sorted_paths, prefix, lo)
    # "/" + 1 == "0": everything starting with the prefix sorts before prefix[:-1]+"0".
    hi = bisect.bisect_left(sorted_paths, prefix[:-1] + chr(ord(os.sep) + 1), lo)
    out.extend(sorted_paths[lo:hi])
    return out


def real_roots(roots: Iterable[os.PathLike | str]) -> tuple[list[str], list[str]]:
    """Real, de-duplicated roots (a root inside another is dropped) and missing ones."""
    found: list[str] = []
    missing: list[str] = []
    for root in roots:
        text = os.path.expanduser(os.fspath(root))
        real = os.path.realpath(text)
        if not os.path.isdir(real):
            missing.append(text)
            continue
        if real not in found:
            found.append(real)
    found.sort(key=len)
    kept: list[str] = []
    for root in found:
        if not any(is_within(root, outer) for outer in kept):
            kept.append(root)
    return sorted(kept), missing


def _plain(link_text: str) -> bool:
    """No ``..`` after a named component (where ``..`` would climb out of a symlink)."""
    parts = link_text.split(os.sep)
    lead = 0
    while lead < len(parts) and parts[lead] == "..":
        lead += 1
    return ".." not in parts[lead:]


def partial_reason(name: str, size: int) -> str:
    """Why a file looks like an unfinished download ("" = it does not)."""
    lower = name.lower()
    for suffix in PARTIAL_SUFFIXES:
        if lower.endswith(suffix):
            return f"unfinished download ({suffix})"
    if lower.startswith("sha256-") and "-partial" in lower:
        return "unfinished Ollama pull (partial blob)"
    if size == 0 and lower.endswith(WEIGHT_SUFFIXES):
        return "zero-byte weight shard"
    return ""


# --------------------------------------------------------------------------------------
# The walk
# --------------------------------------------------------------------------------------


class _Walker:
    def __init__(
        self,
        result: ScanResult,
        exclude: set[str],
        progress: ProgressCallback | None,
        cancel: threading.Event | None,
    ):
        self.result = result
        self.exclude = exclude
        self.progress = progress
        self.cancel = cancel
        self.last_report = 0.0
        self.raw_links: list[str] = []

    def walk_root(self, root: str, index: int, count: int) -> None:
        stack = [root]
        top: list[str] | None = None  # the root's children: the progress unit
        while stack:
            folder = stack.pop()
            info = self._scan_dir(folder, stack)
            if top is None:
                top = list(info.subdirs) if info else []
            if self.progress is not None:
                self._report(root, index, count, top, stack)
            if self.cancel is not None and self.cancel.is_set():
                raise ScanCancelled("scan cancelled")

    def _scan_dir(self, folder: str, stack: list[str]) -> DirInfo | None:
        """One directory: the hot loop (local names, one lstat per regular file)."""
        res = self.result
        files, inodes, links = res.files, res.inodes, self.raw_links
        info = DirInfo()
        try:
            it = os.scandir(folder)
        except OSError as exc:
            res.errors.append((folder, exc.strerror or str(exc)))
            return None
        res.dirs[folder] = info
        with it:
            for entry in it:
                path = entry.path
                try:
                    if entry.is_symlink():
                        info.links += 1
                        links.append(path)  # resolved after the walk
                    elif entry.is_dir(follow_symlinks=False):
                        if entry.name in IGNORED_DIRS or path in self.exclude:
                            continue
                        info.subdirs.append(path)
                        stack.append(path)
                    else:
                        st = entry.stat(follow_symlinks=False)
                        if not S_ISREG(st.st_mode):
                            continue  # sockets, fifos, devices
                        info.files += 1
                        key = (st.st_dev, st.st_ino)
                        files[path] = key
                        if key not in inodes:
                            inodes[key] = Inode(st.st_size, st.st_blocks, st.st_nlink)
                        lower = entry.name.lower()
                        if lower.endswith(WEIGHT_SUFFIXES) or lower in MARKER_FILES:
                            info.marker = True
                            if st.st_size == 0:
                                self._partial(path, lower, 0)
                        elif lower.endswith(PARTIAL_SUFFIXES) or lower.startswith(
                            "sha256-"
                        ):
                            self._partial(path, lower, st.st_size)
                except OSError as exc:
                    res.errors.append((path, exc.strerror or str(exc)))
        return info

    def _partial(self, path: str, lower: str, size: int) -> None:
        reason = partial_reason(lower, size)
        if reason:
            self.result.partials.append(Partial(path, size, reason))

    def resolve_links(self) -> None:
        """Resolve the symlinks seen (after the walk, so most targets are known).

        Fast path: the link's folder is a real path (the walk never enters a
        symlink), so joining its target text gives the real target whenever that
        names a file or folder the walk saw; anything else goes through realpath.
        """
        res = self.result
        for path in self.raw_links:
            try:
                text = os.readlink(path)
            except OSError as exc:
                res.errors.append((path, exc.strerror or str(exc)))
                continue
            target = os.path.normpath(os.path.join(os.path.dirname(path), text))
            if not _plain(text) or (target not in res.files and target not in res.dirs):
                target = os.path.realpath(path)
            if not res.inside_roots(target):
                res.link_problems.append(LinkProblem(path, target, "outside"))
            elif target not in res.files and not os.path.exists(target):
                res.link_problems.append(LinkProblem(path, target, "broken"))
            else:
                res.links[path] = target

    def _report(self, root, index, count, top, stack) -> None:
        now = time.monotonic()
        if now - self.last_report < 0.2:
            return
        self.last_report = now
        # Top-level folders still on the stack = not finished yet.
        pending = sum(1 for p in stack if os.path.dirname(p) == root)
        done = (len(top) - pending) / len(top) if top else 1.0
        fraction = (index + max(0.0, min(done, 1.0))) / max(count, 1)
        self.progress(fraction, f"Scanning {root}", len(self.result.files))


def scan(
    roots: Iterable[os.PathLike | str],
    *,
    ollama_dir: os.PathLike | str | None = None,
    exclude: Iterable[os.PathLike | str] = (),
    progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> ScanResult:
    """Walk ``roots`` (and read the Ollama store at ``ollama_dir``, if it exists).

    ``exclude`` lists folders never walked (the trash folders). Raises
    :class:`ScanCancelled` when ``cancel`` is set; unreadable folders and files are
    recorded in ``result.errors``, never raised.
    """
    started = time.monotonic()
    real, missing = real_roots(roots)
    result = ScanResult(roots=real, missing_roots=missing)
    excluded = {os.path.realpath(os.fspath(p)) for p in exclude}
    ollama_real = (
        os.path.realpath(os.path.expanduser(os.fspath(ollama_dir)))
        if ollama_dir
        else ""
    )
    if ollama_real:
        excluded.add(ollama_real)
    result.excluded = sorted(p for p in excluded if result.inside_roots(p))
    walker = _Walker(result, excluded, progress, cancel)
    for index, root in enumerate(real):
        walker.walk_root(root, index, len(real))
    walker.resolve_links()
    if ollama_real and os.path.isdir(ollama_real):
        result.ollama = read_ollama_store(ollama_real, result)
    result.elapsed_s = time.monotonic() - started
    if progress is not None:
        progress(1.0, "Scan finished", len(result.files))
    return result


# --------------------------------------------------------------------------------------
# Model folders (orphan candidates)
# --------------------------------------------------------------------------------------


def is_model_folder(path: str, info: DirInfo) -> bool:
    """A folder is a *model folder* when it

    * directly holds a marker (``config.json``, ``model_index.json``, ``params.json``,
      ``adapter_config.json``, a ``Modelfile``) or a weight file (``*.safetensors``,
      ``*.bin``, ``*.gguf``, ...), or
    * is a Hugging Face cache repository folder (``models--org--name``), or
    * is a leaf (no sub-folders) that holds at least one file or symlink.
    """
    name = os.path.basename(path)
    if name.startswith(HF_CACHE_PREFIXES):
        return True
    if info.marker:
        return True
    return not info.subdirs and (info.files + info.links) > 0


def model_folders(result: ScanResult) -> list[str]:
    """The topmost model folders below each root (their sub-folders belong to them).

    A root itself counts only when it holds a marker or weights directly (a root
    used for a single model); otherwise the search starts with its children.
    """
    found: list[str] = []
    for root in result.roots:
        info = result.dirs.get(root)
        if info is None:
            continue
        if info.marker:
            found.append(root)
            continue
        stack = list(info.subdirs)
        while stack:
            path = stack.pop()
            sub = result.dirs.get(path)
            if sub is None:
                continue
            if is_model_folder(path, sub):
                found.append(path)
            else:
                stack.extend(sub.subdirs)
    return sorted(found)


def folder_size(result: ScanResult, folder: str) -> tuple[int, int, int]:
    """``(bytes, files, bytes freed if deleted)`` of a folder, each inode once.

    "Freed" counts an inode only when all its hard links are inside the folder.
    """
    own, via = result.resolve_keys(folder)
    size = sum(result.inodes[k].size for k in own) + sum(
        result.inodes[k].size for k in via
    )
    freed = sum(
        result.inodes[k].size for k, n in own.items() if n >= result.inodes[k].nlink
    )
    return size, len(own) + len(via), freed


# --------------------------------------------------------------------------------------
# The Ollama store
# --------------------------------------------------------------------------------------


def default_ollama_dir() -> str:
    """Where Ollama keeps models: ``$OLLAMA_MODELS`` or ``~/.ollama/models``."""
    return os.environ.get("OLLAMA_MODELS") or os.path.expanduser("~/.ollama/models")


def manifest_tag(parts: list[str]) -> str:
    """``[host, namespace, model, tag]`` of a manifest path -> the Ollama tag.

    ``registry.ollama.ai/library/qwen3/8b`` -> ``qwen3:8b``;
    ``registry.ollama.ai/alice/m/latest`` -> ``alice/m:latest``;
    ``hf.co/user/repo/Q4_K_M`` -> ``hf.co/user/repo:q4_k_m``.
    """
    *name, tag = parts
    if name and name[0] == "registry.ollama.ai":
        name = name[1:]
        if name and name[0] == "library":
            name = name[1:]
    return f"{'/'.join(name)}:{tag}".lower()


def blob_path(store: str, digest: str) -> str:
    return os.path.join(store, "blobs", digest.replace(":", "-"))


def read_ollama_store(store: str, result: ScanResult) -> OllamaStore:
    """Read every manifest (small JSON files) and stat the blobs they name.

    Blob inodes go into ``result.inodes``/``result.files`` like any file, so blobs
    shared by several tags are counted once everywhere.
    """
    out = OllamaStore(path=store)
    manifests = os.path.join(store, "manifests")
    for folder, _dirs, names in os.walk(manifests):
        for name in names:
            path = os.path.join(folder, name)
            parts = os.path.relpath(path, manifests).split(os.sep)
            if len(parts) < 2:
                continue
            try:
                manifest = _read_manifest(store, path, parts, result)
            except (OSError, ValueError) as exc:
                out.errors.append((path, f"unreadable manifest: {exc}"))
                continue
            out.manifests[manifest.tag] = manifest
    _partial_blobs(os.path.join(store, "blobs"), result)
    return out


def _read_manifest(store, path, parts, result: ScanResult) -> OllamaManifest:
    with open(path, "rb") as fh:
        raw = fh.read(1_000_000)
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    digests = [
        str(layer.get("digest") or "")
        for layer in [data.get("config") or {}, *(data.get("layers") or [])]
        if isinstance(layer, dict)
    ]
    manifest = OllamaManifest(
        tag=manifest_tag(parts),
        path=path,
        digest=hashlib.sha256(raw).hexdigest(),
        blobs=[],
    )
    for digest in filter(None, digests):
        blob = blob_path(store, digest)
        try:
            st = os.stat(blob, follow_symlinks=False)
        except OSError:
            manifest.missing_blobs.append(blob)
            continue
        key = (st.st_dev, st.st_ino)
        result.files[blob] = key
        result.inodes.setdefault(key, Inode(st.st_size, st.st_blocks, st.st_nlink))
        manifest.blobs.append(blob)
    return manifest


def _partial_blobs(blobs: str, result: ScanResult) -> None:
    try:
        with os.scandir(blobs) as it:
            for entry in it:
                if entry.is_file(follow_symlinks=False):
                    size = entry.stat(follow_symlinks=False).st_size
                    reason = partial_reason(entry.name, size)
                    if reason:
                        result.partials.append(Partial(entry.path, size, reason))
    except OSError:
        pass
