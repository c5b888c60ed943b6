"""Entry editor views: open (GET), preview (POST, writes nothing), confirm (POST, writes).

Thin: the form validates, ``registry.services.editing`` computes and saves. Each view answers
an htmx request with the modal body partial and a plain request with a full page, so
the editor also works without JavaScript. Cancel is client-side only.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from .. import layers
from ..audit import Actor
from ..forms.edit import ModelEntryEditForm
from ..models import ModelEntry
from ..services import editing, writeback
from ..services.sync import sync_registry

PARTIAL = "registry/edit_modal.html"
PAGE = "registry/edit_page.html"


def _render(request, context: dict, status: int = 200, headers: dict | None = None):
    template = PARTIAL if request.htmx else PAGE
    response = render(request, template, context, status=status)
    for key, value in (headers or {}).items():
        response[key] = value
    return response


def _context(entry: ModelEntry, form: ModelEntryEditForm, **extra) -> dict:
    return {"entry": entry, "form": form, **extra}


def _bound_form(request, entry: ModelEntry) -> ModelEntryEditForm:
    return ModelEntryEditForm(request.POST, entry=entry)


def _conflict_response(request, entry, form, conflict, mine: dict | None):
    theirs = conflict.current_curated
    context = _context(
        entry,
        form,
        conflict=conflict,
        other_change=conflict.other_change,
        theirs_vs_mine=editing.unified_diff(
            theirs, mine, f"{layers.CURATED_FILE}:{entry.name}"
        )
        if mine is not None
        else "",
    )
    context["theirs_vs_mine_lines"] = editing.Preview(
        [], context["theirs_vs_mine"], {}, None, ""
    ).unified_lines
    return _render(request, context | {"template_body": "conflict"})


@login_required
@permission_required("registry.edit_entry", raise_exception=True)
@require_GET
def entry_edit(request, pk: int):
    """Open the editor on the newest version (a cheap sync first)."""
    synced = sync_registry(Actor.from_request(request), explicit=False)
    entry = get_object_or_404(ModelEntry, pk=pk)
    form = ModelEntryEditForm(entry=entry)
    # A broken registry file: the form opens on the last good mirror, with the error.
    broken = synced.error if synced.broken else ""
    return _render(request, _context(entry, form, write_error=broken))


@login_required
@permission_required("registry.edit_entry", raise_exception=True)
@require_POST
def entry_edit_preview(request, pk: int):
    """Validate and show the diff Confirm would write. Writes nothing."""
    entry = get_object_or_404(ModelEntry, pk=pk)
    form = _bound_form(request, entry)
    if not form.is_valid():
        return _render(request, _context(entry, form))
    preview = editing.preview_edit(entry, form.cleaned_data, form.initial_values)
    try:
        conflict = editing.check_conflict(
            entry, form.cleaned_data["fingerprint"], Actor.from_request(request)
        )
    except layers.RegistryError as exc:  # a broken registry file: nothing to confirm
        return _render(
            request, _context(entry, form, preview=preview, write_error=str(exc))
        )
    if conflict is not None:
        return _conflict_response(request, entry, form, conflict, preview.new_curated)
    return _render_preview(request, entry, form, preview)


def _render_preview(request, entry, form, preview, note: str = ""):
    data = request.POST.copy()
    data["preview_digest"] = preview.digest
    form = ModelEntryEditForm(data, entry=entry)
    form.is_valid()
    return _render(request, _context(entry, form, preview=preview, note=note))


@login_required
@permission_required("registry.edit_entry", raise_exception=True)
@require_POST
def entry_edit_confirm(request, pk: int):
    """Write the previewed change (conflicts and read-only files write nothing)."""
    entry = get_object_or_404(ModelEntry, pk=pk)
    form = _bound_form(request, entry)
    if not form.is_valid():
        return _render(request, _context(entry, form))
    fingerprint = form.cleaned_data["fingerprint"]
    preview = editing.preview_edit(entry, form.cleaned_data, form.initial_values)
    if entry.fingerprint != fingerprint:
        try:
            conflict = editing.check_conflict(
                entry, fingerprint, Actor.from_request(request)
            )
        except layers.RegistryError as exc:
            return _render(
                request, _context(entry, form, preview=preview, write_error=str(exc))
            )
        if conflict is not None:
            return _conflict_response(
                request, entry, form, conflict, preview.new_curated
            )
    if form.cleaned_data.get("preview_digest") != preview.digest:
        return _render_preview(
            request,
            entry,
            form,
            preview,
            note="The form changed since the preview: check this diff and confirm again.",
        )
    if not preview.changed:
        return _render(
            request, _context(entry, form, note="Nothing to save: no field changed.")
        )
    try:
        result = editing.save_edit(
            entry,
            Actor.from_request(request),
            form.cleaned_data,
            fingerprint,
            form.initial_values,
        )
    except writeback.EntryConflict as conflict:
        return _conflict_response(request, entry, form, conflict, preview.new_curated)
    except layers.RegistryError as exc:
        return _render(
            request, _context(entry, form, preview=preview, write_error=str(exc))
        )
    text = f"Saved {entry.name}"
    if not request.htmx:
        messages.success(request, text)
        return redirect(reverse("registry:modelentry_list"))
    saved = result.entry or entry
    trigger = {
        "entryChanged": {"pk": saved.pk},
        "showMessage": {"level": "success", "text": text},
    }
    return _render(
        request,
        {"entry": saved, "saved": result, "saved_text": text, "template_body": "saved"},
        headers={"HX-Trigger": json.dumps(trigger)},
    )
