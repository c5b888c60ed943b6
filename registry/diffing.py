"""Key-level diffs between two versions of a registry entry.

A change is ``{"path": "backend_config.port", "op": "added|removed|changed",
"before": old, "after": new}``. Dicts are compared key by key (dotted paths); lists
and scalars are compared as whole values, like the registry's merge rule treats them.
We considered deepdiff: its paths (``root['a']['b']``) and types need converting for
JSON storage and display, and the rule we need is twenty lines.
"""

from __future__ import annotations

from typing import Any

MISSING = object()


def diff_entries(
    before: dict | None, after: dict | None, prefix: str = ""
) -> list[dict]:
    """The changed keys between *before* and *after* (either may be None)."""
    before = before or {}
    after = after or {}
    changes: list[dict] = []
    for key in _ordered_keys(before, after):
        path = f"{prefix}{key}"
        old = before.get(key, MISSING)
        new = after.get(key, MISSING)
        if old is MISSING:
            changes.append({"path": path, "op": "added", "before": None, "after": new})
        elif new is MISSING:
            changes.append(
                {"path": path, "op": "removed", "before": old, "after": None}
            )
        elif isinstance(old, dict) and isinstance(new, dict):
            changes.extend(diff_entries(old, new, prefix=f"{path}."))
        elif not _same(old, new):
            changes.append({"path": path, "op": "changed", "before": old, "after": new})
    return changes


def _ordered_keys(before: dict, after: dict) -> list[str]:
    keys = list(before)
    keys.extend(k for k in after if k not in before)
    return keys


def _same(a: Any, b: Any) -> bool:
    # 1 == True in Python; in JSON they are different values.
    return type(a) is type(b) and a == b


def summarize(changes: list[dict], limit: int = 6) -> str:
    """A one-line summary such as "changed display_name, roles; added metadata.notes"."""
    groups: dict[str, list[str]] = {}
    for change in changes:
        groups.setdefault(change["op"], []).append(change["path"])
    parts = []
    for op in ("changed", "added", "removed"):
        paths = groups.get(op)
        if paths:
            shown = ", ".join(paths[:limit]) + (
                f" (+{len(paths) - limit} more)" if len(paths) > limit else ""
            )
            parts.append(f"{op} {shown}")
    return "; ".join(parts) or "no changes"
