"""Verify / Lock / Unlock from the Models page drawer (thin: services do the work).

Every action is POST-only, CSRF-protected and permission-checked here; the audit rows
are written by ``registry.services.verify``. htmx requests get partials (the job status, or the
re-rendered drawer slot); plain form posts get a redirect with a message.

When an entry's hash or lock changes (a lock/unlock, or a verify job that has
finished) the response carries ``HX-Trigger: {"entryChanged": {"pk": <pk>}}``; the
drawer slot and the Models table listen for ``entryChanged from:body``.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from .. import layers
from ..audit import Actor
from ..choices import JobStatus
from ..models import Job, ModelEntry
from ..services.verify import (
    EntryNotFound,
    VerifyError,
    request_lock,
    request_verify,
    unlock,
)

PANEL_TEMPLATE = "registry/drawer_verify.html"
JOB_PARTIAL = "registry/drawer_verify.html#verify-job"


def entry_changed(response: HttpResponse, entry: ModelEntry) -> HttpResponse:
    """Tell the page (htmx) that this entry's row and drawer should refresh."""
    response["HX-Trigger"] = json.dumps({"entryChanged": {"pk": entry.pk}})
    return response


def _refuse(request, entry: ModelEntry, message: str, job: Job | None = None):
    """A refusal the operator sees in place (htmx) or as a message (plain POST)."""
    if request.htmx:
        return render(
            request, JOB_PARTIAL, {"entry": entry, "job": job, "refusal": message}
        )
    messages.error(request, message)
    return redirect(job.get_absolute_url() if job else entry.get_absolute_url())


def _job_response(request, entry: ModelEntry, job: Job, started: str):
    job.refresh_from_db()  # inline task runners may have finished it already
    if request.htmx:
        response = render(request, JOB_PARTIAL, {"entry": entry, "job": job})
        return entry_changed(response, entry) if job.is_terminal else response
    if job.status == JobStatus.FAILED:
        messages.error(request, job.error or job.message)
    else:
        messages.info(request, started)
    return redirect(job.get_absolute_url())


def _panel_response(
    request,
    entry: ModelEntry,
    message: str,
    *,
    error: bool = False,
    changed: bool = True,
    job: Job | None = None,
):
    """The re-rendered drawer slot (htmx), or a redirect with the message."""
    entry.refresh_from_db()
    if request.htmx:
        response = render(
            request,
            PANEL_TEMPLATE,
            {"entry": entry, "panel_message": message, "panel_error": error},
        )
        return entry_changed(response, entry) if changed else response
    (messages.error if error else messages.success)(request, message)
    return redirect(job.get_absolute_url() if job else entry.get_absolute_url())


@require_POST
@login_required
@permission_required("registry.verify_entry", raise_exception=True)
def entry_verify(request, pk: int):
    """Queue a verify job for the entry; refuse a second one while it runs."""
    entry = get_object_or_404(ModelEntry, pk=pk)
    result = request_verify(entry, Actor.from_request(request))
    if result.refusal:
        return _refuse(request, entry, result.refusal, result.job)
    return _job_response(request, entry, result.job, f"Verifying {entry.name}…")


@require_POST
@login_required
@permission_required("registry.lock_entry", raise_exception=True)
def entry_lock(request, pk: int):
    """Lock with the expected hash; without a current verify, queue verify-then-lock
    (``verify.request_lock`` decides). htmx gets the re-rendered drawer slot either
    way (it shows the job while it runs)."""
    entry = get_object_or_404(ModelEntry, pk=pk)
    result = request_lock(entry, Actor.from_request(request))
    return _panel_response(
        request,
        entry,
        result.message,
        error=result.error,
        changed=result.changed,
        job=result.job,
    )


@require_POST
@login_required
@permission_required("registry.lock_entry", raise_exception=True)
def entry_unlock(request, pk: int):
    """Unlock (the expected hash is kept)."""
    entry = get_object_or_404(ModelEntry, pk=pk)
    try:
        outcome = unlock(entry.name, Actor.from_request(request))
    except (VerifyError, EntryNotFound, layers.RegistryError) as exc:
        return _panel_response(request, entry, str(exc), error=True)
    return _panel_response(request, entry, outcome.message)


@require_GET
@login_required
@permission_required("registry.view_modelentry", raise_exception=True)
def entry_verify_panel(request, pk: int):
    """The drawer's hash/lock slot alone (re-fetched on ``entryChanged``)."""
    entry = get_object_or_404(ModelEntry, pk=pk)
    return render(request, PANEL_TEMPLATE, {"entry": entry})
