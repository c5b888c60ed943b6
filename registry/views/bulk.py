"""Bulk actions on the Models page's selected rows (Django admin's actions), and
Compare two.

``models/bulk/`` (POST + CSRF): without ``confirm`` it shows what will happen to each
selected entry (the intermediate page, writes nothing); with ``confirm`` it queues
one bulk job and redirects to its progress page. Permissions are checked per entry
by ``registry.services.bulk`` (a refused row is listed and audited, not skipped).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from ..audit import Actor
from ..choices import JobKind
from ..jobs import JobConflict
from ..models import Job, ModelEntry
from ..services import bulk
from ..services.compare import compare_entries


def _selected_pks(request) -> list[int]:
    pks = []
    for value in request.POST.getlist("select"):
        try:
            pks.append(int(value))
        except ValueError:
            continue
    return pks


def _back(request) -> str:
    return reverse("registry:modelentry_list")


@require_POST
@login_required
@permission_required("registry.view_modelentry", raise_exception=True)
def bulk_action(request):
    """Confirm page (no ``confirm``), or queue the batch (``confirm=yes``)."""
    if request.POST.get("compare"):
        return _compare_redirect(request)
    try:
        action = bulk.check_action(request.POST.get("action", ""))
        entries, _missing = bulk.resolve_entries(pks=_selected_pks(request))
    except bulk.BulkError as exc:
        messages.error(request, str(exc))
        return redirect(_back(request))
    if not entries:
        messages.error(request, "Select at least one row, then choose an action.")
        return redirect(_back(request))
    actor = Actor.from_request(request)
    if request.POST.get("confirm") != "yes":
        plan = bulk.plan_bulk(action, entries, actor)
        return render(request, "registry/bulk_confirm.html", {"plan": plan})
    try:
        job = bulk.start_bulk(action, entries, actor)
    except (bulk.BulkError, JobConflict) as exc:
        messages.error(request, str(exc))
        return redirect(_back(request))
    return redirect("registry:bulk_progress", pk=job.pk)


def _compare_redirect(request):
    pks = list(dict.fromkeys(_selected_pks(request)))
    if len(pks) != 2:
        messages.error(
            request, f"Tick exactly two rows to compare ({len(pks)} ticked)."
        )
        return redirect(_back(request))
    url = reverse("registry:entry_compare")
    return redirect(f"{url}?a={pks[0]}&b={pks[1]}")


def _batch(pk: int) -> tuple[Job, list[dict], bool]:
    job = get_object_or_404(Job, pk=pk, kind=JobKind.BULK)
    items = bulk.batch_items(job)
    return job, items, bulk.batch_finished(job, items)


@require_GET
@login_required
@permission_required("registry.view_job", raise_exception=True)
def bulk_progress(request, pk: int):
    """One page for the batch: the bulk job and each entry's own job; htmx polls the
    ``#batch`` partial, which answers 286 (stop polling) once everything ended."""
    job, items, finished = _batch(pk)
    context = {"job": job, "items": items, "finished": finished}
    if request.htmx and not request.htmx.boosted:
        response = render(request, "registry/bulk_progress.html#batch", context)
        if finished:
            stop = HttpResponseStopPolling()
            stop.content = response.content
            return stop
        return response
    return render(request, "registry/bulk_progress.html", context)


@require_GET
@login_required
@permission_required("registry.view_modelentry", raise_exception=True)
def entry_compare(request):
    """``models/compare/?a=<pk>&b=<pk>``: two entries side by side, and their diff."""
    try:
        pks = [int(request.GET["a"]), int(request.GET["b"])]
    except (KeyError, ValueError):
        messages.error(request, "Tick exactly two rows, then press Compare two.")
        return redirect(_back(request))
    entries = ModelEntry.objects.in_bulk(pks)
    if len(entries) != 2:
        messages.error(request, "Pick two different entries that exist to compare.")
        return redirect(_back(request))
    comparison = compare_entries(entries[pks[0]], entries[pks[1]])
    only_diff = request.GET.get("only") == "diff"
    rows = (
        [r for r in comparison.rows if not r["same"]] if only_diff else comparison.rows
    )
    return render(
        request,
        "registry/compare.html",
        {"cmp": comparison, "rows": rows, "only_diff": only_diff},
    )


__all__ = ["bulk_action", "bulk_progress", "entry_compare"]
