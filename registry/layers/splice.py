"""Fast single-entry write: replace one entry's text span in the layer and the snapshot.
``write_layer_entries`` re-reads and re-merges the whole registry and re-serializes
both written files with the pure-Python indenting encoder: ~40 s for 10,000 entries.
When the caller knows what the files hold (its mirror of the last full read, checked
by sha256 under the lock), one entry can be written by replacing only that entry's
text span in the layer and in the snapshot. ``json.dumps(items, indent=I)`` renders a
list item as ``json.dumps(item, indent=I)`` with every line indented by one more
level, so the spliced file is byte-identical to a full rewrite of a canonical file.
Anything unusual (not canonical, duplicates, added/removed entries, stale snapshot)
returns None and the caller falls back to ``write_layer_entries``.

Each big file is read once and hashed once: the hash of the bytes before the entry
is kept, so the new file's hash covers only the entry and what follows it, and the
new file is written as three pieces (:class:`~.files.Spliced`), never joined.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.hashing import hash_file

from .constants import (
    CURATED,
    CURATED_FILE,
    DISCOVERED,
    DISCOVERED_FILE,
    LAYER_FILES,
    SNAPSHOT,
    SNAPSHOT_FILE,
)
from .errors import ConflictError, FileChangedError, RegistryError
from .files import Spliced, atomic_write, registry_lock
from .merge import ABSENT_FINGERPRINT, MergedEntry, copy_json
from .read import entry_issues, name_problem
from .style import DEFAULT_STYLE, JsonStyle, detect_parsed_style
from .write import WriteResult, ordered_like, validate_updates


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
    data: bytes, name: str, expected: dict, style: JsonStyle
) -> tuple[int, int] | None:
    """``(start, end)`` byte offsets of the one top-level item of *data* (a layer or
    snapshot file's UTF-8 bytes) that renders as *expected*.

    Looks for the item's ``"name"`` line at item-key depth; returns None unless there is
    exactly one such line, the surrounding braces sit at item depth, the span parses to
    *expected* and re-renders to exactly the same bytes (so the file is canonical
    there). Works on the bytes: an 84 MB file is neither decoded nor copied.
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
    ).encode("utf-8")
    hits: list[int] = []
    pos = data.find(key_line)
    while pos >= 0:
        tail = data[pos + len(key_line) : pos + len(key_line) + 1]
        if tail in (b",", b"\n"):
            hits.append(pos)
            if len(hits) > 1:
                return None
        pos = data.find(key_line, pos + 1)
    if len(hits) != 1:
        return None
    hit = hits[0]
    pad = indent.encode("ascii")  # whitespace only (_item_indent)
    open_mark = b"\n" + pad + b"{"
    close_mark = b"\n" + pad + b"}"
    start = data.rfind(open_mark, 0, hit)
    end = data.find(close_mark, hit)
    if start < 0 or end < 0:
        return None
    start += len(open_mark) - 1
    end += len(close_mark)
    before = data[start - len(pad) - 2 : start - len(pad)]
    after = data[end : end + 2]
    if before not in (b"[\n", b",\n") or not (after == b"\n]" or after[:1] == b","):
        return None
    if after[:1] == b"," and data[end : end + 2 + len(pad)] != b",\n" + pad:
        return None
    span = data[start:end]
    try:
        if json.loads(span, parse_constant=_null_constant) != expected:
            return None
    except (ValueError, RecursionError):  # the bytes are not yet checked by hash
        return None
    if render_item(expected, style).encode("utf-8") != span:
        return None
    return start, end


def _entry_clean(item: Any) -> bool:
    """A named object item the reader takes as is (no skip, no warning)."""
    if name_problem(item):
        return False
    fatal, warnings = entry_issues(item)
    return not fatal and not warnings


def _file_state(path: Path, sha256: str) -> FileState:
    info = os.stat(path)
    return FileState(info.st_mtime_ns, info.st_size, sha256)


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
    validate_updates({name: raw})
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
        other = DISCOVERED if layer == CURATED else CURATED
        try:
            if hash_file(paths[other]) != known.sha256.get(other):
                return None
        except OSError:
            return None
        data = _read_files(paths, layer)
        if data is None:
            return None
        where = _locate(name, layer, known, data[layer], data[SNAPSHOT])
        heads = _check_hashes(data, where, layer, known.sha256)
        if heads is None:
            return None
        # The files are exactly what the caller's mirror was built from.
        want = ABSENT_FINGERPRINT if expected is None else expected
        if known.fingerprint != want:
            raise ConflictError(
                name,
                layer,
                want,
                known.fingerprint,
                copy_json(known.curated),
                copy_json(known.discovered),
            )
        if where is None:
            return None
        plan = _plan(name, layer, raw, known, data, where)
        if plan is None:
            return None
        try:
            return _write(plan, paths, layer, data, known.sha256, heads, keep_backups)
        except FileChangedError:
            # Another program replaced the layer while we wrote it (nothing was
            # renamed): the caller redoes the write from the files.
            return None


@dataclass
class _Where:
    """Where the entry's text sits: its byte span in the layer and in the snapshot."""

    style: JsonStyle  # the layer's (the snapshot's is DEFAULT_STYLE)
    layer_span: tuple[int, int]
    snap_span: tuple[int, int]


@dataclass
class _Splice:
    """One entry's splice, computed and checked, not yet written."""

    name: str
    old_item: dict
    new_item: dict
    entry: MergedEntry  # the entry as a full re-read will merge it
    new_data: Spliced  # the layer file
    new_snap: Spliced  # the snapshot


