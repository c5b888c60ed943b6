"""Read one layer file forgivingly: a bad item is reported and skipped, never fatal.

Only file-level damage (bad JSON, bad UTF-8, a root that is not a list) raises
:class:`LayerParseError`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from registry.normalize import to_bool

from .constants import CURATED, LEGACY
from .errors import LayerParseError
from .merge import merge_entry_dicts
from .style import DEFAULT_STYLE, JsonStyle, detect_parsed_style


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


# Sub-objects the original dereferences with .get(): null crashes its load, another type
# cannot be read at all.
REQUIRED_DICTS = (
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


#: The largest integer a registry file may hold: the database's 64-bit columns
#: (SQLite binds nothing wider), and far below Python's 4,300-digit conversion limit.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
#: Only a file with a long number or a big exponent can hold a number refused below,
#: and only one with a surrogate escape a lone surrogate: other files take json.loads'
#: fast path (no Python hooks, no walk). A number starts after a JSON delimiter, so
#: digits inside strings (hashes, dates) do not count.
_BIG_NUMBER = re.compile(rb"(?<=[:\[,\s])-?\d(?:\d{18}|[\d.]*[eE]\+?\d{3})")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
#: A surrogate escape (odd number of backslashes before the "u").
_SURROGATE = re.compile(rb"(?<!\\)(?:\\\\)*(\\u[dD][89a-fA-F][0-9a-fA-F]{2})")
_MAX_DEPTH = 500


class _BadValue:
    """Stands in for a number the registry refuses, so its JSON path can be found."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _parse_int(literal: str) -> Any:
    digits = literal.lstrip("-")
    if len(digits) > 40:
        return _BadValue(f"an integer of {len(digits)} digits (beyond 64 bits)")
    value = int(literal)
    if not INT_MIN <= value <= INT_MAX:
        return _BadValue(f"the integer {literal} is beyond 64 bits")
    return value


def _parse_float(literal: str) -> Any:
    value = float(literal)
    if math.isinf(value):
        return _BadValue(f"the number {literal[:40]} is too large (float overflow)")
    return value


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


def _json_path(steps: list[Any]) -> str:
    """``$[0].backend_config["odd key"]``: a key that is not a plain name is quoted as
    JSON, so a NUL or a newline in it never reaches a message (the database refuses
    NUL in text)."""
    out = "$"
    for step in steps:
        if isinstance(step, int):
            out += f"[{step}]"
        elif _PLAIN_KEY.match(step):
            out += f".{step}"
        else:
            out += f"[{json.dumps(step)}]"
    return out


def _find_refused(value: Any, steps: list[Any]) -> tuple[str, list[Any]] | None:
    """The first refused value in parsed JSON *value*: ``(reason, JSON path steps)``."""
    if isinstance(value, _BadValue):
        return value.reason, steps
    if isinstance(value, dict):
        for key, item in value.items():
            found = _find_refused(item, [*steps, key])
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_refused(item, [*steps, index])
            if found:
                return found
    return None


def _lone_surrogate(data: bytes) -> int | None:
    """Offset of the first escape of a lone UTF-16 surrogate (a high one not followed
    by a low one, or a low one alone), which no UTF-8 text can hold."""
    pending: re.Match | None = None
    for match in _SURROGATE.finditer(data):
        high = match.group(1)[3:4].lower() in b"89ab"
        if pending is not None:
            if not high and match.start(1) == pending.end(1):
                pending = None
                continue
            return pending.start(1)
        if not high:
            return match.start(1)
        pending = match
    return pending.start(1) if pending is not None else None


def _too_deep_at(text: str) -> str:
    """Line and column where the nesting first goes deeper than _MAX_DEPTH."""
    depth = 0
    in_string = escaped = False
    line, column = 1, 0
    for ch in text:
        column += 1
        if ch == "\n":
            line, column = line + 1, 0
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > _MAX_DEPTH:
                return f"line {line} column {column}"
        elif ch in "]}":
            depth -= 1
    return "the whole file"


def _line_column(data: bytes, offset: int) -> str:
    line = data.count(b"\n", 0, offset) + 1
    column = offset - (data.rfind(b"\n", 0, offset) + 1) + 1
    return f"byte {offset} (line {line} column {column})"


#: Bytes -> "0" for a character of a number's digit run (a digit or "."), "d" for
#: what may precede a number (``_BIG_NUMBER``'s delimiters, and "-"), "x" otherwise.
_RUN_CLASSES = bytes(
    ord("0")
    if ch in b"0123456789."
    else ord("d")
    if ch in b":[, \t\n\r\f\v-"
    else ord("x")
    for ch in range(256)
)
_LONG_RUN = b"d" + b"0" * 19
_SCAN_CHUNK = 1 << 18
_BOM = b"\xef\xbb\xbf"


