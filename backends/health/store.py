"""Store probe results on ``BackendEndpoint``; a ``HealthTransition`` only on a change."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from .. import clients
from ..choices import HealthStatus
from ..models import BackendEndpoint, HealthTransition
from .endpoints import Endpoint


def _transition_reason(result: clients.ProbeResult, endpoint: Endpoint) -> str:
    if result.error:
        return result.error
    if endpoint.note:
        return endpoint.note
    return HealthStatus(result.status).label


def store_result(
    endpoint: Endpoint, result: clients.ProbeResult, details: dict | None = None
) -> BackendEndpoint:
    """Save one probe result; write a HealthTransition only if the status changed."""
    now = timezone.now()
    # get_or_create survives two checks creating the same endpoint at once.
    created, _ = BackendEndpoint.objects.get_or_create(
        key=endpoint.key,
        defaults={"kind": endpoint.kind, "label": endpoint.label[:200]},
    )
    with transaction.atomic():
        row = BackendEndpoint.objects.select_for_update().get(pk=created.pk)
        old = row.status
        row.kind = endpoint.kind
        row.label = endpoint.label[:200]
        row.url = endpoint.url[:500]
        row.last_checked = now
        row.latency_ms = result.latency_ms
        row.last_error = result.error or ""
        row.details = details if details is not None else base_details(endpoint, result)
        changed = old != result.status or row.since is None
        if changed:
            row.status = result.status
            row.since = now
        row.save()
        if old != result.status:
            HealthTransition.objects.create(
                endpoint=row,
                time=now,
                old_status=old,
                new_status=result.status,
                reason=_transition_reason(result, endpoint)[:2000],
            )
    return row


def base_details(endpoint: Endpoint, result: clients.ProbeResult) -> dict[str, Any]:
    """The stored ``details`` every endpoint gets (what the probe said, and why we asked)."""
    return {
        **result.details,
        "configured": True,
        "expected": endpoint.expected,
        "entries": {name: {} for name in endpoint.entries},
        "sources": endpoint.sources,
        "activation": endpoint.activation,
        "note": endpoint.note,
        "checked_at": result.checked_at.isoformat(),
    }


def mark_unconfigured(keys_seen: set[str], kinds: set[str]) -> None:
    """Endpoints no longer configured (entry removed, URL changed) turn "not configured"."""
    gone = BackendEndpoint.objects.filter(kind__in=kinds).exclude(key__in=keys_seen)
    for row in gone.exclude(status=HealthStatus.NOT_CONFIGURED):
        store_result(
            Endpoint(key=row.key, kind=row.kind, label=row.label, url=row.url),
            clients.ProbeResult(
                status=HealthStatus.NOT_CONFIGURED,
                url=row.url,
                error="no longer configured",
            ),
            details={"configured": False},
        )
