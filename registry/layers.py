"""Read, merge and write the registry's JSON layers (no Django imports).

A registry folder holds two layers and a derived snapshot (reference §2):

* ``model_registry.curated.json``: hand-maintained entries;
* ``model_registry.discovered.json``: written by download/scan tools;
* ``model_registry.json``: the merged snapshot other tools read.

Reading is forgiving per entry: a bad item is reported as an :class:`EntryProblem` and
skipped, so one broken entry never makes the registry unloadable (the original crashes).
Only file-level damage (bad JSON, a root that is not a list) raises.

The merge is the original's: discovered entries in file order, then curated-only names;
for a name in both layers curated wins for every non-null key, dicts merge recursively and
everything else (lists, ``""``, ``false``, ``0``) replaces.

Writing goes through :func:`write_layer_entries`: take the cross-process lock, re-read both
layers, refuse the write if an entry changed since the caller read it (fingerprints), patch
the raw items in place, write atomically (temp file, fsync, rename, timestamped backup),
then re-materialize the snapshot. A crash at any point leaves each file old or new.
"""

from __future__ import annotations

import copy
import errno
import gc
import hashlib
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import filelock
import orjson

from registry.normalize import to_bool

CURATED_FILE = "model_registry.curated.json"
DISCOVERED_FILE = "model_registry.discovered.json"
SNAPSHOT_FILE = "model_registry.json"
LEGACY_BACKUP_FILE = "model_registry.backup.pre_split.json"
LOCK_FILE = ".model_registry.lock"

CURATED = "curated"
DISCOVERED = "discovered"
SNAPSHOT = "snapshot"
LEGACY = "legacy"
LAYER_FILES: dict[str, str] = {CURATED: CURATED_FILE, DISCOVERED: DISCOVERED_FILE}

READ_ONLY_MESSAGE = (
    "Registry file is read-only: adjust filesystem permissions or open a pull "
    "request if repo-managed"
)

# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


class RegistryError(Exception):
    """Base class of every registry failure; messages name the file (and entry)."""


class LayerParseError(RegistryError):
    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"Failed to parse {self.path.name}: {reason}")


class RegistryNotFound(RegistryError):
    def __init__(self, folder: str | os.PathLike[str], detail: str = "") -> None:
        self.folder = Path(folder)
        message = detail or (
            f"No registry files found in {self.folder} "
            f"(expected {CURATED_FILE} or {DISCOVERED_FILE})"
        )
        super().__init__(message)


class ConflictError(RegistryError):
    """The entry changed on disk since the caller read it; nothing was written."""

    def __init__(
        self,
        name: str,
        layer: str,
        expected_fingerprint: str,
        current_fingerprint: str,
        current_curated: dict | None,
        current_discovered: dict | None,
    ) -> None:
        self.name = name
        self.layer = layer
        self.expected_fingerprint = expected_fingerprint
        self.current_fingerprint = current_fingerprint
        self.current_curated = current_curated
        self.current_discovered = current_discovered
        file_name = LAYER_FILES.get(layer, layer)
        super().__init__(
            f"Entry {name!r} changed on disk since it was read; not writing "
            f"{file_name}. Reload and apply the change again."
        )


class FileChangedError(ConflictError):
    """A layer file was replaced (by another tool) between our read and our write."""

    def __init__(self, path: Path) -> None:
        RegistryError.__init__(
            self,
            f"{path.name} was changed by another program while it was being "
            "written; nothing was written. Reload and apply the change again.",
        )
        self.name = ""
        self.layer = ""
        self.expected_fingerprint = ""
        self.current_fingerprint = ""
        self.current_curated = None
        self.current_discovered = None


class RegistryWriteError(RegistryError):
    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(reason)


class LockTimeout(RegistryError):
    def __init__(self, lock_path: str | os.PathLike[str], timeout: float) -> None:
        self.lock_path = Path(lock_path)
        self.timeout = timeout
        super().__init__(
            f"Could not acquire the registry write lock {self.lock_path} within "
            f"{timeout:g} s: another writer is busy, try again."
        )


#: Keys the original keeps only in the discovered layer (reference 2.5).
DYNAMIC_KEYS = frozenset(
    {
        "download_format",
        "download_location",
        "download_path",
        "download_size_bytes",
        "download_files",
        "download_directory_checksum",
        "downloaded_at",
        "last_accessed",
        "artifacts",
        "performance",
        "probes",
        "version_lock",
    }
)


# --------------------------------------------------------------------------------------
# JSON style
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JsonStyle:
    """How a layer file is formatted, so a rewrite keeps its bytes stable."""

    indent: int | str | None = 2
    ensure_ascii: bool = True
    trailing_newline: bool = True


DEFAULT_STYLE = JsonStyle()
_INDENT_RE = re.compile(r"\n([ \t]+)\S")