def _may_hold_long_number(data: bytes) -> bool:
    """True when *data* may hold a number the registry refuses among its long ones
    (orjson reads an integer outside 64 bits as a float, or as an integer the
    standard path refuses: the standard path must decide).

    Candidates are a delimiter or "-" followed by 19 or more digits and dots (a
    superset of ``_BIG_NUMBER``'s first branch), found by translating bytes into
    classes and one substring search per chunk: ~20x faster than the regex, whose
    lookbehind makes it try every position. Chunks overlap by the pattern's length,
    so no occurrence is cut in two. Each candidate is then read as the standard path
    reads it (:func:`_refused_number`): a float, an integer within 64 bits (such as
    the nanosecond timestamps a verify records) or text that is no number keeps the
    fast path.
    """
    for start in range(0, len(data), _SCAN_CHUNK):
        chunk = data[start : start + _SCAN_CHUNK + len(_LONG_RUN) - 1]
        classes = chunk.translate(_RUN_CLASSES)
        at = classes.find(_LONG_RUN)
        while at >= 0:
            first = start + at  # the delimiter, or the number's "-"
            if data[first : first + 1] != b"-":
                first += 1
            if _refused_number(data, first):
                return True
            at = classes.find(_LONG_RUN, at + 1)
    return False


def _orjson_depth_limit() -> int:
    """The deepest nesting this orjson accepts (1024 in orjson 3.x), probed once."""
    low, high = 0, 1 << 14
    while low < high:
        mid = (low + high + 1) // 2
        try:
            orjson.loads(b"[" * mid + b"]" * mid)
        except orjson.JSONDecodeError:
            high = mid - 1
        else:
            low = mid
    return low


#: Levels of lists wrapped around a file given to orjson, so that orjson accepts
#: exactly the files nested at most _MAX_DEPTH levels deep (see _parse_fast).
_DEPTH_PAD = _orjson_depth_limit() - _MAX_DEPTH


def _parse_fast(data: bytes) -> list[Any] | None:
    """The file's list parsed by orjson, or None when the standard path must decide.

    Only for files the standard path reads exactly as orjson does; None for anything
    else, so every refusal and its message come from the standard path unchanged:

    - an integer beyond 64 bits (orjson reads it as a float, or as an integer the
      standard path refuses): None without parsing;
    - anything orjson refuses (bad JSON or UTF-8, NaN/Infinity, which the standard
      path reads as null, float overflow, control characters, lone surrogate
      escapes, which the standard path refuses with their place): None;
    - nesting: orjson accepts 1024 levels, ``json.loads`` fewer (its limit is
      Python's recursion limit). The file is parsed inside _DEPTH_PAD extra lists, so
      orjson accepts it only when it is at most _MAX_DEPTH deep, which the standard
      path always reads; a deeper file is the standard path's to accept or refuse;
    - a root that is not a list: None (the standard path words the refusal).

    What both accept they read alike: same ints (within 64 bits) and floats (both
    round correctly), the last of duplicate keys at the first one's place, escapes.
    """
    if _DEPTH_PAD <= 0:
        return None
    body = memoryview(data)[len(_BOM) :] if data.startswith(_BOM) else data
    return _parse_padded(b"".join((_PAD_OPEN, body, _PAD_CLOSE)))


_PAD_OPEN = b"[" * max(_DEPTH_PAD, 0)
_PAD_CLOSE = b"]" * max(_DEPTH_PAD, 0)


def _parse_padded(padded: bytes | bytearray) -> list[Any] | None:
    """:func:`_parse_fast` of a file already between _PAD_OPEN and _PAD_CLOSE."""
    if _may_hold_long_number(padded):
        return None
    try:
        value = orjson.loads(padded)
    except (orjson.JSONDecodeError, MemoryError):
        # MemoryError: orjson reserves (without touching most of it) room for the
        # worst case, ~8 bytes per byte of input; where memory is not overcommitted
        # that can fail, and the standard path needs less.
        return None
    for _ in range(_DEPTH_PAD):
        # One element at every level, or the file was not one JSON value ("1], [2").
        if len(value) != 1:
            return None
        value = value[0]
    return value if isinstance(value, list) else None


def _read_padded(fh: Any, size: int) -> tuple[bytearray, memoryview] | None:
    """The file read straight into a buffer between _PAD_OPEN and _PAD_CLOSE (what
    orjson is given: no 80 MB copy), and a view of the file's bytes in it; None
    when the file is not *size* bytes long any more (read it plainly)."""
    pad = len(_PAD_OPEN)
    buf = bytearray(pad + size + pad)
    view = memoryview(buf)
    got = 0
    while got < size:
        chunk = fh.readinto(view[pad + got : pad + size])
        if not chunk:
            return None
        got += chunk
    if fh.read(1):
        return None
    buf[:pad] = _PAD_OPEN
    buf[pad + size :] = _PAD_CLOSE
    return buf, view[pad : pad + size]


