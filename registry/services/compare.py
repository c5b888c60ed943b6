"""Compare two entries side by side (what every tool sees: the merged entries).

Rows are the leaf keys of both entries as dotted paths (dicts are opened, lists and
scalars compared whole, like the merge rule and ``registry.diffing``), each with both
values as JSON text and whether they differ; the unified diff is the editor's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..diffing import diff_entries
from ..models import ModelEntry
from .editing import Preview, digest, unified_diff

MISSING = object()


@dataclass
class Comparison:
    a: ModelEntry
    b: ModelEntry
    rows: list[dict]
    preview: Preview  # the editor's diff view of a -> b

    @property
    def differing(self) -> int:
        return sum(1 for row in self.rows if not row["same"])


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_leaves(item, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value} if prefix else {}


def _text(value: Any) -> str:
    if value is MISSING:
        return ""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def compare_entries(a: ModelEntry, b: ModelEntry) -> Comparison:
    left, right = a.merged or {}, b.merged or {}
    la, lb = _leaves(left), _leaves(right)
    paths = list(la) + [p for p in lb if p not in la]
    rows = []
    for path in paths:
        va, vb = la.get(path, MISSING), lb.get(path, MISSING)
        rows.append(
            {
                "path": path,
                "a": _text(va),
                "b": _text(vb),
                "a_missing": va is MISSING,
                "b_missing": vb is MISSING,
                "same": va is not MISSING
                and vb is not MISSING
                and _text(va) == _text(vb),
            }
        )
    changes = diff_entries(left, right)
    preview = Preview(
        diff=changes,
        unified_text=unified_diff(left, right, "entry")
        .replace("a/entry", f"a/{a.name}", 1)
        .replace("b/entry", f"b/{b.name}", 1),
        new_curated=None,
        before=None,
        digest=digest(right),
    )
    return Comparison(a, b, rows, preview)


__all__ = ["Comparison", "compare_entries"]