def detect_style(text: str | bytes) -> JsonStyle:
    """Guess the ``json.dumps`` options that produced *text*.

    Indent: the whitespace of the first indented line (a tab gives ``"\\t"``); a
    non-empty document on one line gives ``None``. ``ensure_ascii`` is False as soon as
    any raw non-ASCII character is present, otherwise True (the original writes with the
    default ``ensure_ascii=True``, which turns ``–`` into ``\\u2013``).
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    body = text.strip()
    match = _INDENT_RE.search(body)
    if match:
        ws = match.group(1)
        indent: int | str | None = len(ws) if set(ws) == {" "} else ws
    elif "\n" not in body and body not in ("", "[]"):
        indent = None
    else:
        indent = DEFAULT_STYLE.indent
    return JsonStyle(
        indent=indent,
        ensure_ascii=text.isascii(),
        trailing_newline=text.endswith("\n"),
    )


def dumps(items: Any, style: JsonStyle = DEFAULT_STYLE) -> bytes:
    """Serialize *items* the way :func:`detect_style` saw them (UTF-8 bytes)."""
    text = json.dumps(items, indent=style.indent, ensure_ascii=style.ensure_ascii)
    if style.trailing_newline:
        text += "\n"
    return text.encode("utf-8")


def _snapshot_bytes(items: list[dict]) -> bytes:
    # The original always writes the snapshot as json.dumps(indent=2) + "\n".
    return dumps(items, DEFAULT_STYLE)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a big registry is loaded or synced.

    Parsing 10,000 entries builds millions of dicts and lists; every few hundred
    allocations the collector would walk them all again, which doubled the parse
    time. Parsed JSON holds no reference cycles, so reference counting frees it all
    the same; the collector runs again as soon as the block ends. Nesting is fine.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


# --------------------------------------------------------------------------------------
# Data classes
# --------------------------------------------------------------------------------------


@dataclass
class EntryProblem:
    """One bad item in a file. ``skipped`` is False for warnings (the entry is kept)."""

    file: str
    index: int
    name: str | None
    reason: str
    skipped: bool = True

    def __str__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        where = f"{self.file}[{self.index}]" if self.index >= 0 else self.file
        return f"{where}{label}: {self.reason}"


@dataclass
class Layer:
    name: str
    path: Path
    exists: bool
    items: list[Any]
    entries: dict[str, dict]
    problems: list[EntryProblem]
    style: JsonStyle = DEFAULT_STYLE
    sha256: str = ""
    mtime_ns: int = 0
    size: int = 0


class MergedEntry:
    """One entry as both layers hold it. ``merged`` and ``sources`` are computed on
    first use: a re-sync of a big registry only merges the entries that changed."""

    name: str
    curated: dict | None
    discovered: dict | None
    from_snapshot: bool
    _merged: dict | None = None
    _sources: dict[str, str] | None = None
    _fingerprint: str | None = None

    def __init__(
        self,
        name: str,
        curated: dict | None,
        discovered: dict | None,
        from_snapshot: bool,
        merged: dict | None = None,
        sources: dict[str, str] | None = None,
        fingerprint: str | None = None,
    ) -> None:
        self.name = name
        self.curated = curated
        self.discovered = discovered
        self.from_snapshot = from_snapshot
        self._merged = merged
        self._sources = sources
        self._fingerprint = fingerprint

    @property
    def merged(self) -> dict:
        if self._merged is None:
            self._merged = merged_view(self.curated, self.discovered)
        return self._merged

    @property
    def sources(self) -> dict[str, str]:
        if self._sources is None:
            self._sources = _sources(self.curated, self.discovered, self.merged)
        return self._sources

    @property
    def fingerprint(self) -> str:
        # An adopted snapshot entry counts as discovered data, so its fingerprint
        # changes (and conflicts are detected) when the snapshot copy changes.
        if self._fingerprint is None:
            self._fingerprint = entry_fingerprint(self.curated, self.discovered)
        return self._fingerprint


@dataclass
class Registry:
    dir: Path
    curated: Layer
    discovered: Layer
    snapshot: Layer | None
    entries: dict[str, MergedEntry]
    problems: list[EntryProblem]
    migrated: bool = False


@dataclass
class WriteResult:
    layer: str
    path: Path
    backup_path: Path | None
    before: dict[str, dict | None]
    after: dict[str, dict | None]
    fingerprints: dict[str, str] = field(default_factory=dict)
    snapshot_error: str | None = None
    changed: bool = True


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------

# Sub-objects the original dereferences with .get(): null crashes its load, another type
# cannot be read at all.
_REQUIRED_DICTS = (
    "backend_config",
    "artifacts",
    "chat_template",
    "version_lock",
    "performance",
    "probes",
    "metadata",
)
_LIST_FIELDS = ("roles", "model_aliases")
_BOOL_FIELDS = (
    ("deprecated",),
    ("version_lock", "locked"),
    ("metadata", "created_from_download"),
    ("metadata", "testing"),
)


def _type_name(value: Any) -> str:
    return {
        dict: "object",
        list: "list",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
        type(None): "null",
    }.get(type(value), type(value).__name__)


def _parse_json_list(path: Path, data: bytes) -> list[Any]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise LayerParseError(
            path, f"not valid UTF-8 ({exc.reason} at byte {exc.start})"
        )
    try:
        # NaN/Infinity (Python's json.dump writes them) are not JSON; the database's
        # JSON columns refuse them, so they read as null instead of crashing a sync.
        items = json.loads(text, parse_constant=lambda _name: None)
    except json.JSONDecodeError as exc:
        raise LayerParseError(path, str(exc)) from None
    except RecursionError:
        raise LayerParseError(path, "JSON nested too deeply") from None
    if not isinstance(items, list):
        raise LayerParseError(
            path, f"the file must be a JSON list (found {_type_name(items)})"
        )
    return items


def _item_name(item: Any) -> str | None:
    """The stripped name of a dict item, or None when it has no usable name."""
    if not isinstance(item, dict):
        return None
    name = item.get("name")
    if not isinstance(name, str):
        return None
    return name.strip() or None


def _name_problem(item: Any) -> str | None:
    if not isinstance(item, dict):
        return f"not a JSON object (found {_type_name(item)})"
    name = item.get("name")
    if "name" not in item or name is None:
        return "missing name"
    if not isinstance(name, str):
        return f"name must be a string (found {_type_name(name)})"
    if not name.strip():
        return "blank name"
    return None


def _entry_issues(item: dict) -> tuple[list[str], list[str]]:
    """Return ``(fatal, warnings)`` for an item that has a usable name."""
    fatal: list[str] = []
    warnings: list[str] = []
    backend = item.get("backend")
    if isinstance(backend, dict | list):
        fatal.append(f"backend must be a string (found {_type_name(backend)})")
    for key in _REQUIRED_DICTS:
        if key not in item:
            continue
        value = item[key]
        if value is None:
            warnings.append(f"{key} is null (read as empty)")
        elif not isinstance(value, dict):
            fatal.append(f"{key} must be an object (found {_type_name(value)})")
    caps = item.get("capabilities")
    if caps is not None and not isinstance(caps, dict):
        warnings.append(
            f"capabilities is not an object (found {_type_name(caps)}; read as none)"
        )
    for key in _LIST_FIELDS:
        if key in item and not isinstance(item[key], list):
            warnings.append(f"{key} is {_type_name(item[key])}, not a list")
    warnings.extend(_nested_warnings(item))
    return fatal, warnings


def _nested_warnings(item: dict) -> list[str]:
    warnings: list[str] = []
    for path in _BOOL_FIELDS:
        value = _dig(item, path)
        if isinstance(value, str):
            dotted = ".".join(path)
            warnings.append(
                f"{dotted} is the string {value!r} (read as {to_bool(value)})"
            )
    cfg = item.get("backend_config")
    if isinstance(cfg, dict) and "port" in cfg:
        port = cfg["port"]
        ok = isinstance(port, int) and not isinstance(port, bool)
        if isinstance(port, str) and port.strip().isdigit():
            ok = True
        if not ok:
            warnings.append(
                f"backend_config.port {port!r} is not a number (default port used)"
            )
    probes = item.get("probes")
    if isinstance(probes, dict):
        vision = probes.get("vision")
        if vision and not isinstance(vision, dict):
            warnings.append("probes.vision is not an object (ignored)")
    perf = item.get("performance")
    samples = perf.get("rolling_samples", 0) if isinstance(perf, dict) else 0
    if not isinstance(samples, int):
        warnings.append("performance.rolling_samples is not a number")
    return warnings


def _dig(item: dict, path: tuple[str, ...]) -> Any:
    value: Any = item
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


NUL_REASON = (
    "contains a NUL character (\\u0000), which the database cannot store "
    "(PostgreSQL text and JSON refuse it)"
)


def contains_nul(value: Any) -> bool:
    """True when a NUL character is in any string or key of parsed JSON *value*."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(
            (isinstance(key, str) and "\x00" in key) or contains_nul(item)
            for key, item in value.items()
        )
    if isinstance(value, list):
        return any(contains_nul(item) for item in value)
    return False