def _parse_json_list(path: Path, data: bytes) -> list[Any]:
    """Parse a layer file; anything a registry file cannot hold raises
    :class:`LayerParseError` (what and where): bad UTF-8, bad JSON, nesting deeper
    than the parser's limit, a root that is not a list, integers outside 64 bits,
    floats that overflow, lone surrogates.

    Most files are read by orjson (:func:`_parse_fast`); it declines whatever the
    standard path (:func:`_parse_standard`) might read differently or refuse.
    """
    items = _parse_fast(data)
    return items if items is not None else _parse_standard(path, data)


def _parse_standard(path: Path, data: bytes) -> list[Any]:
    """:func:`_parse_json_list` with ``json.loads``: the reference for what is read
    and the place of every refusal.

    Long on purpose: each refusal is a short branch with its own wording and place,
    and the fast path (plain ``json.loads``) must stay visible in one function.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        what = "not valid UTF-8"
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            what = "UTF-16 text (registry files are UTF-8)"
        raise LayerParseError(
            path, f"{what} ({exc.reason})", _line_column(data, exc.start)
        ) from None
    refused: list[str] = []
    hooks: dict[str, Any] = {}
    if _BIG_NUMBER.search(data):

        def parse_int(literal: str) -> Any:
            value = _parse_int(literal)
            if isinstance(value, _BadValue):
                refused.append(value.reason)
            return value

        def parse_float(literal: str) -> Any:
            value = _parse_float(literal)
            if isinstance(value, _BadValue):
                refused.append(value.reason)
            return value

        hooks = {"parse_int": parse_int, "parse_float": parse_float}
    try:
        # NaN/Infinity (Python's json.dump writes them) are not JSON; the database's
        # JSON columns refuse them, so they read as null instead of crashing a sync.
        items = json.loads(text, parse_constant=lambda _name: None, **hooks)
    except json.JSONDecodeError as exc:
        if not text.strip():
            what = "empty file" if not text else "only whitespace"
            raise LayerParseError(path, f"{what} (no JSON list)") from None
        raise LayerParseError(
            path,
            f"not valid JSON ({exc.msg.removesuffix(' at')})",
            f"line {exc.lineno} column {exc.colno}",
        ) from None
    except RecursionError:
        raise LayerParseError(
            path, f"JSON nested deeper than {_MAX_DEPTH} levels", _too_deep_at(text)
        ) from None
    except ValueError as exc:  # a hook or int() refusing a literal
        raise LayerParseError(path, f"a value cannot be read ({exc})") from None
    if not isinstance(items, list):
        raise LayerParseError(
            path,
            f"the file must be a JSON list (found {_type_name(items)})",
            "the top level",
        )
    if _SURROGATE_ESCAPE.search(data):
        at = _lone_surrogate(data)
        if at is not None:
            raise LayerParseError(
                path,
                "a lone UTF-16 surrogate escape (\\ud800-\\udfff) in a string",
                _line_column(data, at),
            )
    if refused:
        try:
            found = _find_refused(items, [])
        except RecursionError:
            found = (refused[0] if refused else "JSON nested too deeply", [])
        if found:
            reason, steps = found
            raise LayerParseError(path, reason, f"at {_json_path(steps)}")
        # Hidden by a later duplicate key: still refused (the file cannot be written
        # back as read), located in the text.
        raise LayerParseError(path, refused[0], _number_at(data))
    return items


_NUMBER = re.compile(rb"(?<=[:\[,\s])-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")


def _refused_number(data: bytes, start: int) -> bool:
    """Is the JSON number at *start* one the registry refuses (an integer outside 64
    bits, a float that overflows)? False where no number starts there."""
    literal = _NUMBER.match(data, start)
    if literal is None:
        return False
    text = literal.group().decode()
    parse = _parse_float if any(c in text for c in ".eE") else _parse_int
    return isinstance(parse(text), _BadValue)


def _number_at(data: bytes) -> str:
    """Where the first number the registry refuses is in *data* (line and column)."""
    for match in _BIG_NUMBER.finditer(data):
        if _refused_number(data, match.start()):
            return _line_column(data, match.start())
    return "the whole file"


def item_name(item: Any) -> str | None:
    """The stripped name of a dict item, or None when it has no usable name."""
    if not isinstance(item, dict):
        return None
    name = item.get("name")
    if not isinstance(name, str):
        return None
    return name.strip() or None


def name_problem(item: Any) -> str | None:
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


def entry_issues(item: dict) -> tuple[list[str], list[str]]:
    """Return ``(fatal, warnings)`` for an item that has a usable name."""
    fatal: list[str] = []
    warnings: list[str] = []
    backend = item.get("backend")
    if isinstance(backend, dict | list):
        fatal.append(f"backend must be a string (found {_type_name(backend)})")
    for key in REQUIRED_DICTS:
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


_INT64 = (-(2**63), 2**63 - 1)


def unwritable(value: Any) -> str | None:
    """Why parsed JSON *value* cannot go into a registry file, or None.

    The same rules the reader applies to files (:func:`_parse_json_list`), for
    values a person typed: a NUL (the database refuses it), a lone surrogate (not
    UTF-8), an integer outside signed 64 bits, a float that is not finite.
    """
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "a NUL character (\\u0000) cannot be stored"
            if any("\ud800" <= ch <= "\udfff" for ch in item):
                return "a lone UTF-16 surrogate (\\ud800-\\udfff) is not text"
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not _INT64[0] <= item <= _INT64[1]:
                return "an integer outside signed 64 bits cannot be stored"
        elif isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                return "a number too large for a float (or NaN) is not JSON"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


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
        reason = name_problem(item)
        if reason:
            raw_name = item.get("name") if isinstance(item, dict) else None
            report(index, raw_name if isinstance(raw_name, str) else None, reason)
            continue
        name = item["name"].strip()
        if check_nul and contains_nul(item):
            report(index, name, NUL_REASON)
            continue
        fatal, warnings = entry_issues(item)
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


class _Sha256Beside(threading.Thread):
    """sha256 of a file's bytes on another thread while this one parses them.

    hashlib releases the GIL on big inputs and orjson does not: on a machine with a
    free core the hash of a 80 MB layer file (~0.05 s) costs no time at all.
    """

    def __init__(self, data: memoryview) -> None:
        super().__init__(name="layer-sha256", daemon=True)
        self.data = data
        self.digest = ""
        self.start()

    def run(self) -> None:
        self.digest = hashlib.sha256(self.data).hexdigest()

    def hexdigest(self) -> str:
        self.join()
        return self.digest


_HASH_BESIDE_MIN = 1 << 20  # smaller files: a thread costs more than it saves
#: The escape of a NUL; ``re`` finds it about twice as fast as ``bytes.find`` (whose
#: skip table is keyed on "0", a common byte).
_NUL_ESCAPE = re.compile(rb"\\u0000")


def read_layer(path: str | os.PathLike[str], name: str) -> Layer:
    """Read one layer file forgivingly (see module docstring).

    A missing file gives an empty layer with ``exists=False``. Bad JSON, bad UTF-8 or a
    root that is not a list raise :class:`LayerParseError`.
    """
    path = Path(path)
    padded: tuple[bytearray, memoryview] | None = None
    try:
        with open(path, "rb") as fh:
            info = os.fstat(fh.fileno())
            if _DEPTH_PAD > 0 and info.st_size > 0:
                padded = _read_padded(fh, info.st_size)
            if padded is None:
                fh.seek(0)
                data = fh.read()
    except FileNotFoundError:
        return Layer(name, path, False, [], {}, [])
    except IsADirectoryError:
        raise LayerParseError(
            path, "a directory in place of the file", "the whole path"
        ) from None
    except OSError as exc:
        raise LayerParseError(
            path, f"cannot be read ({exc.strerror})", "the whole file"
        ) from None
    if padded is None:
        buf: bytes | bytearray = data
        start, end = 0, len(data)
    else:
        buf, content = padded
        start, end = len(_PAD_OPEN), len(_PAD_OPEN) + len(content)
    view = memoryview(buf)[start:end]
    sha256 = _Sha256Beside(view) if len(view) >= _HASH_BESIDE_MIN else None
    try:
        if padded is None:
            items = _parse_json_list(path, data)
        elif buf.startswith(_BOM, start):
            items = _parse_json_list(path, content.tobytes())
        else:
            items = _parse_padded(buf)
            if items is None:
                items = _parse_standard(path, content.tobytes())
    except BaseException:
        if sha256:
            sha256.join()
        raise
    digest = sha256.hexdigest() if sha256 else hashlib.sha256(view).hexdigest()
    # A NUL can only be written escaped in valid JSON: scan the entries for one only
    # when the escape appears somewhere in the file (one fast search).
    entries, problems = _collect_entries(
        path.name, name, items, check_nul=bool(_NUL_ESCAPE.search(buf, start, end))
    )
    return Layer(
        name=name,
        path=path,
        exists=True,
        items=items,
        entries=entries,
        problems=problems,
        style=detect_parsed_style(buf, start, end),
        sha256=digest,
        mtime_ns=info.st_mtime_ns,
        size=info.st_size,
    )


def load_legacy_file(path: str | os.PathLike[str]) -> Layer:
    """Read a single-file (pre-split) registry; duplicate names: the last one wins."""
    return read_layer(path, LEGACY)
