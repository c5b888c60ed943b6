"""How a layer file is formatted (indent, ASCII escapes, trailing newline), so a
rewrite keeps its bytes stable, and a pause of the garbage collector for big loads."""

from __future__ import annotations

import codecs
import gc
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii
from typing import Any

import orjson


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
    return JsonStyle(
        indent=_indent(
            match.group(1) if match else None,
            "\n" not in body and body not in ("", "[]"),
        ),
        ensure_ascii=text.isascii(),
        trailing_newline=text.endswith("\n"),
    )


def _indent(ws: str | None, one_line: bool) -> int | str | None:
    """The indent of a document whose first indented line starts with *ws* (None: no
    indented line); *one_line*: a non-empty document without a newline."""
    if ws is not None:
        return len(ws) if set(ws) == {" "} else ws
    return None if one_line else DEFAULT_STYLE.indent


_INDENT_BYTES_RE = re.compile(rb"\n([ \t]+)\S")
_JSON_SPACE = b" \t\n\r"


def detect_parsed_style(
    data: bytes | bytearray, start: int = 0, end: int | None = None
) -> JsonStyle:
    """:func:`detect_style` of ``data[start:end]``, bytes that ``json.loads`` accepted,
    without decoding or copying them (a layer file is tens of megabytes). Bytes of
    *data* outside the range must be ASCII and not newlines (the reader's padding).

    The same answer for such bytes: they are UTF-8 (ASCII exactly when the text is),
    only JSON whitespace surrounds the document (what ``str.strip`` removes), and a
    raw newline is never inside a string, so what follows an indent is ASCII.
    """
    end = len(data) if end is None else end
    trailing_newline = end > start and data[end - 1] == ord("\n")
    while start < end and data[start] in _JSON_SPACE:
        start += 1
    while end > start and data[end - 1] in _JSON_SPACE:
        end -= 1
    match = _INDENT_BYTES_RE.search(data, start, end)
    return JsonStyle(
        indent=_indent(
            match.group(1).decode("ascii") if match else None,
            data.find(b"\n", start, end) < 0
            and (end - start > 2 or bytes(data[start:end]) not in (b"", b"[]")),
        ),
        ensure_ascii=data.isascii(),
        trailing_newline=trailing_newline,
    )


def dumps(items: Any, style: JsonStyle = DEFAULT_STYLE) -> bytes:
    """Serialize *items* the way :func:`detect_style` saw them (UTF-8 bytes): the
    bytes of ``json.dumps(items, indent=..., ensure_ascii=...)``."""
    fast = style.indent == 2 and style.ensure_ascii  # what the original writes
    data = _dumps_fast(items) if fast else None
    if data is None:
        text = json.dumps(items, indent=style.indent, ensure_ascii=style.ensure_ascii)
        data = text.encode("utf-8")
    return data + b"\n" if style.trailing_newline else data


#: A negative one-digit exponent ("2e-7": ``json.dumps`` writes "2e-07"), found by
#: its literal start (a class-first pattern tries every byte of 80 MB: ~1 s).
_SHORT_EXPONENT = re.compile(rb"e-\d(?![\d.])")
_DIGITS = frozenset(b"0123456789")


def _tiny_float_in(data: bytes) -> bool:
    """May *data* (orjson's output) hold a float below 1e-4, which orjson writes as
    "0.00001" or "2e-7" and ``json.dumps`` as "1e-05" or "2e-07"? Also True for the
    rare string that looks like one (then ``json.dumps`` writes the file)."""
    if b"0.0000" in data:
        return True
    return any(data[m.start() - 1] in _DIGITS for m in _SHORT_EXPONENT.finditer(data))


def _dumps_fast(items: Any) -> bytes | None:
    """``json.dumps(items, indent=2)``'s bytes by orjson (~15x faster: 1 s saved per
    80 MB file), or None wherever the two could differ.

    ``json.dumps`` escapes every character outside " "..."~"; orjson writes them raw
    (they only occur in strings), so they are escaped afterwards the same way. Floats
    below 1e-4 are written in other forms; integers beyond 64 bits, lone surrogates
    and keys that are not strings make orjson refuse. NaN and infinities (orjson
    writes null) never get here: the reader turns NaN into null and ``unwritable``
    refuses them in updates. Everything else is written alike; a property test holds
    the two to it.
    """
    try:
        data = orjson.dumps(items, option=orjson.OPT_INDENT_2)
    except (orjson.JSONEncodeError, TypeError):
        return None
    if _tiny_float_in(data):
        return None
    if not data.isascii():
        data = data.decode("utf-8").encode("ascii", _JSON_ESCAPES)
    return data.replace(b"\x7f", b"\\u007f") if b"\x7f" in data else data


def _escape_as_json(exc: UnicodeError) -> tuple[str, int]:
    """Codec error handler: the non-ASCII characters escaped by ``json``'s own
    escaping (``\\u00e9``; a surrogate pair beyond the first plane)."""
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    return encode_basestring_ascii(exc.object[exc.start : exc.end])[1:-1], exc.end


_JSON_ESCAPES = "imageworks-json-escapes"
codecs.register_error(_JSON_ESCAPES, _escape_as_json)


def snapshot_bytes(items: list[dict]) -> bytes:
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
