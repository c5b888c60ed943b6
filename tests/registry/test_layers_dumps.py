"""Layer files are written with ``json.dumps``'s exact bytes, by orjson where it can.

The original writes ``json.dumps(items, indent=2)``; byte-stable files keep diffs and
backups meaningful. orjson writes the same layout ~15x faster; ``style.dumps`` takes
it only where the bytes cannot differ, and these tests hold it to that.
"""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from registry.layers import DEFAULT_STYLE, JsonStyle, dumps
from registry.layers import style as style_module


def reference(items, style: JsonStyle = DEFAULT_STYLE) -> bytes:
    text = json.dumps(items, indent=style.indent, ensure_ascii=style.ensure_ascii)
    return (text + ("\n" if style.trailing_newline else "")).encode()


floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [1e-4, 9.99e-5, 1e-5, -1e-7, 1e16, 1e15, 1e22, 9007199254740993.0, 0.1, -0.0]
)
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | floats
    | st.text(max_size=10)
    | st.sampled_from(["\x7f", "é", "\u2013", "😀", "\x00\x1f\n", "0.00001", "a/b"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=600, deadline=None)
@given(items=st.lists(values, max_size=6))
def test_the_bytes_are_json_dumps_bytes(items):
    assert dumps(items) == reference(items)
    assert dumps(items, JsonStyle(indent=2, trailing_newline=False)) == reference(
        items, JsonStyle(indent=2, trailing_newline=False)
    )


def test_ordinary_entries_take_the_fast_path():
    entry = {
        "name": "qwen2.5-vl-7b-instruct_(AWQ)",
        "backend": "vllm",
        "roles": ["caption", "keywords"],
        "download_size_bytes": 8_123_456_789,
        "version_lock": {"locked": True, "mtime_ns": 1_764_490_000_123_456_789},
        "metadata": {"score": 0.125, "tags": [], "extra": {}},
    }
    assert style_module._dumps_fast([entry, entry]) is not None
    assert dumps([entry]) == reference([entry])


def test_characters_json_dumps_escapes_are_escaped_alike():
    """The original's files hold "\\u2013" where a description has an en dash."""
    items = [
        {"d\u00e9j\u00e0": "Qwen \u2013 VL \U0001f600", "del": "\x7f", "c": "\x00\n"}
    ]
    fast = style_module._dumps_fast(items)
    assert fast is not None
    assert fast + b"\n" == reference(items)
    assert b"\\u2013" in fast and b"\\ud83d\\ude00" in fast


def test_what_orjson_writes_differently_goes_to_json_dumps():
    for items in ([1e-05], [{"n": -2e-7}], [2**64], [{1: "a"}], ["\ud800"]):
        assert style_module._dumps_fast(items) is None, items
        assert dumps(items) == reference(items)


def test_other_styles_are_json_dumps():
    for style in (
        JsonStyle(indent=4),
        JsonStyle(indent="\t"),
        JsonStyle(indent=None),
        JsonStyle(indent=2, ensure_ascii=False),
    ):
        items = [{"name": "a", "x": ["é", 1.5]}]
        assert dumps(items, style) == reference(items, style)
