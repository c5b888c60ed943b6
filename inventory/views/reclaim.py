"""Reclaim plan pages: select (GET), preview (POST, writes nothing), execute (POST).

Thin: ``inventory.services.reclaim`` builds, checks and executes plans. The confirm
form carries the preview's digest; a plan that changed in between is refused.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from registry.audit import Actor

from ..choices import FindingKind
from ..forms import ExecuteForm, SelectionForm, SuggestForm
from ..models import Finding
from ..services import reclaim
from ..services.scanning import latest_scan
from ..tables import CandidateTable


@login_required
@permission_required("inventory.reclaim_space", raise_exception=True)
@require_GET
def reclaim_page(request):
    """Step 1: entries and orphan folders, suggestions for entries unused N days."""
    form = SuggestForm(request.GET or None)
    days = settings.IMAGEWORKS_RECLAIM_IDLE_DAYS
    if form.is_bound and form.is_valid() and form.cleaned_data["days"]:
        days = form.cleaned_data["days"]
    rows = reclaim.candidates(days)
    selected = set(request.GET.getlist("select"))
    if request.GET.get("suggest"):
        selected |= {f"entry:{c.entry.pk}" for c in rows if c.suggested}
    table = CandidateTable(rows, selected=selected, order_by=request.GET.get("sort"))
    table.base_url = reverse("inventory:reclaim")
    scan = latest_scan()
    orphans = (
        Finding.objects.filter(scan=scan, kind=FindingKind.ORPHAN_FOLDER)
        if scan
        else Finding.objects.none()
    )
    return render(
        request,
        "inventory/reclaim.html",
        {
            "form": form,
            "days": days,
            "table": table,
            "orphans": orphans,
            "selected": selected,
            "suggested": sum(1 for c in rows if c.suggested),
            "scan": scan,
        },
    )


def _render_plan(request, plan, keys, error="", status=200):
    template = "inventory/_plan.html" if request.htmx else "inventory/plan_page.html"
    return render(
        request,
        template,
        {"plan": plan, "keys": keys, "error": error},
        status=status,
    )


@login_required
@permission_required("inventory.reclaim_space", raise_exception=True)
@require_POST
def reclaim_preview(request):
    """Step 2: the plan (freed bytes, references, what would break, refusals)."""
    form = SelectionForm(request.POST)
    if not form.is_valid():
        return _render_plan(
            request, None, [], error=" ".join(form.errors.get("select", [])), status=400
        )
    keys = form.cleaned_data["select"]
    return _render_plan(request, reclaim.build_plan(keys), keys)


@login_required
@permission_required("inventory.reclaim_space", raise_exception=True)
@require_POST
def reclaim_execute(request):
    """Step 3: move the folders to the trash (only the previewed plan)."""
    form = ExecuteForm(request.POST)
    if not form.is_valid():
        keys = request.POST.getlist("select")[:500]
        errors = [e for errs in form.errors.values() for e in errs]
        return _render_plan(request, None, keys, error=" ".join(errors), status=400)
    keys = form.cleaned_data["select"]
    try:
        result = reclaim.execute(
            keys, Actor.from_request(request), form.cleaned_data["digest"]
        )
    except reclaim.PlanChanged as exc:
        return _render_plan(
            request, reclaim.build_plan(keys), keys, error=str(exc), status=409
        )
    level = (
        messages.SUCCESS if result.moved and not result.refused else messages.WARNING
    )
    if not result.moved:
        level = messages.ERROR
    messages.add_message(request, level, result.message)
    target = reverse("inventory:trash")
    if request.htmx:
        response = render(request, "inventory/_redirect.html", {"url": target})
        response["HX-Redirect"] = target
        return response
    return redirect(target)
