"""Pure helpers that turn messy raw registry values into clean Python values.

The sync code uses these to denormalise a merged raw entry (see ``registry.layers``)
into database columns. Nothing here imports Django and nothing here raises on bad
data: every helper accepts whatever JSON can hold (``None``, wrong types, the string
``"None"``, string booleans) and returns a usable value.

The capability rules reproduce the original ImageWorks ``normalize_capabilities``
(reference §1.3), including its quirks, so a map we write back is read the same way
by the original tools.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------------------
# Capabilities
# --------------------------------------------------------------------------------------

_THINKING_GROUP: tuple[str, ...] = (
    "thinking",
    "reasoning",
    "reason",
    "think",
    "chain_of_thought",
    "cot",
    "reasoner",
    "o1",
    "o3",
    "r1",
    "deepseek",
)

#: canonical capability -> its synonyms (the canonical name first). Order matters: it is
#: the order in which missing keys are appended to a normalized map. Thinking and
#: reasoning share one group, so they are always equal after normalization.
SYNONYM_GROUPS: dict[str, tuple[str, ...]] = {
    "text": ("text", "language", "chat"),
    "vision": ("vision", "visual", "multimodal", "mm", "image", "vl"),
    "audio": ("audio", "speech", "voice", "asr", "tts"),
    "embedding": ("embedding", "embed", "text-embedding", "representation"),
    "tools": (
        "tools",
        "tool_use",
        "tool-use",
        "tool_call",
        "tool-call",
        "toolcalls",
        "tool_calls",
        "toolchoice",
        "tool_choice",
        "function_call",
        "function-call",
        "function_calls",
        "function_calling",
        "function-calling",
        "function_tools",
        "functioncalling",
        "toolcalling",
        "auto_tool_choice",
    ),
    "thinking": _THINKING_GROUP,
    "reasoning": _THINKING_GROUP,
}

#: The flags the UI shows (reference §1.3 "canonical flags"), plus text.
CANONICAL_FLAGS: tuple[str, ...] = (
    "text",
    "vision",
    "embedding",
    "audio",
    "thinking",
    "tools",
)

_GROUP_OF: dict[str, str] = {}
for _canonical, _synonyms in SYNONYM_GROUPS.items():
    for _alias in _synonyms:
        _GROUP_OF.setdefault(_alias, _canonical)


def _cap_key(key: str) -> str:
    return key.strip().lower()


def normalize_capabilities(raw: Any) -> dict[str, bool]:
    """Return the original's normalized capability map (always 47 synonym keys).

    Keys are stripped and lower-cased, values become ``bool(v)``. Each synonym group is
    OR-ed: a group member is true if any member was true. Keys already present keep
    their position (the original copies the cleaned map first); missing group keys are
    appended in group order. A non-dict gives all false, *including* ``text``: the
    original's "text defaults to true" branch can never fire.
    """
    if not isinstance(raw, Mapping):
        raw = {}
    cleaned: dict[str, bool] = {}
    for key, value in raw.items():
        if isinstance(key, str):
            cleaned[_cap_key(key)] = bool(value)
    result = dict(cleaned)
    for canonical, synonyms in SYNONYM_GROUPS.items():
        value = any(cleaned.get(alias, False) for alias in synonyms)
        result[canonical] = value
        for alias in synonyms:
            result[alias] = bool(result.get(alias, False) or value)
    return result


def canonical_flags(caps: Any) -> dict[str, bool]:
    """The six flags the UI and filters use, after normalization."""
    normalized = normalize_capabilities(caps)
    return {flag: normalized[flag] for flag in CANONICAL_FLAGS}


def _canonical_for(name: str) -> str:
    key = _cap_key(name)
    try:
        return _GROUP_OF[key]
    except KeyError:
        raise ValueError(f"Unknown capability {name!r}") from None


def clear_capability(caps: Any, canonical: str) -> dict[str, bool]:
    """Turn a capability off by clearing its whole synonym group.

    Setting only ``vision: false`` is useless while ``visual: true`` remains, because the
    groups are OR-ed on every read (reference §1.3 "editing gotcha").
    """
    group = SYNONYM_GROUPS[_canonical_for(canonical)]
    result = normalize_capabilities(caps)
    for alias in group:
        result[alias] = False
    return normalize_capabilities(result)


def set_capability(caps: Any, canonical: str, value: Any) -> dict[str, bool]:
    """Return a normalized copy of *caps* with one capability group on or off."""
    if not to_bool(value):
        return clear_capability(caps, canonical)
    result = normalize_capabilities(caps)
    result[_canonical_for(canonical)] = True
    return normalize_capabilities(result)


# --------------------------------------------------------------------------------------
# Scalars and lists
# --------------------------------------------------------------------------------------

_FALSE_STRINGS = frozenset({"false", "0", "no", "off", "", "none", "null"})


def to_bool(value: Any) -> bool:
    """Read a boolean that may be stored as a string.

    ``"false"``, ``"0"``, ``"no"``, ``"off"``, ``""`` (any case, stripped) are False;
    ``"true"``, ``"1"``, ``"yes"``, ``"on"`` are True; any other non-empty string is
    True, like ``bool()``. We also read ``"none"``/``"null"`` as False: the real files
    store ``"None"`` for unset values. Non-strings use ``bool()``.
    """
    if isinstance(value, str):
        return value.strip().lower() not in _FALSE_STRINGS
    return bool(value)


def served_id(value: Any) -> str:
    """The served model id, with the original's ``"None"`` bug undone (-> ``""``)."""
    if value is None:
        return ""
    text = str(value).strip()
    return "" if text.lower() == "none" else text


