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
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from .. import layers
from ..audit import Actor
from ..choices import JobStatus
from ..jobs import JobConflict, enqueue
from ..models import Job, ModelEntry
from ..services.verify import (
    NOT_APPLICABLE_MESSAGE,
    EntryNotFound,
    VerifyError,
    lock,
    needs_verify_before_lock,
    unlock,
)

PANEL_TEMPLATE = "registry/drawer_verify.html"
JOB_PARTIAL = "registry/drawer_verify.html#verify-job"


def _require(request, *perms: str) -> None:
    if not all(request.user.has_perm(p) for p in perms):
        raise PermissionDenied("Your role may not do that.")


def entry_changed(response: HttpResponse, entry: ModelEntry) -> HttpResponse:
    """Tell the page (htmx) that this entry's row and drawer should refresh."""
    response["HX-Trigger"] = json.dumps({"entryChanged": {"pk": entry.pk}})
    return response


def _live_job(entry: ModelEntry) -> Job | None:
    return (
        Job.objects.filter(
            kind="verify",
            entry_name=entry.name,
            status__in=[JobStatus.QUEUED, JobStatus.RUNNING],
        )
        .order_by("-created")
        .first()
    )


def _busy_message(job: Job) -> str:
    who = f" by {job.user_name}" if job.user_name else ""
    return f"A verify job is already running for {job.entry_name}{who}."


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
def entry_verify(request, pk: int):
    """Queue a verify job for the entry; refuse a second one while it runs."""
    _require(request, "registry.verify_entry")
    entry = get_object_or_404(ModelEntry, pk=pk)
    if not entry.has_local_files:
        return _refuse(request, entry, NOT_APPLICABLE_MESSAGE)
    try:
        job = enqueue(
            "verify",
            "registry.services.verify.verify_job",
            actor=Actor.from_request(request),
            entry=entry,
            message=f"Queued: verify {entry.name}",
        )
    except JobConflict as exc:
        existing = exc.existing
        text = _busy_message(existing) if existing else str(exc)
        return _refuse(request, entry, text, existing)
    return _job_response(request, entry, job, f"Verifying {entry.name}…")


@require_POST
@login_required
def entry_lock(request, pk: int):
    """Lock with the expected hash; without a current verify, queue verify-then-lock.

    htmx gets the re-rendered drawer slot either way (it shows the job while it runs).
    """
    _require(request, "registry.lock_entry")
    entry = get_object_or_404(ModelEntry, pk=pk)
    live = _live_job(entry)
    if live is not None:
        return _panel_response(
            request, entry, _busy_message(live), error=True, changed=False, job=live
        )
    if entry.locked and entry.expected_sha256:
        return _panel_response(
            request, entry, f"{entry.name} is already locked.", changed=False
        )
    if not entry.has_local_files:
        return _panel_response(
            request,
            entry,
            "Lock does not apply to Ollama tags (no local files)",
            error=True,
            changed=False,
        )
    actor = Actor.from_request(request)
    if needs_verify_before_lock(entry):
        _require(request, "registry.verify_entry")
        try:
            job = enqueue(
                "verify",
                "registry.services.verify.lock_job",
                actor=actor,
                entry=entry,
                params={"set_expected": True},
                message=f"Queued: verify, then lock {entry.name}",
            )
        except JobConflict as exc:
            existing = exc.existing
            text = _busy_message(existing) if existing else str(exc)
            return _panel_response(
                request, entry, text, error=True, changed=False, job=existing
            )
        job.refresh_from_db()  # inline task runners may have finished it already
        if job.status == JobStatus.FAILED:
            return _panel_response(
                request, entry, job.error or job.message, error=True, job=job
            )
        done = job.is_terminal
        text = (
            job.message
            if done
            else f"Verifying {entry.name}; it is locked when the hash is recorded."
        )
        return _panel_response(request, entry, text, changed=done, job=job)
    try:
        outcome = lock(entry.name, actor, set_expected=True)
    except (VerifyError, EntryNotFound, layers.RegistryError) as exc:
        return _panel_response(request, entry, str(exc), error=True)
    return _panel_response(request, entry, outcome.message)


@require_POST
@login_required
def entry_unlock(request, pk: int):
    """Unlock (the expected hash is kept)."""
    _require(request, "registry.lock_entry")
    entry = get_object_or_404(ModelEntry, pk=pk)
    try:
        outcome = unlock(entry.name, Actor.from_request(request))
    except (VerifyError, EntryNotFound, layers.RegistryError) as exc:
        return _panel_response(request, entry, str(exc), error=True)
    return _panel_response(request, entry, outcome.message)


@require_GET
@login_required
def entry_verify_panel(request, pk: int):
    """The drawer's hash/lock slot alone (re-fetched on ``entryChanged``)."""
    _require(request, "registry.view_modelentry")
    entry = get_object_or_404(ModelEntry, pk=pk)
    return render(request, PANEL_TEMPLATE, {"entry": entry})
