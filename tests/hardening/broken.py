"""Helpers of the broken-file tests: the malformed layer files of issue 17 and what a
user can observe (the bytes of the folder, the forms a browser would submit).

Nothing here imports the registry's internals: the tests must keep working while
``registry/layers`` and the services are restructured.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

CURATED_FILE = "model_registry.curated.json"
DISCOVERED_FILE = "model_registry.discovered.json"
SNAPSHOT_FILE = "model_registry.json"
LAYER_FILES = {"curated": CURATED_FILE, "discovered": DISCOVERED_FILE}
#: Files of the registry folder that a failed command may touch (not content).
IGNORED = {".model_registry.lock"}

#: "the registry file is broken: <file>, <what>, <where>" (issue 17, section 1).
BROKEN_RE = re.compile(
    r"the registry file is broken: (?P<file>[^\s,][^,]*), (?P<what>.+?), (?P<where>\S[^<\n]*)",
    re.IGNORECASE,
)

_NAME_LINE = re.compile(rb'("name": "[^"\n]*",)')


def _add_key(good: bytes, value: bytes, key: bytes = b"download_size_bytes") -> bytes:
    """*good* with ``"key": value`` added right after the first entry's name."""
    match = _NAME_LINE.search(good)
    assert match, "the layer has no named entry"
    return (
        good[: match.end()] + b' "' + key + b'": ' + value + b"," + good[match.end() :]
    )


def _inside_first_string(good: bytes, raw: bytes) -> bytes:
    """*good* with *raw* bytes inserted at the start of the first entry's name value."""
    match = _NAME_LINE.search(good)
    assert match
    at = match.start() + len(b'"name": "')
    return good[:at] + raw + good[at:]


def _deep(good: bytes) -> bytes:
    depth = 100_000
    item = b'{"name": "deep-nesting", "metadata": ' + b"[" * depth + b"]" * depth + b"}"
    body = good.rstrip()
    assert body.endswith(b"]")
    return body[:-1].rstrip() + b",\n  " + item + b"\n]\n"


#: case id -> (what it does to the good bytes, the kind of "where" the message gives)
CASES: dict[str, Callable[[bytes], bytes | None]] = {
    "truncated": lambda good: good[: len(good) // 2],
    "empty": lambda good: b"",
    "whitespace-only": lambda good: b"  \n\t \n",
    "object-at-top": lambda good: b'{"name": "x", "backend": "vllm"}\n',
    "string-at-top": lambda good: b'"model_registry"\n',
    "null-at-top": lambda good: b"null\n",
    "nesting-100000-deep": _deep,
    "invalid-utf8": lambda good: _inside_first_string(good, b"\xff\xfe"),
    "utf16": lambda good: good.decode("utf-8").encode("utf-16"),
    "raw-nul": lambda good: _inside_first_string(good, b"\x00"),
    "lone-surrogate": lambda good: _add_key(good, b'"\\ud800"', b"display_name"),
    "int-5000-digits": lambda good: _add_key(good, b"9" * 5000),
    "float-overflow": lambda good: _add_key(good, b"1e400"),
    "int-beyond-64-bits": lambda good: _add_key(good, str(2**64 + 1).encode()),
    "directory": lambda good: None,  # a directory in place of the file
}


def corrupt(path: Path, case: str) -> None:
    """Replace the layer file at *path* by the malformed version *case*."""
    good = path.read_bytes()
    bad = CASES[case](good)
    if bad is None:
        path.unlink()
        path.mkdir()
        (path / "README").write_text("not a registry file\n")
        return
    path.write_bytes(bad)


def folder_state(folder: Path) -> dict[str, bytes | str]:
    """Every file of the registry folder (recursively) -> its bytes; folders -> "<dir>".

    "Nothing written" means this is identical before and after a command.
    """
    state: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.name in IGNORED:
            continue
        if path.is_symlink():
            state[rel] = f"<link to {path.readlink()}>"
        elif path.is_dir():
            state[rel] = "<dir>"
        else:
            state[rel] = path.read_bytes()
    return state


def describe_difference(before: dict, after: dict) -> str:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    return f"added {added}, removed {removed}, changed {changed}"


def page_text(content: bytes | str) -> str:
    """The visible text of a response (tags dropped, entities decoded, spaces folded)."""
    text = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
    text = re.sub(r"<script\b.*?</script>", " ", text, flags=re.S | re.I)
    text = re.sub(r"<[^>]+>", " ", text)
    return " ".join(html.unescape(text).split())


# ------------------------------------------------------------------------ forms


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self._form: dict | None = None
        self._select: tuple[str, bool] | None = None
        self._options: list[tuple[str, bool]] = []
        self._textarea: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self._form = {"attrs": a, "fields": [], "buttons": []}
            self.forms.append(self._form)
        if self._form is None:
            return
        fields = self._form["fields"]
        if tag == "input" and "name" in a and "disabled" not in a:
            kind = a.get("type", "text").lower()
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    fields.append((a["name"], a.get("value", "on")))
            elif kind == "submit":
                self._form["buttons"].append(a)
            elif kind not in ("button", "reset", "file", "image"):
                fields.append((a["name"], a.get("value", "")))
        elif tag == "button":
            self._form["buttons"].append(a)
        elif tag == "select" and "name" in a:
            self._select = (a["name"], "multiple" in a)
            self._options = []
        elif tag == "option" and self._select is not None:
            self._options.append((a.get("value", ""), "selected" in a))
        elif tag == "textarea" and "name" in a:
            self._textarea = a["name"]
            self._text = []

    def handle_data(self, data):
        if self._textarea is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if self._form is None:
            return
        if tag == "select" and self._select is not None:
            name, multiple = self._select
            chosen = [v for v, selected in self._options if selected]
            if not chosen and not multiple and self._options:
                chosen = [self._options[0][0]]
            self._form["fields"].extend((name, v) for v in chosen)
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            text = "".join(self._text)
            self._form["fields"].append((self._textarea, text.removeprefix("\n")))
            self._textarea = None
        elif tag == "form":
            self._form = None


def form_fields(content: bytes | str, action_contains: str) -> dict[str, list[str]]:
    """The fields a browser submits for the first form whose action contains
    *action_contains* (checked boxes, selected options, text areas, hidden inputs)."""
    text = content.decode() if isinstance(content, bytes) else content
    parser = _FormParser()
    parser.feed(text)
    for form in parser.forms:
        if action_contains in form["attrs"].get("action", ""):
            data: dict[str, list[str]] = {}
            for name, value in form["fields"]:
                data.setdefault(name, []).append(value)
            return data
    raise AssertionError(f"no form posting to {action_contains!r}")