def _string_list(value: Any) -> list[str]:
    if value is None or isinstance(value, Mapping):
        return []
    # A single string is one item; the original split it into characters (a bug).
    items = [value] if isinstance(value, str | int | float) else value
    if not isinstance(items, Iterable):
        return []
    out: list[str] = []
    for item in items:
        if item is None or isinstance(item, Mapping | list):
            continue
        text = str(item).strip()
        if text:
            out.append(text)
    return out


def aliases(value: Any) -> list[str]:
    """``model_aliases`` as a list of non-blank strings (a string is one alias)."""
    return _string_list(value)


def roles(value: Any) -> list[str]:
    """``roles`` as a list of non-blank strings (a string is one role)."""
    return _string_list(value)


def _sub_dict(merged: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = merged.get(key) if isinstance(merged, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def clean_str(value: Any) -> str:
    """A stored scalar as stripped text; "" for null, objects, lists and booleans."""
    if value is None or isinstance(value, Mapping | list | bool):
        return ""
    return str(value).strip()


def local_path(path: str | os.PathLike[str]) -> Path:
    """*path* with ``~`` / ``~user`` expanded, for paths read from registry files.

    ``Path.expanduser()`` raises ``RuntimeError`` for a user this machine does not
    know (``~ghost/models``); such a path is left as written, so it is reported as
    missing files instead of breaking a sync or a page.
    """
    return Path(os.path.expanduser(path))


def model_dir(merged: Mapping[str, Any]) -> str:
    """Where the weights live: ``backend_config.model_path``, else ``download_path``."""
    path = clean_str(_sub_dict(merged, "backend_config").get("model_path"))
    if path:
        return path
    if not isinstance(merged, Mapping):
        return ""
    return clean_str(merged.get("download_path"))


# --------------------------------------------------------------------------------------
# Endpoints
# --------------------------------------------------------------------------------------

DEFAULT_BACKEND_PORTS: dict[str, int] = {
    "vllm": 24001,
    "ollama": 11434,
    "lmdeploy": 24001,
    "triton": 9000,
}
DEFAULT_PORT = 8000


def default_backend_port(backend: Any) -> int:
    return DEFAULT_BACKEND_PORTS.get(clean_str(backend).lower(), DEFAULT_PORT)


def entry_port(merged: Mapping[str, Any]) -> int:
    """``backend_config.port`` if it is a positive integer (``"8000"`` counts), else 0."""
    port = _sub_dict(merged, "backend_config").get("port")
    if isinstance(port, bool):
        return 0
    if isinstance(port, str):
        port = port.strip()
        if not port.isdigit():
            return 0
        port = int(port)
    if isinstance(port, float) and port.is_integer():
        port = int(port)
    return port if isinstance(port, int) and port > 0 else 0


def resolve_endpoint(merged: Mapping[str, Any]) -> str:
    """The OpenAI-style base URL of an entry (reference §7.2 precedence).

    1. ``backend_config.base_url``; 2. ``host`` when it is already a URL;
    3. ``http://{host or localhost}:{port}/v1`` with the backend's default port when the
    entry has none. The result never ends with ``/``.
    """
    cfg = _sub_dict(merged, "backend_config")
    base_url = clean_str(cfg.get("base_url")).rstrip("/")
    if base_url:
        return base_url
    host = clean_str(cfg.get("host"))
    if host.startswith(("http://", "https://")):
        return host.rstrip("/")
    backend = merged.get("backend") if isinstance(merged, Mapping) else None
    port = entry_port(merged) or default_backend_port(backend)
    return f"http://{host or 'localhost'}:{port}/v1".rstrip("/")


# --------------------------------------------------------------------------------------
# Testing entries
# --------------------------------------------------------------------------------------

#: The original's built-in testing-name patterns (reference §4), matched with
#: ``re.match`` (anchored at the start) and case-sensitive.
DEFAULT_TEST_PATTERNS: tuple[str, ...] = (
    r"^testmodel(.*)$",
    r"^mini-test(.*)$",
    r"^custom-family(.*)$",
    r"^synthetic-test($|-).*",
    r"^logical-only-test($|-).*",
    r"^.*testzzz.*$",
    r"^model-awq($|-).*",
    r"^model-fp16($|-).*",
    r"^demo-model($|-).*",
    r"^r($|-).*",
)


def compile_patterns(
    strings: str | Iterable[str | re.Pattern[str]],
) -> list[re.Pattern[str]]:
    """Compile testing-name patterns.

    Accepts an iterable of strings (or already compiled patterns) or one comma-separated
    string, as the ``IMAGEWORKS_TEST_MODEL_PATTERNS`` variable holds. Blank parts are
    skipped. A bad regex raises ``ValueError`` naming the pattern.
    """
    if isinstance(strings, str):
        strings = strings.split(",")
    compiled: list[re.Pattern[str]] = []
    for item in strings:
        if isinstance(item, re.Pattern):
            compiled.append(item)
            continue
        text = str(item).strip()
        if not text:
            continue
        try:
            compiled.append(re.compile(text))
        except re.error as exc:
            raise ValueError(f"Invalid test model pattern {text!r}: {exc}") from None
    return compiled


_DEFAULT_COMPILED = compile_patterns(DEFAULT_TEST_PATTERNS)


def is_testing(
    name: Any,
    metadata: Any,
    extra_patterns: Iterable[str | re.Pattern[str]] = (),
) -> bool:
    """True for the original's testing entries.

    A name matching a default or extra pattern, or ``metadata.testing`` being the JSON
    boolean ``true`` (the strings ``"true"`` and the number 1 do not count, as in the
    original).
    """
    if isinstance(metadata, Mapping) and metadata.get("testing") is True:
        return True
    text = clean_str(name)
    if not text:
        return False
    patterns = _DEFAULT_COMPILED + compile_patterns(extra_patterns)
    return any(pattern.match(text) for pattern in patterns)
