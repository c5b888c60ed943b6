"""Revert a recorded curated change: preview (GET, writes nothing), confirm (POST).

Thin: ``registry.services.revert`` computes the preview and writes the revert (with
the editor's fingerprint guard and one audit row).
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from .. import layers
from ..audit import Actor
from ..models import EntryChange, ModelEntry
from ..services import revert, writeback
from ..services.sync import sync_registry
from .entries import with_diff_lines


@login_required
@permission_required("registry.edit_entry", raise_exception=True)
@require_http_methods(["GET", "POST"])
def entry_revert(request, pk: int, change_pk: int):
    entry = get_object_or_404(ModelEntry, pk=pk)
    change = get_object_or_404(EntryChange, pk=change_pk)
    actor = Actor.from_request(request)
    if request.method == "GET":
        sync_registry(actor, explicit=False)  # preview the newest version
        entry.refresh_from_db()
    context = {"entry": entry, "change": with_diff_lines([change])[0]}
    try:
        if request.method == "POST":
            result = revert.save_revert(
                entry,
                change,
                actor,
                request.POST.get("fingerprint", ""),
                request.POST.get("preview_digest", ""),
            )
            messages.success(request, result.action.message)
            response = redirect(entry.get_absolute_url())
            response["HX-Trigger"] = json.dumps({"entryChanged": {"pk": entry.pk}})
            return response
        context["revert"] = revert.preview_revert(entry, change)
    except (revert.RevertRefused, writeback.EntryConflict, layers.RegistryError) as exc:
        entry.refresh_from_db()
        context["error"] = str(exc)
        try:
            context["revert"] = revert.preview_revert(entry, change)
        except revert.RevertRefused:
            pass
        return render(request, "registry/revert.html", context, status=409)
    return render(request, "registry/revert.html", context)
