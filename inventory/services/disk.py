"""Disk use and last use per entry, read from the last scan (constant query counts).

* :func:`disk_usage_by_entry` — ``{entry_id: EntryUsage}`` in ONE query, whatever the
  number of entries (:data:`DISK_USAGE_QUERIES`).
* :func:`backend_totals` — bytes per backend, shared files counted once (each file
  is counted for the entry that owns it), in ONE query.
* :func:`entry_activity` — last activated (activation history), last verified
  (lock fields, else the audit log) and last used, in a fixed number of queries.

The Models page wiring (column, drawer lines, card totals) is described in
``docs/reconcile.md``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import Count, Q, Sum
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from registry.models import ModelEntry

from .. import sources
from ..models import EntryUsage

#: Queries :func:`disk_usage_by_entry` makes (for any number of entries).
DISK_USAGE_QUERIES = 1
#: Queries :func:`backend_totals` makes.
BACKEND_TOTALS_QUERIES = 1
#: Queries :func:`entry_activity` makes (activations, verifications).
ENTRY_ACTIVITY_QUERIES = 2


def disk_usage_by_entry(
    entry_ids: Iterable[int] | None = None,
) -> dict[int, EntryUsage]:
    rows = EntryUsage.objects.all()
    if entry_ids is not None:
        rows = rows.filter(entry_id__in=list(entry_ids))
    return {row.entry_id: row for row in rows.defer("shared")}


def usage_for(entry: ModelEntry) -> EntryUsage | None:
    """The entry's usage row, from ``select_related("usage")`` when the caller joined
    it, else one query."""
    if ModelEntry.usage.is_cached(entry):
        try:
            return entry.usage
        except EntryUsage.DoesNotExist:
            return None
    return EntryUsage.objects.filter(entry=entry).defer("shared").first()


def backend_totals(*, include_testing: bool = False) -> dict[str, dict]:
    """backend -> ``{bytes, entries, measured}`` (deprecated entries included: their
    files are still on disk)."""
    rows = EntryUsage.objects.all()
    if not include_testing:
        rows = rows.filter(entry__testing=False)
    out = {}
    for row in rows.values("entry__backend").annotate(
        owned=Sum("owned_bytes"),
        entries=Count("pk"),
        measured=Count("pk", filter=Q(size_bytes__isnull=False)),
    ):
        out[row["entry__backend"]] = {
            "bytes": row["owned"] or 0,
            "entries": row["entries"],
            "measured": row["measured"],
        }
    return out


@dataclass(frozen=True)
class Activity:
    last_activated: datetime | None
    last_verified: datetime | None
    last_accessed: datetime | None  # the registry's ``last_accessed`` (downloader)

    @property
    def last_used(self) -> datetime | None:
        moments = [m for m in (self.last_activated, self.last_accessed) if m]
        return max(moments) if moments else None


def _parse(value) -> datetime | None:
    if not value:
        return None
    try:
        moment = parse_datetime(str(value))
    except ValueError:
        return None
    if moment is not None and timezone.is_naive(moment):
        moment = timezone.make_aware(moment, UTC)
    return moment


def entry_activity(entries: Iterable[ModelEntry]) -> dict[str, Activity]:
    """name -> :class:`Activity` (:data:`ENTRY_ACTIVITY_QUERIES` queries).

    ``entries`` must carry their raw layers (``last_accessed`` is read from them)."""
    entries = list(entries)
    names = [e.name for e in entries]
    activated = sources.last_activations(names)
    verified = sources.last_verifications(names)
    out = {}
    for entry in entries:
        merged = entry.merged or {}
        lock = merged.get("version_lock") if isinstance(merged, dict) else None
        lock_time = (
            _parse(lock.get("last_verified")) if isinstance(lock, dict) else None
        )
        candidates = [
            m
            for m in (entry.last_verified_at, lock_time, verified.get(entry.name))
            if m
        ]
        out[entry.name] = Activity(
            last_activated=activated.get(entry.name),
            last_verified=max(candidates) if candidates else None,
            last_accessed=_parse(merged.get("last_accessed")),
        )
    return out
