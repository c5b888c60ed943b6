"""The orjson fast path reads every layer file exactly as the standard path does.

Most files are parsed by orjson; the standard ``json.loads`` path stays the reference
(it words every refusal). Each test reads the same file twice, with the fast path and
with it switched off, and requires the same outcome: the same values (types, key
order, the sign of -0.0 included) or the same error message.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from registry.layers import LayerParseError, detect_style, read_layer
from registry.layers import read as read_module


def identical(a, b) -> bool:
    """Equal values of the same types, dict keys in the same order, -0.0 != 0.0."""
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, dict):
            if list(x) != list(y):
                return False
            stack.extend((x[k], y[k]) for k in x)
        elif isinstance(x, list):
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y, strict=True))
        elif isinstance(x, float):
            if x != y or math.copysign(1, x) != math.copysign(1, y):
                return False
        elif x != y:
            return False
    return True


def outcome(path: Path, fast: bool, monkeypatch) -> tuple[str, object]:
    with monkeypatch.context() as patch:
        if not fast:  # no padding for orjson: the reader takes the standard path
            patch.setattr(read_module, "_DEPTH_PAD", 0)
        try:
            layer = read_layer(path, "discovered")
        except LayerParseError as exc:
            return "error", str(exc)
    return "items", (layer.items, layer.style, layer.sha256)


def assert_same_reading(tmp_path: Path, data: bytes, monkeypatch) -> str:
    path = tmp_path / "model_registry.discovered.json"
    path.write_bytes(data)
    kind, fast = outcome(path, True, monkeypatch)
    kind_std, standard = outcome(path, False, monkeypatch)
    assert kind == kind_std, (data[:200], fast, standard)
    if kind == "items":
        assert identical(fast[0], standard[0]), data[:200]
        assert fast[1:] == standard[1:]
        # The style is read from the bytes, as detect_style reads the text.
        assert fast[1] == detect_style(data)
        assert fast[2] == hashlib.sha256(data).hexdigest()
    else:
        assert fast == standard
    return kind


def fast_reads(data: bytes) -> bool:
    return read_module._parse_fast(data) is not None


# -- hand-picked cases -----------------------------------------------------------------

CASES = {
    "ints and floats": b'[{"name": "a", "n": [1, 1.0, -0, -0.0, 1E5, 1e-400, 2.5e+3]}]',
    "float edge": b"[1.7976931348623157e308, 5e-324, 2.2250738585072014e-308]",
    "float overflow": b"[1.7976931348623159e308]",
    "18 digits": b"[999999999999999999, -999999999999999999]",
    "19 digits in int64": b"[9223372036854775807, -9223372036854775808]",
    "beyond int64": b"[9223372036854775808]",
    "beyond uint64": b"[18446744073709551616]",
    "below int64": b'[{"n": 1, "t": -9223372036854775809}]',
    "long mantissa": b"[0.30000000000000004441, 12345678901234567890.5]",
    "duplicate keys": b'[{"a": 1, "b": 2, "a": 3}]',
    "nan and infinity": b"[NaN, Infinity, -Infinity]",
    "bom": b'\xef\xbb\xbf[{"name": "a"}]\n',
    "two boms": b'\xef\xbb\xbf\xef\xbb\xbf[{"name": "a"}]\n',
    "escapes": b'["\\u00e9\\n\\t\\"\\\\\\/", "\\ud83d\\ude00", "\\u0000"]',
    "raw unicode": '["é – 😀"]'.encode(),
    "lone high surrogate": b'["\\ud800"]',
    "lone low surrogate": b'["\\udc00x"]',
    "high then high": b'["\\ud800\\ud800"]',
    "raw control character": b'["a\tb"]',
    "raw nul": b'["a\x00b"]',
    "bad utf-8": b'["\xff"]',
    "utf-8 surrogate": b'["\xed\xa0\x80"]',
    "empty": b"",
    "whitespace": b" \n\t",
    "form feed around": b"\x0c[1]\x0c",
    "not one value": b"1], [2",
    "two values": b"[1] [2]",
    "trailing comma": b"[1,]",
    "object at top": b'{"name": "a"}',
    "number at top": b"12345678901234567890123",
    "string at top": b'"x"',
    "empty list": b"[]",
    "one line": b'[{"name": "a", "x": {"y": [1, 2]}}]',
    "indent 4": b'[\n    {\n        "name": "a"\n    }\n]',
    "tabs": b'[\n\t{\n\t\t"name": "a"\n\t}\n]\n',
    "crlf": b'[\r\n  {\r\n    "name": "a"\r\n  }\r\n]\r\n',
    "leading blank lines": b'\n\n  [\n    {"name": "a"}\n  ]\n',
    "one line, no newline": b'[{"name": "a"}]',
    "empty list, newline": b"[]\n",
    "spaces only list": b" [ ] ",
}


@pytest.mark.parametrize("data", CASES.values(), ids=CASES.keys())
def test_fast_path_reads_as_the_standard_path(tmp_path, data, monkeypatch):
    assert_same_reading(tmp_path, data, monkeypatch)


def test_fast_path_takes_ordinary_files():
    for key in ("ints and floats", "duplicate keys", "bom", "escapes", "indent 4"):
        assert fast_reads(CASES[key]), key


@pytest.mark.parametrize("key", ["beyond int64", "beyond uint64", "below int64"])
def test_integers_beyond_64_bits_go_to_the_standard_path(key):
    assert not fast_reads(CASES[key])


@pytest.mark.parametrize("key", ["19 digits in int64", "long mantissa"])
def test_long_numbers_orjson_reads_alike_keep_the_fast_path(key):
    """A verify records nanosecond timestamps (19 digits): a registry holding them
    must not fall back to the standard path, 3-4x slower on 80 MB."""
    assert fast_reads(CASES[key])


@pytest.mark.parametrize("depth", [1, 2, 499, 500, 501, 900, 1023, 1024, 1025, 5000])
def test_nesting_accepted_and_refused_as_before(tmp_path, depth, monkeypatch):
    """orjson accepts 1024 levels, json.loads fewer: files deeper than 500 levels are
    left to the standard path (which decides as it always did)."""
    data = b'[{"name": "deep", "x": ' + b"[" * depth + b"]" * depth + b"}]"
    assert_same_reading(tmp_path, data, monkeypatch)
    assert fast_reads(data) == (depth + 2 <= read_module._MAX_DEPTH)


def test_deep_file_still_refused_with_its_place(tmp_path, monkeypatch):
    data = b"[" * 100_000 + b"]" * 100_000
    assert assert_same_reading(tmp_path, data, monkeypatch) == "error"
    path = tmp_path / "model_registry.discovered.json"
    with pytest.raises(LayerParseError, match="nested deeper than 500 levels"):
        read_layer(path, "discovered")


def test_a_refusal_under_an_odd_key_names_it_quoted(tmp_path):
    """The path in the message quotes keys that are not plain names: a NUL in a key
    never reaches the message (PostgreSQL refuses NUL in the stored error)."""
    path = tmp_path / "model_registry.discovered.json"
    path.write_text(json.dumps([{"name": "a", "x y": {"\x00": 2**63}}]))
    with pytest.raises(LayerParseError) as info:
        read_layer(path, "discovered")
    message = str(info.value)
    assert "\x00" not in message
    assert message.endswith('at $[0]["x y"]["\\u0000"]'), message


def test_long_number_in_a_string_or_a_hash_keeps_the_fast_path():
    data = b'[{"name": "a", "sha": "1234567890123456789012345", "n": 12}]'
    assert fast_reads(data)


def test_long_number_across_a_scan_chunk_boundary():
    chunk = read_module._SCAN_CHUNK
    for shift in range(-21, 2):
        pad = chunk + shift - len(b'[{"name": "a", "p": "')
        data = b'[{"name": "a", "p": "' + b"x" * pad + b'", "n": '
        data += str(2**64 + 1).encode() + b"}]"
        assert not fast_reads(data), shift


# -- property tests --------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=25,
)


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    items=st.lists(json_values, max_size=5),
    indent=st.sampled_from([None, 0, 2, 4, "\t"]),
    ensure_ascii=st.booleans(),
    bom=st.booleans(),
)
def test_written_json_reads_alike(
    tmp_path, monkeypatch, items, indent, ensure_ascii, bom
):
    data = json.dumps(items, indent=indent, ensure_ascii=ensure_ascii).encode()
    assert_same_reading(tmp_path, (b"\xef\xbb\xbf" if bom else b"") + data, monkeypatch)


number_text = st.from_regex(
    r"\A-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,24})?([eE][+-]?[0-9]{1,4})?\Z"
)
string_text = st.lists(
    st.sampled_from(
        [
            "a",
            "é",
            "😀",
            "\\n",
            "\\u00e9",
            "\\ud83d",
            "\\ude00",
            "\\u0000",
            '\\"',
            "\\\\",
        ]
        + ["\\x", "\t", "\x00", "\\ud800\\udc00", "\\uDBFF\\uDFFF", "\\u12"]
    ),
    max_size=5,
).map(lambda parts: '"' + "".join(parts) + '"')
token = st.one_of(
    number_text,
    string_text,
    st.sampled_from(
        ["true", "false", "null", "NaN", "Infinity", "-Infinity", "[]", "{}"]
    ),
)


@st.composite
def json_like(draw) -> bytes:
    """Mostly valid JSON text with raw numbers, escapes and the odd broken piece."""

    def value(depth: int) -> str:
        kind = draw(st.integers(0, 5 if depth < 4 else 0))
        if kind <= 2:
            return draw(token)
        if kind == 3:
            return (
                "["
                + ", ".join(value(depth + 1) for _ in range(draw(st.integers(0, 3))))
                + "]"
            )
        keys = [draw(string_text) for _ in range(draw(st.integers(0, 3)))]
        keys += draw(
            st.lists(st.sampled_from(keys or ['"k"']), max_size=2)
        )  # duplicates
        return "{" + ", ".join(f"{k}: {value(depth + 1)}" for k in keys) + "}"

    space = draw(st.sampled_from(["", " ", "\n", "\n  ", "\t", "\r\n", "\x0c"]))
    text = (
        space
        + "["
        + ",\n  ".join(value(0) for _ in range(draw(st.integers(0, 4))))
        + "]"
    )
    text += draw(st.sampled_from(["", "\n", " \n", "]", ",", "x"]))
    return draw(st.sampled_from([b"", b"\xef\xbb\xbf"])) + text.encode()


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=json_like())
def test_raw_json_text_reads_alike(tmp_path, monkeypatch, data):
    assert_same_reading(tmp_path, data, monkeypatch)


def test_big_file_reads_alike_with_its_sha256(tmp_path, monkeypatch):
    """Files over a megabyte are hashed on another thread while they are parsed."""
    items = [
        {"name": f"model-{i}", "n": i, "x": 0.5 + i, "s": "é" * 50} for i in range(6000)
    ]
    data = json.dumps(items, indent=2).encode()
    assert len(data) > read_module._HASH_BESIDE_MIN
    assert fast_reads(data)
    assert assert_same_reading(tmp_path, data, monkeypatch) == "items"