def _collect_entries(
    file_name: str, layer_name: str, items: list[Any], check_nul: bool = True
) -> tuple[dict[str, dict], list[EntryProblem]]:
    """Valid entries by stripped name (file order) and the problems found.

    Duplicates: curated ones are deep-merged (later values win), every other layer keeps
    the last one; either way the name keeps the position of its first occurrence, as the
    original's ordered dict does.
    """
    entries: dict[str, dict] = {}
    first_index: dict[str, int] = {}
    problems: list[EntryProblem] = []

    def report(index: int, name: str | None, reason: str, skipped: bool = True) -> None:
        if name and "\x00" in name:
            name = name.replace("\x00", "\\u0000")  # storable, and still readable
        problems.append(EntryProblem(file_name, index, name, reason, skipped))

    for index, item in enumerate(items):
        reason = _name_problem(item)
        if reason:
            raw_name = item.get("name") if isinstance(item, dict) else None
            report(index, raw_name if isinstance(raw_name, str) else None, reason)
            continue
        name = item["name"].strip()
        if check_nul and contains_nul(item):
            report(index, name, NUL_REASON)
            continue
        fatal, warnings = _entry_issues(item)
        if fatal:
            report(index, name, "; ".join(fatal))
            continue
        for warning in warnings:
            report(index, name, warning, skipped=False)
        if name not in entries:
            entries[name] = item
            first_index[name] = index
            continue
        if layer_name == CURATED:
            entries[name] = merge_entry_dicts(entries[name], item)
            report(
                index,
                name,
                f"duplicate name (first at index {first_index[name]}); "
                "merged into the earlier entry, later values win",
                skipped=False,
            )
        else:
            report(
                first_index[name],
                name,
                f"duplicate name; superseded by the entry at index {index}",
            )
            entries[name] = item
            first_index[name] = index
    return entries, problems


