"""Health pages and partials: backend cards, "Check now", transition history, active model.

Thin views over :mod:`backends.health` (``check``, ``summary``, ``active``). Reading
needs the viewer permission ``backends.view_backendendpoint``; "Check now" is a POST open to the same users:
it re-probes the servers and refreshes the stored health (and Ollama's
Installed?), but changes no registry content, so no stronger role is needed.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime

from django.conf import settings
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.db import DatabaseError, connection, transaction
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from ..choices import BackendKind, HealthStatus
from ..models import HealthTransition
from . import active, check, summary
from .endpoints import KIND_ORDER, VLLM_ACTIVE_KEY

logger = logging.getLogger(__name__)

VIEW_PERM = "backends.view_backendendpoint"
#: One card GET per backend kind at a time re-checks stale results (per process); a
#: second browser's GET of the same card shows the stored status instead of piling up
#: concurrent writers (SQLite "table is locked").
_refresh_locks: dict[str, threading.Lock] = {}
_refresh_locks_guard = threading.Lock()
DB_RETRIES = 3

COLOURS = {
    "green": "green",
    "amber": "amber",
    "red": "red",
    "grey": "grey",
}  # CSS classes of .dot


def _kind(kind: str) -> BackendKind:
    try:
        return BackendKind(kind)
    except ValueError:
        raise Http404(f"unknown backend kind {kind!r}")


def _poll_seconds() -> int:
    return int(getattr(settings, "IMAGEWORKS_HEALTH_CARD_POLL", 15))


def _card_context(kind: BackendKind) -> dict:
    card = summary.kind_summary(kind)
    card["hex"] = COLOURS[card["colour"]]
    card["poll_seconds"] = _poll_seconds()
    card["endpoint_rows"] = [
        {
            "row": ep,
            "colour": HealthStatus(ep.status).colour,
            "hex": COLOURS[HealthStatus(ep.status).colour],
            "status_label": HealthStatus(ep.status).label,
            "primary": ep is card["primary"],
            "first_other": card["primary"] is not None
            and ep is (card["others"][0] if card["others"] else None),
        }
        for ep in card["endpoints"]
    ]
    return card


@require_GET
@login_required
@permission_required(VIEW_PERM, raise_exception=True)
def overview(request):
    """All backend cards on one page (each card loads and refreshes on its own)."""
    return render(
        request,
        "backends/health_overview.html",
        {
            "kinds": [(k.value, k.label) for k in KIND_ORDER],
            "poll_seconds": _poll_seconds(),
            "interval": getattr(settings, "IMAGEWORKS_HEALTH_INTERVAL", 30),
        },
    )


@require_GET
@login_required
@permission_required(VIEW_PERM, raise_exception=True)
def card(request, kind: str):
    """One backend card (partial); re-checks first when the stored result is stale."""
    kind = _kind(kind)
    problem = _refresh_quietly(kind)
    context = _read_with_retry(lambda: _card_context(kind))
    if context is None:
        context = {
            "kind": kind.value,
            "label": kind.label,
            "status": HealthStatus.UNKNOWN,
            "status_label": "Status unavailable",
            "colour": "grey",
            "hex": "grey",
            "endpoint_rows": [],
            "poll_seconds": _poll_seconds(),
        }
        problem = problem or "The database is busy; this card retries on its own."
    context["note"] = " ".join(x for x in (context.get("note"), problem) if x)
    return render(request, "backends/health_card.html", context)


def _refresh_quietly(kind: BackendKind) -> str:
    """Re-check ``kind`` if its stored results are stale, without ever failing the GET.

    The refresh is a no-op while the qcluster schedule keeps results fresh, so a GET
    writes only when no worker checks (docs/health.md, "Cards and database writes").
    Returns a note for the card when the refresh could not be saved.
    """
    with _refresh_locks_guard:
        lock = _refresh_locks.setdefault(str(kind), threading.Lock())
    if not lock.acquire(blocking=False):
        return ""  # this backend is being checked right now: show the stored status
    try:
        if connection.in_atomic_block:  # keep an outer transaction usable
            with transaction.atomic():
                check.refresh_if_stale([kind])
        else:
            check.refresh_if_stale([kind])
    except DatabaseError as exc:
        logger.warning("health card refresh of %s not saved: %s", kind, exc)
        return "Showing the last stored result: a fresh check could not be saved (database busy)."
    finally:
        lock.release()
    return ""


def _read_with_retry(read):
    """Run a read; SQLite may briefly answer "database table is locked" under writes."""
    for attempt in range(DB_RETRIES):
        try:
            return read()
        except DatabaseError as exc:
            if connection.in_atomic_block:
                raise
            logger.info("health card read retry %d: %s", attempt + 1, exc)
            time.sleep(0.1 * (attempt + 1))
    return None


@require_POST
@login_required
@permission_required(VIEW_PERM, raise_exception=True)
def check_now(request, kind: str | None = None):
    """Re-check one backend kind (or all) now; htmx gets the fresh card back."""
    kinds = [_kind(kind)] if kind else None
    check.check_all(kinds)
    if request.htmx and kind:
        return render(request, "backends/health_card.html", _card_context(kinds[0]))
    target = request.POST.get("next") or request.headers.get("Referer") or ""
    if not url_has_allowed_host_and_scheme(
        target, {request.get_host()}, request.is_secure()
    ):
        target = ""
    return redirect(target or "health:overview")


@require_GET
@login_required
@permission_required(VIEW_PERM, raise_exception=True)
def history(request):
    """Status transitions, newest first (filter with ?kind= or ?endpoint=<key>)."""
    rows = HealthTransition.objects.select_related("endpoint")
    kind = request.GET.get("kind", "")
    if kind:
        rows = rows.filter(endpoint__kind=kind)
    key = request.GET.get("endpoint", "")
    if key:
        rows = rows.filter(endpoint__key=key)
    page = Paginator(rows, 50).get_page(request.GET.get("page"))
    for t in page:
        t.old_hex = COLOURS[HealthStatus(t.old_status).colour]
        t.new_hex = COLOURS[HealthStatus(t.new_status).colour]
    return render(
        request,
        "backends/health_history.html",
        {"page": page, "kind": kind, "endpoint_key": key, "kinds": KIND_ORDER},
    )


def _as_datetime(value):
    """started_at may be epoch seconds (the original) or ISO text; None stays None."""
    if value in (None, ""):
        return None
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (TypeError, ValueError):
        pass
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return value


@require_GET
@login_required
@permission_required(VIEW_PERM, raise_exception=True)
def active_model(request):
    """Dashboard "Active model" card (partial)."""
    state = active.active_vllm()
    if state:
        state = {**state, "started_at": _as_datetime(state.get("started_at"))}
    row = (
        summary.configured_endpoints(BackendKind.VLLM)
        .filter(key=VLLM_ACTIVE_KEY)
        .first()
    )
    if not state:
        status = HealthStatus.NOT_CONFIGURED
    elif row is None or row.status == HealthStatus.NOT_CONFIGURED:
        # An active model whose endpoint was not probed since it started: "Unknown",
        # never "Not configured" next to its name (activation checks at once).
        status = HealthStatus.UNKNOWN
    else:
        status = row.status
    return render(
        request,
        "backends/active_model_card.html",
        {
            "state": state,
            "endpoint": row,
            "status": status,
            "status_label": HealthStatus(status).label,
            "hex": COLOURS[HealthStatus(status).colour],
        },
    )


@require_GET
@login_required
@permission_required(VIEW_PERM, raise_exception=True)
def status_json(request):
    """Stored health of every configured endpoint as JSON (no probing)."""
    data = [
        {
            "key": ep.key,
            "kind": ep.kind,
            "label": ep.label,
            "url": ep.url,
            "status": ep.status,
            "since": ep.since.isoformat() if ep.since else None,
            "last_checked": ep.last_checked.isoformat() if ep.last_checked else None,
            "latency_ms": ep.latency_ms,
            "error": ep.last_error,
            "details": ep.details,
        }
        for ep in summary.configured_endpoints()
    ]
    return JsonResponse({"endpoints": data})
