"""Template helpers: diff colouring, and the disk-use lines the Models page can include.

``{% load inventory_tags %}`` then ``{% entry_disk_use entry as usage %}`` (one query)
or ``{% backend_disk_total backend as total %}`` (one query per request, cached).
"""

from __future__ import annotations

import os

from django import template

from .. import sources
from ..scan import is_within
from ..services import disk

register = template.Library()


@register.filter
def diff_lines(text: str) -> list[tuple[str, str]]:
    """A unified diff as ``(css class, line)`` pairs."""
    out = []
    for line in (text or "").splitlines():
        if line.startswith(("+++", "---")):
            css = "diff-file"
        elif line.startswith("@@"):
            css = "diff-hunk"
        elif line.startswith("+"):
            css = "diff-add"
        elif line.startswith("-"):
            css = "diff-del"
        else:
            css = "diff-ctx"
        out.append((css, line))
    return out


@register.simple_tag
def entry_disk_use(entry):
    """The entry's ``EntryUsage`` from the last scan, or None."""
    return disk.usage_for(entry) if entry is not None else None


@register.simple_tag(takes_context=True)
def backend_disk_total(context, backend: str):
    """``{bytes, entries, measured}`` for one backend (all backends in one query per
    request)."""
    request = context.get("request")
    totals = getattr(request, "_inventory_backend_totals", None) if request else None
    if totals is None:
        totals = disk.backend_totals(
            include_testing=bool(request and request.GET.get("testing"))
        )
        if request is not None:
            request._inventory_backend_totals = totals
    return totals.get(backend)


@register.simple_tag
def entry_last_activated(entry):
    """When the entry's model was last started, or None (one query)."""
    if entry is None:
        return None
    return sources.last_activations([entry.name]).get(entry.name)


def short_path(path: str) -> str:
    """``<root name>/rel/path`` for a path inside a model root (the full path is
    shown as the title); other paths unchanged."""
    if not path or not path.startswith("/"):
        return path or ""
    for root in sorted((str(r) for r in sources.model_roots()), key=len, reverse=True):
        root = os.path.realpath(root)
        if is_within(path, root):
            rel = os.path.relpath(path, root)
            name = os.path.basename(root.rstrip("/")) or root
            return name if rel == "." else f"{name}/{rel}"
    return path


register.filter("short_path", short_path)