def read_layer(path: str | os.PathLike[str], name: str) -> Layer:
    """Read one layer file forgivingly (see module docstring).

    A missing file gives an empty layer with ``exists=False``. Bad JSON, bad UTF-8 or a
    root that is not a list raise :class:`LayerParseError`.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            info = os.fstat(fh.fileno())
            data = fh.read()
    except FileNotFoundError:
        return Layer(name, path, False, [], {}, [])
    except IsADirectoryError:
        raise LayerParseError(path, "is a directory, not a file") from None
    except OSError as exc:
        raise LayerParseError(path, f"cannot read the file ({exc.strerror})") from None
    items = _parse_json_list(path, data)
    # A NUL can only be written escaped in valid JSON: scan the entries for one only
    # when the escape appears somewhere in the file (one fast search).
    entries, problems = _collect_entries(
        path.name, name, items, check_nul=b"\\u0000" in data
    )
    return Layer(
        name=name,
        path=path,
        exists=True,
        items=items,
        entries=entries,
        problems=problems,
        style=detect_style(data),
        sha256=hashlib.sha256(data).hexdigest(),
        mtime_ns=info.st_mtime_ns,
        size=info.st_size,
    )


def load_legacy_file(path: str | os.PathLike[str]) -> Layer:
    """Read a single-file (pre-split) registry; duplicate names: the last one wins."""
    return read_layer(path, LEGACY)


# --------------------------------------------------------------------------------------
# Merging
# --------------------------------------------------------------------------------------


_LEAF_TYPES = frozenset({str, int, float, bool, type(None)})


def _copy_json(value: Any) -> Any:
    """Deep copy of parsed JSON (dicts, lists, scalars): ~10x faster than deepcopy.

    Exact-type checks with leaves copied inline (no call per scalar): this runs for
    every entry of every sync, so it matters at 10,000 entries.
    """
    kind = type(value)
    if kind is dict:
        return {
            key: item if type(item) in _LEAF_TYPES else _copy_json(item)
            for key, item in value.items()
        }
    if kind is list:
        return [
            item if type(item) in _LEAF_TYPES else _copy_json(item) for item in value
        ]
    if isinstance(value, dict):
        return {key: _copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_json(item) for item in value]
    if isinstance(value, tuple | set):
        return copy.deepcopy(value)
    return value


def merged_view(curated: dict | None, discovered: dict | None) -> dict:
    """One entry as every tool sees it: curated over discovered, a new dict."""
    if curated is not None and discovered is not None:
        return merge_entry_dicts(discovered, curated)
    base = curated if curated is not None else discovered
    return _copy_dicts(base or {})


def merge_entry_dicts(
    base: Mapping[str, Any] | None, overlay: Mapping[str, Any]
) -> dict:
    """The original merge rule (reference §2.2 step 9), returning a new dict.

    Overlay ``None`` values are skipped (base wins); when both sides are dicts they merge
    recursively; any other overlay value (lists, ``""``, ``false``, ``0``) replaces.
    Key order: base keys first, new overlay keys appended.
    """
    result = _copy_dicts(base) if isinstance(base, Mapping) else {}
    _merge_into(result, overlay)
    return result


def _copy_dicts(value: Mapping[str, Any]) -> dict:
    """Copy the dict levels only; lists and scalars are shared, never mutated.

    The merge only ever writes into dicts, so copying lists (the bulk of an entry:
    artifact file lists, download files) would be wasted work on every sync.
    """
    return {
        key: _copy_dicts(item) if isinstance(item, dict) else item
        for key, item in value.items()
    }


_PLAIN_TYPES = frozenset({str, int, float, bool, list})


def _merge_into(result: dict, overlay: Mapping[str, Any]) -> None:
    for key, value in overlay.items():
        if value is None:
            continue
        if type(value) in _PLAIN_TYPES:  # fast path: most values are leaves or lists
            result[key] = value
            continue
        current = result.get(key)
        if isinstance(value, Mapping) and isinstance(current, dict):
            _merge_into(current, value)
        elif isinstance(value, dict):
            result[key] = _copy_dicts(value)
        else:
            result[key] = value


def entry_fingerprint(curated_raw: dict | None, discovered_raw: dict | None) -> str:
    """sha256 of the canonical JSON of ``[curated_raw, discovered_raw]``.

    Canonical: sorted keys, no spaces, UTF-8, as orjson writes it (5x faster than the
    standard library, and every sync fingerprints every entry). Values orjson cannot
    write (integers beyond 64 bits, lone surrogates) use the standard encoder.
    """
    value = [curated_raw, discovered_raw]
    try:
        data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        data = _FINGERPRINT_FALLBACK.encode(value).encode("utf-8", "surrogatepass")
    return hashlib.sha256(data).hexdigest()


_FINGERPRINT_FALLBACK = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False
)


#: Fingerprint of an entry that exists in no layer (use it as an ``expected`` value).
ABSENT_FINGERPRINT = entry_fingerprint(None, None)


def _sources(curated: dict | None, discovered: dict | None, merged: dict) -> dict:
    """Which layer each top-level key of *merged* comes from.

    "both" when both layers hold a non-null value (curated's won), otherwise the layer
    holding the non-null value; for a key null everywhere, the layer(s) that hold it.
    """
    cur = curated or {}
    disc = discovered or {}
    sources: dict[str, str] = {}
    for key in merged:
        in_cur, in_disc = cur.get(key) is not None, disc.get(key) is not None
        if not (in_cur or in_disc):
            in_cur, in_disc = key in cur, key in disc
        if in_cur and in_disc:
            sources[key] = "both"
        else:
            sources[key] = CURATED if in_cur else DISCOVERED
    return sources


def _make_entry(
    name: str, curated: dict | None, discovered: dict | None, from_snapshot: bool
) -> MergedEntry:
    return MergedEntry(name, curated, discovered, from_snapshot)


def _known_names(layer: Layer) -> set[str]:
    # Includes names of skipped (invalid) items, so a broken layer entry is reported
    # rather than silently replaced by a stale snapshot copy.
    return {name for name in map(_item_name, layer.items) if name}


def _merge_layers(
    curated: Layer,
    discovered: Layer,
    snapshot: Layer | None,
    drop_adopted: set[str] = frozenset(),  # type: ignore[assignment]
) -> dict[str, MergedEntry]:
    """Discovered order, then snapshot adoptions, then curated-only names."""
    base: dict[str, tuple[dict, bool]] = {
        name: (raw, False) for name, raw in discovered.entries.items()
    }
    if snapshot is not None:
        known = _known_names(curated) | _known_names(discovered)
        for name, raw in snapshot.entries.items():
            if name not in known and name not in drop_adopted:
                base[name] = (raw, True)
    entries: dict[str, MergedEntry] = {}
    for name, (raw, adopted) in base.items():
        entries[name] = _make_entry(name, curated.entries.get(name), raw, adopted)
    for name, raw in curated.entries.items():
        if name not in entries:
            entries[name] = _make_entry(name, raw, None, False)
    return entries


def _read_snapshot(folder: Path) -> tuple[Layer | None, list[EntryProblem]]:
    """The snapshot, or None when missing or unreadable (the original ignores it)."""
    try:
        layer = read_layer(folder / SNAPSHOT_FILE, SNAPSHOT)
    except LayerParseError as exc:
        return None, [EntryProblem(SNAPSHOT_FILE, -1, None, f"ignored: {exc}")]
    return (layer if layer.exists else None), []


def _build_registry(
    folder: Path,
    drop_adopted: set[str] = frozenset(),  # type: ignore[assignment]
) -> Registry:
    curated = read_layer(folder / CURATED_FILE, CURATED)
    discovered = read_layer(folder / DISCOVERED_FILE, DISCOVERED)
    snapshot, snapshot_problems = _read_snapshot(folder)
    return Registry(
        dir=folder,
        curated=curated,
        discovered=discovered,
        snapshot=snapshot,
        entries=_merge_layers(curated, discovered, snapshot, drop_adopted),
        problems=curated.problems + discovered.problems + snapshot_problems,
    )


def _classify_legacy(item: Any) -> str:
    """The original's split rule; non-objects go to discovered so nothing is lost."""
    if not isinstance(item, dict):
        return DISCOVERED
    meta = item.get("metadata")
    from_download = isinstance(meta, dict) and meta.get("created_from_download")
    if from_download or item.get("backend") in {"ollama", "unassigned"}:
        return DISCOVERED
    return CURATED


def _migrate_legacy(folder: Path) -> bool:
    """Split a legacy single-file registry into the two layers (reference §2.2 step 4).

    The layers are written before the snapshot is renamed (the original renames first):
    a crash in between then leaves a loadable registry instead of only a backup file.
    """
    curated_path = folder / CURATED_FILE
    discovered_path = folder / DISCOVERED_FILE
    snapshot_path = folder / SNAPSHOT_FILE
    with registry_lock(folder):
        if curated_path.exists() or discovered_path.exists():
            return False  # another process migrated while we waited for the lock
        if not snapshot_path.exists():
            return False
        legacy = load_legacy_file(snapshot_path)
        split: dict[str, list[Any]] = {CURATED: [], DISCOVERED: []}
        for item in legacy.items:
            split[_classify_legacy(item)].append(item)
        atomic_write(curated_path, dumps(split[CURATED], legacy.style), keep_backups=0)
        atomic_write(
            discovered_path, dumps(split[DISCOVERED], legacy.style), keep_backups=0
        )
        backup = folder / LEGACY_BACKUP_FILE
        if not backup.exists():
            try:
                os.rename(snapshot_path, backup)
            except OSError as exc:
                raise _write_error(snapshot_path, exc) from exc
        return True


def load_registry(
    dir: str | os.PathLike[str], *, migrate_legacy: bool = True
) -> Registry:
    """Load and merge a registry folder (reference §2.2), never writing the snapshot.

    With only ``model_registry.json`` present the legacy file is split into the two
    layers (``migrate_legacy=True``, under the write lock) or, without migration, read as
    if every entry had been adopted from the snapshot. Raises :class:`RegistryNotFound`
    when the folder is missing or holds no registry file, :class:`LayerParseError` for a
    broken layer file.
    """
    folder = Path(dir)
    if not folder.is_dir():
        raise RegistryNotFound(folder, f"Registry folder not found: {folder}")
    migrated = False
    has_layer = (folder / CURATED_FILE).exists() or (folder / DISCOVERED_FILE).exists()
    if not has_layer and migrate_legacy and (folder / SNAPSHOT_FILE).exists():
        migrated = _migrate_legacy(folder)
    with gc_paused():
        registry = _build_registry(folder)
    if not (registry.curated.exists or registry.discovered.exists or registry.snapshot):
        raise RegistryNotFound(folder)
    registry.migrated = migrated
    return registry


def export_merged(registry: Registry) -> list[dict]:
    """The merged raw dicts in registry order: what the original writes as the snapshot."""
    return [_copy_json(entry.merged) for entry in registry.entries.values()]


def layer_signatures(dir: str | os.PathLike[str]) -> dict[str, tuple[int, int] | None]:
    """Cheap change detection: ``(mtime_ns, size)`` of each file, None when missing."""
    folder = Path(dir)
    files = {
        CURATED: CURATED_FILE,
        DISCOVERED: DISCOVERED_FILE,
        SNAPSHOT: SNAPSHOT_FILE,
    }
    result: dict[str, tuple[int, int] | None] = {}
    for key, file_name in files.items():
        try:
            info = os.stat(folder / file_name)
        except OSError:
            result[key] = None
        else:
            result[key] = (info.st_mtime_ns, info.st_size)
    return result


# --------------------------------------------------------------------------------------
# Locking and atomic writes
# --------------------------------------------------------------------------------------


def _write_error(path: Path, exc: OSError) -> RegistryWriteError:
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
    lock = filelock.FileLock(str(lock_path), is_singleton=True)
    try:
        lock.acquire(timeout=timeout)
    except filelock.Timeout:
        raise LockTimeout(lock_path, timeout) from None
    except OSError as exc:
        raise _write_error(lock_path, exc) from exc
    try:
        yield lock_path
    finally:
        lock.release()


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


def _replace_file(path: Path, data: bytes, mode: int) -> None:
    """Write *data* to a temp file beside *path*, fsync, chmod, rename over *path*."""
    tmp: Path | None = None
    try:
        with tempfile.NamedTemporaryFile(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
        ) as fh:
            tmp = Path(fh.name)
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from exc
    finally:
        if tmp is not None:
            try:
                tmp.unlink()
            except OSError:
                pass


STALE_TEMP_SECONDS = 600


def _remove_stale_temps(path: Path) -> None:
    """Delete temp files a killed writer left beside *path* (only old ones).

    A temp file younger than STALE_TEMP_SECONDS may belong to a writer still running.
    """
    prefix = f".{path.name}."
    now = time.time()
    try:
        candidates = [p for p in path.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return
    for candidate in candidates:
        if not candidate.name.endswith(".tmp"):
            continue
        try:
            if now - candidate.stat().st_mtime > STALE_TEMP_SECONDS:
                candidate.unlink()
        except OSError:
            pass


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
    data: bytes,
    *,
    keep_backups: int = 20,
    expected_sha256: str | None = None,
) -> Path | None:
    """Replace *path* with *data* so readers only ever see the old or the new bytes.

    Does nothing (returns None) when the bytes are unchanged. Otherwise, when the file
    existed and ``keep_backups > 0``, first saves the old bytes as
    ``<stem>.<YYYYmmdd-HHMMSS-ffffff>.bak.json`` (UTC) beside it, prunes that file's own
    older backups beyond *keep_backups*, and returns the backup path. Permission bits of
    the old file are kept. Raises :class:`RegistryWriteError` (nothing partial left).
    With *expected_sha256* (the sha256 of the bytes the caller read), a file replaced
    meanwhile by a tool that does not take our lock raises :class:`FileChangedError`.
    """
    path = Path(path)
    try:
        old: bytes | None = path.read_bytes()
    except FileNotFoundError:
        old = None
    except OSError as exc:
        raise _write_error(path, exc) from exc
    if (
        expected_sha256
        and old is not None
        and hashlib.sha256(old).hexdigest() != expected_sha256
    ):
        raise FileChangedError(path)
    if old == data:
        return None
    _check_writable(path)
    mode = _default_mode() if old is None else stat.S_IMODE(os.stat(path).st_mode)
    backup: Path | None = None
    if old is not None and keep_backups > 0:
        backup = _backup_path(path)
        _replace_file(backup, old, mode)
        _prune_backups(path, keep_backups)
    _replace_file(path, data, mode)
    _remove_stale_temps(path)
    return backup


# --------------------------------------------------------------------------------------
# Write-back
# --------------------------------------------------------------------------------------


def _validate_updates(updates: Mapping[str, dict | None]) -> None:
    for name, raw in updates.items():
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise ValueError(f"Invalid entry name {name!r} in update")
        if raw is None:
            continue
        if not isinstance(raw, dict):
            raise ValueError(f"Update for {name!r} must be a dict or None")
        raw_name = raw.get("name")
        if not isinstance(raw_name, str) or raw_name.strip() != name:
            raise ValueError(f"Update for {name!r} has name {raw_name!r}")
        if contains_nul(raw):
            raise ValueError(f"Update for {name!r} {NUL_REASON}")


def _like(old: Any, new: Any) -> Any:
    """*new* with its dict keys in *old*'s order (new keys last), for minimal diffs."""
    if not (isinstance(old, dict) and isinstance(new, dict)):
        return _copy_json(new)
    ordered = {key: _like(old[key], new[key]) for key in old if key in new}
    for key, value in new.items():
        if key not in ordered:
            ordered[key] = _copy_json(value)
    return ordered


def _apply_updates(items: list[Any], updates: Mapping[str, dict | None]) -> list[Any]:
    """Patch raw items by name, keeping every other item (even invalid ones) as is.

    An updated name takes the position of its first item; later items with the same
    name are dropped, because with "last wins" they would otherwise hide the update.
    New names are appended.
    """
    result: list[Any] = []
    handled: set[str] = set()
    for item in items:
        name = _item_name(item)
        if name is None or name not in updates:
            result.append(item)
            continue
        if name in handled:
            continue
        handled.add(name)
        if updates[name] is not None:
            result.append(_like(item, updates[name]))
    for name, raw in updates.items():
        if name not in handled and raw is not None:
            result.append(_copy_json(raw))
    return result


def _check_expected(
    registry: Registry, layer: str, expected: Mapping[str, str | None]
) -> None:
    for name, want in expected.items():
        want = ABSENT_FINGERPRINT if want is None else want
        entry = registry.entries.get(name)
        current = entry.fingerprint if entry else ABSENT_FINGERPRINT
        if current != want:
            raise ConflictError(
                name,
                layer,
                want,
                current,
                _copy_json(entry.curated) if entry else None,
                _copy_json(entry.discovered) if entry else None,
            )


def _materialize_snapshot(registry: Registry) -> str | None:
    """Rewrite the snapshot from *registry*; return an error message instead of raising.

    Like the original, a snapshot that cannot be written never fails the operation.
    """
    try:
        atomic_write(
            registry.dir / SNAPSHOT_FILE,
            _snapshot_bytes([entry.merged for entry in registry.entries.values()]),
            keep_backups=0,
        )
    except (RegistryError, OSError) as exc:
        return str(exc)
    return None


def write_layer_entries(
    dir: str | os.PathLike[str],
    layer: str,
    updates: Mapping[str, dict | None],
    *,
    expected: Mapping[str, str | None] | None = None,
    keep_backups: int = 20,
    lock_timeout: float = 30.0,
) -> WriteResult:
    """Write some entries of one layer back to disk, safely.

    *updates* maps a name to its new raw dict for *layer* (None removes it). *expected*
    maps names to the fingerprint the caller read (:attr:`MergedEntry.fingerprint`, or
    None / :data:`ABSENT_FINGERPRINT` for "must not exist"); any mismatch raises
    :class:`ConflictError` and nothing is written. Under the registry lock: re-read both
    layers, check, patch the raw items in place, write atomically with a backup, then
    re-materialize the snapshot (its errors are returned, not raised). Removing a name
    also drops it from the snapshot, so it is not re-adopted on the next load.
    """
    if layer not in LAYER_FILES:
        raise ValueError(
            f"Unknown layer {layer!r} (expected 'curated' or 'discovered')"
        )
    _validate_updates(updates)
    folder = Path(dir)
    with registry_lock(folder, lock_timeout):
        current = _build_registry(folder)
        _check_expected(current, layer, expected or {})
        target = current.curated if layer == CURATED else current.discovered
        before = {name: _copy_json(target.entries.get(name)) for name in updates}
        style = target.style if target.exists else DEFAULT_STYLE
        try:
            data = dumps(_apply_updates(target.items, updates), style)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Update cannot be stored as JSON: {exc}") from None
        path = folder / LAYER_FILES[layer]
        changed = hashlib.sha256(data).hexdigest() != target.sha256
        if not target.exists and data == dumps([], style):
            changed = False  # removing from a missing layer must not create it
        backup = (
            atomic_write(
                path,
                data,
                keep_backups=keep_backups,
                expected_sha256=target.sha256 if target.exists else None,
            )
            if changed
            else None
        )
        removed = {name for name, raw in updates.items() if raw is None}
        fresh = _build_registry(folder, drop_adopted=removed)
        snapshot_error = _materialize_snapshot(fresh)
    fresh_layer = fresh.curated if layer == CURATED else fresh.discovered
    return WriteResult(
        layer=layer,
        path=path,
        backup_path=backup,
        before=before,
        after={name: _copy_json(fresh_layer.entries.get(name)) for name in updates},
        fingerprints={
            name: fresh.entries[name].fingerprint
            if name in fresh.entries
            else ABSENT_FINGERPRINT
            for name in updates
        },
        snapshot_error=snapshot_error,
        changed=changed,
    )


# --------------------------------------------------------------------------------------
# Fast single-entry write (splice)
# --------------------------------------------------------------------------------------
#
# ``write_layer_entries`` re-reads and re-merges the whole registry and re-serializes
# both written files with the pure-Python indenting encoder: ~40 s for 10,000 entries.
# When the caller knows what the files hold (its mirror of the last full read, checked
# by sha256 under the lock), one entry can be written by replacing only that entry's
# text span in the layer and in the snapshot. ``json.dumps(items, indent=I)`` renders a
# list item as ``json.dumps(item, indent=I)`` with every line indented by one more
# level, so the spliced file is byte-identical to a full rewrite of a canonical file.
# Anything unusual (not canonical, duplicates, added/removed entries, stale snapshot)
# returns None and the caller falls back to ``write_layer_entries``.


@dataclass
class KnownState:
    """What the caller's mirror says the files hold (from its last full read)."""

    sha256: dict[str, str]  # CURATED / DISCOVERED / SNAPSHOT -> sha256 of the bytes
    curated: dict | None
    discovered: dict | None
    fingerprint: str
    # The snapshot equals the merge of the layers (sync checked it); only then may one
    # entry of it be spliced instead of re-materializing the whole file.
    snapshot_current: bool = False


@dataclass
class FileState:
    mtime_ns: int
    size: int
    sha256: str


@dataclass
class SpliceResult:
    write: WriteResult
    entry: MergedEntry  # the entry as a full re-read would now merge it
    files: dict[str, FileState]  # new state of the files that were (re)written
    snapshot_current: bool


def _null_constant(_name: str) -> None:
    # As the reader (_parse_json_list): NaN/Infinity read as null.
    return None


def _item_indent(style: JsonStyle) -> str | None:
    indent = style.indent
    if isinstance(indent, bool):
        return None
    if isinstance(indent, int):
        return " " * indent if indent > 0 else None
    if isinstance(indent, str) and indent and not indent.strip():
        return indent
    return None


def render_item(item: Any, style: JsonStyle) -> str:
    """*item* exactly as ``json.dumps([... item ...], indent=...)`` renders it in a list.

    JSON strings never hold a raw newline, so re-indenting by line is exact.
    """
    indent = _item_indent(style)
    if indent is None:
        raise ValueError(f"not an indented style: {style!r}")
    text = json.dumps(item, indent=style.indent, ensure_ascii=style.ensure_ascii)
    return text.replace("\n", "\n" + indent)


def find_item_span(
    text: str, name: str, expected: dict, style: JsonStyle
) -> tuple[int, int] | None:
    """``(start, end)`` of the one top-level item of *text* that renders as *expected*.

    Looks for the item's ``"name"`` line at item-key depth; returns None unless there is
    exactly one such line, the surrounding braces sit at item depth, the span parses to
    *expected* and re-renders to exactly the same text (so the file is canonical there).
    """
    indent = _item_indent(style)
    if indent is None or not isinstance(expected, dict):
        return None
    if expected.get("name") != name:
        return None
    key_line = (
        "\n"
        + indent * 2
        + '"name": '
        + json.dumps(name, ensure_ascii=style.ensure_ascii)
    )
    hits: list[int] = []
    pos = text.find(key_line)
    while pos >= 0:
        tail = text[pos + len(key_line) : pos + len(key_line) + 1]
        if tail in (",", "\n"):
            hits.append(pos)
            if len(hits) > 1:
                return None
        pos = text.find(key_line, pos + 1)
    if len(hits) != 1:
        return None
    hit = hits[0]
    open_mark = "\n" + indent + "{"
    close_mark = "\n" + indent + "}"
    start = text.rfind(open_mark, 0, hit)
    end = text.find(close_mark, hit)
    if start < 0 or end < 0:
        return None
    start += len(open_mark) - 1
    end += len(close_mark)
    before = text[start - len(indent) - 2 : start - len(indent)]
    after = text[end : end + 2]
    if before not in ("[\n", ",\n") or not (after == "\n]" or after[:1] == ","):
        return None
    if after[:1] == "," and text[end : end + 2 + len(indent)] != ",\n" + indent:
        return None
    span = text[start:end]
    try:
        if json.loads(span, parse_constant=_null_constant) != expected:
            return None
    except ValueError:
        return None
    if render_item(expected, style) != span:
        return None
    return start, end


def _entry_clean(item: Any) -> bool:
    """A named object item the reader takes as is (no skip, no warning)."""
    if _name_problem(item):
        return False
    fatal, warnings = _entry_issues(item)
    return not fatal and not warnings


def _file_state(path: Path, data: bytes) -> FileState:
    info = os.stat(path)
    return FileState(info.st_mtime_ns, info.st_size, hashlib.sha256(data).hexdigest())


def splice_entry_write(
    dir: str | os.PathLike[str],
    layer: str,
    name: str,
    raw: dict | None,
    *,
    known: KnownState,
    expected: str | None = None,
    keep_backups: int = 20,
    lock_timeout: float = 30.0,
) -> SpliceResult | None:
    """Write one existing entry's new raw dict for *layer* by splicing, or return None.

    Same contract as ``write_layer_entries(dir, layer, {name: raw}, expected={name:
    expected})`` (the same bytes are written, :class:`ConflictError` when the entry
    moved) but only for the common case: the files' bytes are the ones *known*
    describes (sha256, checked under the lock), the entry exists once in *layer* and
    stays there, old and new copies are clean, and the layer and the snapshot are in
    canonical ``json.dumps`` style. Returns None, having written nothing, otherwise.
    """
    if layer not in LAYER_FILES:
        raise ValueError(
            f"Unknown layer {layer!r} (expected 'curated' or 'discovered')"
        )
    _validate_updates({name: raw})
    old = known.curated if layer == CURATED else known.discovered
    if raw is None or old is None or not known.snapshot_current:
        return None
    folder = Path(dir)
    paths = {
        CURATED: folder / CURATED_FILE,
        DISCOVERED: folder / DISCOVERED_FILE,
        SNAPSHOT: folder / SNAPSHOT_FILE,
    }
    with registry_lock(folder, lock_timeout):
        data: dict[str, bytes] = {}
        for key in (layer, SNAPSHOT, DISCOVERED if layer == CURATED else CURATED):
            try:
                data[key] = paths[key].read_bytes()
            except OSError:
                return None
            if hashlib.sha256(data[key]).hexdigest() != known.sha256.get(key):
                return None
        # The files are exactly what the caller's mirror was built from.
        want = ABSENT_FINGERPRINT if expected is None else expected
        if known.fingerprint != want:
            raise ConflictError(
                name,
                layer,
                want,
                known.fingerprint,
                _copy_json(known.curated),
                _copy_json(known.discovered),
            )
        if not _entry_clean(old):
            return None
        layer_data, snap_data = data[layer], data[SNAPSHOT]
        if layer_data.startswith(b"\xef\xbb\xbf") or snap_data.startswith(
            b"\xef\xbb\xbf"
        ):
            return None
        try:
            text = layer_data.decode("utf-8")
            snap_text = snap_data.decode("utf-8")
        except UnicodeDecodeError:
            return None
        style = detect_style(text)
        if _item_indent(style) is None or detect_style(snap_text) != DEFAULT_STYLE:
            return None
        span = find_item_span(text, name, old, style)
        if span is None:
            return None
        try:
            rendered = render_item(_like(old, raw), style)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Update cannot be stored as JSON: {exc}") from None
        new_item = json.loads(
            rendered, parse_constant=_null_constant
        )  # what the next read will see
        if not _entry_clean(new_item):
            return None
        curated, discovered = known.curated, known.discovered
        old_entry = _make_entry(name, curated, discovered, False)
        if layer == CURATED:
            curated = new_item
        else:
            discovered = new_item
        entry = _make_entry(name, curated, discovered, False)
        snap_span = find_item_span(snap_text, name, old_entry.merged, DEFAULT_STYLE)
        if snap_span is None:
            return None
        new_data = (text[: span[0]] + rendered + text[span[1] :]).encode("utf-8")
        new_snap = (
            snap_text[: snap_span[0]]
            + render_item(entry.merged, DEFAULT_STYLE)
            + snap_text[snap_span[1] :]
        ).encode("utf-8")

        path = paths[layer]
        changed = new_data != layer_data
        backup = (
            atomic_write(
                path,
                new_data,
                keep_backups=keep_backups,
                expected_sha256=hashlib.sha256(layer_data).hexdigest(),
            )
            if changed
            else None
        )
        files = {layer: _file_state(path, new_data)}
        snapshot_error = None
        try:
            atomic_write(paths[SNAPSHOT], new_snap, keep_backups=0)
        except (RegistryError, OSError) as exc:
            snapshot_error = str(exc)
        try:
            on_disk = new_snap if snapshot_error is None else snap_data
            files[SNAPSHOT] = _file_state(paths[SNAPSHOT], on_disk)
        except OSError:
            pass
    return SpliceResult(
        write=WriteResult(
            layer=layer,
            path=path,
            backup_path=backup,
            before={name: _copy_json(old)},
            after={name: _copy_json(new_item)},
            fingerprints={name: entry.fingerprint},
            snapshot_error=snapshot_error,
            changed=changed,
        ),
        entry=entry,
        files=files,
        snapshot_current=snapshot_error is None,
    )


def snapshot_matches(registry: Registry) -> bool:
    """True when the snapshot holds exactly the merged entries (what a write would put).

    Compares values and top-level key order (nested key order is checked per entry
    when :func:`splice_entry_write` touches it).
    """
    snap = registry.snapshot
    if snap is None or snap.style != DEFAULT_STYLE:
        return False
    merged = [entry.merged for entry in registry.entries.values()]
    if len(snap.items) != len(merged) or snap.items != merged:
        return False
    return all(list(a) == list(b) for a, b in zip(snap.items, merged, strict=True))
