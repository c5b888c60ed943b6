"""The "Import from downloads" wizard: pick (1), fill fields (2), review (3), confirm.

Wizard state travels in the form posts (hidden fields), never in the session, and
nothing is written before Confirm. Thin: ``registry.services.importing`` plans and applies.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from .. import layers
from ..audit import Actor
from ..forms.edit import import_formset
from ..models import ModelEntry
from ..services import importing
from ..services.sync import sync_registry


def _unknown_ollama_tags() -> list[dict]:
    """Ollama tags no entry knows (from the last health check)."""
    # The backends app is always installed; imported here, at the page, so that
    # registry's modules load without it (a broken import fails this page loudly).
    from backends.health import unknown_ollama_tags

    try:
        return list(unknown_ollama_tags())
    except Exception:  # noqa: BLE001 - a health problem must not break the wizard
        return []


def _tag_of(item: dict) -> str:
    return str(item.get("tag") or item.get("name") or "").strip()


@login_required
@permission_required("registry.import_entry", raise_exception=True)
@require_GET
def import_start(request):
    """Step 1: discovered entries with no curated overlay (+ unknown Ollama tags)."""
    synced = sync_registry(Actor.from_request(request), explicit=False)
    # A broken registry file: the last good mirror's candidates, with the error.
    broken = synced.error if synced.broken else ""
    return _render_step1(request, request.GET.get("q", ""), error=broken)


def _render_step1(request, query: str, error: str = "", status: int = 200):
    rows = [
        {"entry": entry, **importing.entry_summary(entry)}
        for entry in importing.importable_entries(query)
    ]
    tags = [t for t in _unknown_ollama_tags() if _tag_of(t)]
    if query:
        tags = [t for t in tags if query.lower() in _tag_of(t).lower()]
    return render(
        request,
        "registry/import_start.html",
        {"rows": rows, "tags": tags, "query": query, "error": error, "step": 1},
        status=status,
    )


def _step2_initial(request) -> list[dict]:
    names = request.POST.getlist("names")
    tags = request.POST.getlist("tags")
    initial = []
    for entry in ModelEntry.objects.filter(name__in=names).order_by("name"):
        suggestion = importing.suggest_fields(entry)
        suggestion["roles"] = ", ".join(suggestion["roles"])
        initial.append(suggestion)
    for tag in tags:
        suggestion = importing.suggest_for_tag(tag)
        suggestion["roles"] = ", ".join(suggestion["roles"])
        initial.append(suggestion)
    return initial


def _entries_for(formset) -> dict[str, ModelEntry]:
    names = [
        form.initial.get("name") or form.data.get(f"{form.prefix}-name")
        for form in formset
    ]
    return {e.name: e for e in ModelEntry.objects.filter(name__in=names)}


def _render_step2(request, formset, status: int = 200):
    entries = _entries_for(formset)
    rows = []
    for form in formset:
        name = form.initial.get("name") or form.data.get(f"{form.prefix}-name", "")
        entry = entries.get(name)
        rows.append(
            {
                "form": form,
                "name": name,
                "entry": entry,
                "summary": importing.entry_summary(entry) if entry else None,
                "suggested": importing.suggest_fields(entry) if entry else None,
            }
        )
    return render(
        request,
        "registry/import_fields.html",
        {"formset": formset, "rows": rows, "step": 2},
        status=status,
    )


@login_required
@permission_required("registry.import_entry", raise_exception=True)
@require_POST
def import_fields(request):
    """Step 2: per-entry fields, pre-filled with suggestions."""
    initial = _step2_initial(request)
    if not initial:
        return _render_step1(
            request,
            request.POST.get("q", ""),
            error="Select at least one entry to import.",
        )
    return _render_step2(request, import_formset(initial=initial))


def _items(formset) -> list[importing.ImportItem]:
    return [
        importing.ImportItem(
            name=form.cleaned_data["name"],
            roles=form.cleaned_data["roles"],
            backend=form.cleaned_data["backend"],
            served_model_id=form.cleaned_data["served_model_id"],
            display_name=form.cleaned_data["display_name"],
            ollama_tag=form.cleaned_data.get("ollama_tag") or "",
        )
        for form in formset
    ]


def _render_review(request, formset, plan, error: str = ""):
    return render(
        request,
        "registry/import_review.html",
        {
            "formset": formset,
            "plan": plan,
            "diff_lines": _diff_lines(importing.curated_file_diff(plan))
            if plan.entries
            else [],
            "error": error,
            "step": 3,
        },
    )


def _diff_lines(text: str) -> list[tuple[str, str]]:
    from ..services.editing import Preview

    return Preview([], text, {}, None, "").unified_lines


@login_required
@permission_required("registry.import_entry", raise_exception=True)
@require_POST
def import_review(request):
    """Step 3: validate step 2, show the plan and the diff of the curated file."""
    formset = import_formset(data=request.POST)
    if not formset.is_valid():
        return _render_step2(request, formset)
    try:
        plan = importing.plan_import(_items(formset))
    except layers.RegistryError as exc:  # a broken registry file
        return _render_review(request, formset, importing.ImportPlan(), error=str(exc))
    return _render_review(request, formset, plan)


@login_required
@permission_required("registry.import_entry", raise_exception=True)
@require_POST
def import_confirm(request):
    """Confirm: append the entries to the curated file in one atomic write."""
    formset = import_formset(data=request.POST)
    if not formset.is_valid():
        return _render_step2(request, formset)
    try:
        plan = importing.plan_import(_items(formset))
    except layers.RegistryError as exc:  # a broken registry file: nothing written
        return _render_review(request, formset, importing.ImportPlan(), error=str(exc))
    try:
        result = importing.apply_import(plan, Actor.from_request(request))
    except layers.RegistryError as exc:
        return _render_review(request, formset, plan, error=str(exc))
    level = (
        messages.SUCCESS if result.imported and not result.refused else messages.WARNING
    )
    if not result.imported:
        level = messages.ERROR
    messages.add_message(request, level, result.message)
    return redirect(reverse("registry:modelentry_list"))
