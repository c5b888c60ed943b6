"""The chat proxy's autostart map, read and validated; a malformed map is reported.

Read from ``CHAT_PROXY_AUTOSTART_MAP`` or ``[autostart] autostart_map_raw`` in
chat_proxy.toml; never silently ignored.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .endpoints import setting


@dataclass
class AutostartMap:
    """The chat proxy's autostart map: logical name -> argv, with where it came from."""

    commands: dict[str, list[str]] = field(default_factory=dict)
    source: str = ""
    error: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.source)


def parse_autostart_map(raw: str, source: str) -> AutostartMap:
    """Validate the map's JSON: an object of ``name -> {"command": [argv...]}``.

    Valid items are kept; every invalid one is named in ``error``.
    """
    result = AutostartMap(source=source)
    raw = (raw or "").strip()
    if not raw:
        return AutostartMap()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        result.error = f"autostart map from {source} is not valid JSON: {exc}"
        return result
    if not isinstance(data, dict):
        result.error = (
            f"autostart map from {source} must be a JSON object "
            f'{{"name": {{"command": [...]}}}}, got {type(data).__name__}'
        )
        return result
    problems = []
    for name, spec in data.items():
        command = spec.get("command") if isinstance(spec, dict) else None
        if (
            isinstance(command, list)
            and command
            and all(isinstance(arg, str) and arg for arg in command)
        ):
            result.commands[str(name)] = list(command)
        else:
            problems.append(f'{name!r} needs {{"command": [non-empty strings]}}')
    if problems:
        result.error = f"autostart map from {source}: " + "; ".join(problems)
    return result


def load_autostart_map() -> AutostartMap:
    """Read the map from ``CHAT_PROXY_AUTOSTART_MAP`` or ``[autostart]`` of chat_proxy.toml.

    The environment variable wins (as in the original). Problems reading the
    toml file are reported in ``error``.
    """
    raw = os.environ.get("CHAT_PROXY_AUTOSTART_MAP", "")
    if raw.strip():
        return parse_autostart_map(raw, "env CHAT_PROXY_AUTOSTART_MAP")
    config = str(setting("IMAGEWORKS_CHAT_PROXY_CONFIG", "") or "").strip()
    if not config:
        return AutostartMap()
    path = Path(config).expanduser()
    source = f"{path} [autostart]"
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return AutostartMap(source=source, error=f"chat proxy config {path} not found")
    except (OSError, tomllib.TOMLDecodeError) as exc:
        return AutostartMap(
            source=source, error=f"cannot read chat proxy config {path}: {exc}"
        )
    section = data.get("autostart") or {}
    raw = section.get("autostart_map_raw", "") if isinstance(section, dict) else ""
    if not isinstance(raw, str):
        return AutostartMap(
            source=source, error=f"{source}: autostart_map_raw must be a JSON string"
        )
    return parse_autostart_map(raw, source)


def autostart_for(entry_name: str) -> list[str] | None:
    """The autostart argv configured for an entry, or None."""
    return load_autostart_map().commands.get(entry_name)