def _read_files(paths: dict[str, Path], layer: str) -> dict[str, bytes] | None:
    """The bytes of the layer and of the snapshot (checked by :func:`_check_hashes`)."""
    try:
        return {key: paths[key].read_bytes() for key in (layer, SNAPSHOT)}
    except OSError:
        return None


def _check_hashes(
    data: dict[str, bytes], where: _Where | None, layer: str, known: dict[str, str]
) -> dict[str, Any] | None:
    """None unless the layer's and the snapshot's bytes are the ones *known* hashed.

    Each file is hashed once, in two parts split where the entry starts; the hash
    of the part before it is kept (``{key: sha256 object}``) so the new file's hash
    costs only the entry and what follows it (:func:`_new_sha256`).
    """
    heads: dict[str, Any] = {}
    for key, span in (
        (layer, where and where.layer_span),
        (SNAPSHOT, where and where.snap_span),
    ):
        view = memoryview(data[key])
        at = span[0] if span else len(view)
        head = hashlib.sha256(view[:at])
        whole = head.copy()
        whole.update(view[at:])
        if whole.hexdigest() != known.get(key):
            return None
        heads[key] = head
    return heads


def _new_sha256(head: Any, new: Spliced) -> str:
    """sha256 of *new*, given *head*: the hash of the bytes before its span."""
    digest = head.copy()
    _before, middle, after = new.pieces()
    digest.update(middle)
    digest.update(after)
    return digest.hexdigest()


def _locate(
    name: str, layer: str, known: KnownState, layer_data: bytes, snap_data: bytes
) -> _Where | None:
    """The entry's spans, or None when the files are not canonical around it (or
    its old copy is not clean): no splice then."""
    old = known.curated if layer == CURATED else known.discovered
    if not _entry_clean(old):
        return None
    bom = b"\xef\xbb\xbf"
    if layer_data.startswith(bom) or snap_data.startswith(bom):
        return None
    # The bytes are the ones the last full read parsed as UTF-8 JSON (their sha256 is
    # checked next): they are searched and spliced as bytes, with no decoded copy,
    # and their style is read without a stripped copy of each file.
    style = detect_parsed_style(layer_data)
    if _item_indent(style) is None or detect_parsed_style(snap_data) != DEFAULT_STYLE:
        return None
    span = find_item_span(layer_data, name, old, style)
    if span is None:
        return None
    old_entry = MergedEntry(name, known.curated, known.discovered, False)
    snap_span = find_item_span(snap_data, name, old_entry.merged, DEFAULT_STYLE)
    if snap_span is None:
        return None
    return _Where(style, span, snap_span)


def _plan(
    name: str,
    layer: str,
    raw: dict,
    known: KnownState,
    data: dict[str, bytes],
    where: _Where,
) -> _Splice | None:
    """The new layer and snapshot, or None when the new copy is not clean."""
    old = known.curated if layer == CURATED else known.discovered
    try:
        rendered = render_item(ordered_like(old, raw), where.style)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Update cannot be stored as JSON: {exc}") from None
    # What the next read will see.
    new_item = json.loads(rendered, parse_constant=_null_constant)
    if not _entry_clean(new_item):
        return None
    curated, discovered = known.curated, known.discovered
    if layer == CURATED:
        curated = new_item
    else:
        discovered = new_item
    entry = MergedEntry(name, curated, discovered, False)
    new_data = Spliced(data[layer], *where.layer_span, rendered.encode("utf-8"))
    new_snap = Spliced(
        data[SNAPSHOT],
        *where.snap_span,
        render_item(entry.merged, DEFAULT_STYLE).encode("utf-8"),
    )
    return _Splice(name, old, new_item, entry, new_data, new_snap)


def _write(
    plan: _Splice,
    paths: dict[str, Path],
    layer: str,
    data: dict[str, bytes],
    known_sha256: dict[str, str],
    heads: dict[str, Any],
    keep_backups: int,
) -> SpliceResult:
    """Write the layer (with a backup) then the snapshot, under the caller's lock.
    *data* holds the files' bytes as read under it, *known_sha256* their hashes and
    *heads* the hashes of their bytes before the entry (:func:`_check_hashes`).

    A snapshot that cannot be written is reported, never raised (like the original).
    """
    path = paths[layer]
    layer_data = data[layer]
    changed = not plan.new_data.same_as(layer_data)
    backup = (
        atomic_write(
            path,
            plan.new_data,
            keep_backups=keep_backups,
            expected_sha256=known_sha256[layer],
            current=layer_data,
        )
        if changed
        else None
    )
    files = {layer: _file_state(path, _new_sha256(heads[layer], plan.new_data))}
    snapshot_error = None
    try:
        atomic_write(
            paths[SNAPSHOT], plan.new_snap, keep_backups=0, current=data[SNAPSHOT]
        )
    except (RegistryError, OSError) as exc:
        snapshot_error = str(exc)
    try:
        files[SNAPSHOT] = _file_state(
            paths[SNAPSHOT],
            _new_sha256(heads[SNAPSHOT], plan.new_snap)
            if snapshot_error is None
            else known_sha256[SNAPSHOT],
        )
    except OSError:
        pass
    name = plan.name
    return SpliceResult(
        write=WriteResult(
            layer=layer,
            path=path,
            backup_path=backup,
            before={name: copy_json(plan.old_item)},
            after={name: copy_json(plan.new_item)},
            fingerprints={name: plan.entry.fingerprint},
            snapshot_error=snapshot_error,
            changed=changed,
        ),
        entry=plan.entry,
        files=files,
        snapshot_current=snapshot_error is None,
    )
