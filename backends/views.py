"""Activation views: fetch, ask the activation service, render the status partial.

All state changes are POST (CSRF) and need ``backends.control_backend`` (checked
here, on the server). The rules (one activation at a time, what is refused) live in
``service.request_activation`` / ``request_stop``, shared with the CLI.
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling, trigger_client_event

from registry.audit import Actor
from registry.choices import JobStatus
from registry.models import Job, ModelEntry

from .choices import RequestOutcome
from .models import Activation
from .vllm import process, service

CONTROL = "backends.control_backend"
VIEW = "backends.view_activation"
LOG_TAIL_BYTES = 8 * 1024


def _status_context(request, *, entry=None, job=None, error=""):
    entry_pk = request.GET.get("entry") if entry is None else entry.pk
    if entry is None and entry_pk and str(entry_pk).isdigit():
        entry = ModelEntry.objects.filter(pk=entry_pk).first()
    if job is None and str(request.GET.get("job") or "").isdigit():
        job = Job.objects.filter(
            pk=request.GET["job"], kind__in=service.SLOT_JOB_KINDS
        ).first()
    status = service.status()
    job_error = job.error if job is not None and job.status == JobStatus.FAILED else ""
    return {"status": status, "entry": entry, "job": job, "error": error or job_error}


def _render_status(request, context, *, code: int = 200):
    response = render(request, "backends/_status.html", context, status=code)
    if context.get("error") and request.htmx:
        trigger_client_event(
            response, "showMessage", {"level": "error", "text": context["error"]}
        )
    return response


def _refuse(request, entry, message: str, code: int = 409):
    if request.htmx:
        return _render_status(
            request, _status_context(request, entry=entry, error=message), code=code
        )
    messages.error(request, message)
    return redirect(entry.get_absolute_url() if entry else "registry:modelentry_list")


#: HTTP status of each request outcome (htmx swaps the status partial either way).
OUTCOME_CODES = {
    RequestOutcome.QUEUED: 202,
    RequestOutcome.REFUSED: 422,
    RequestOutcome.BUSY: 409,
}


def _respond(request, entry, answer: service.SlotRequest, *, done_url):
    """Render a request's outcome: the status partial (htmx) or a message + redirect."""
    if not answer.accepted:
        return _refuse(request, entry, answer.message, OUTCOME_CODES[answer.outcome])
    if request.htmx:
        return _render_status(
            request, _status_context(request, entry=entry, job=answer.job), code=202
        )
    messages.info(request, answer.message)
    return redirect(done_url)


@require_POST
@login_required
@permission_required(CONTROL, raise_exception=True)
def activate(request, pk: int):
    """Queue the activation of one entry; refuse at once when it cannot work."""
    entry = get_object_or_404(ModelEntry, pk=pk)
    answer = service.request_activation(entry, Actor.from_request(request))
    return _respond(request, entry, answer, done_url=entry.get_absolute_url())


@require_POST
@login_required
@permission_required(CONTROL, raise_exception=True)
def stop(request):
    """Queue a stop of the served model (cancels a start in progress)."""
    entry = None
    if str(request.POST.get("entry") or "").isdigit():
        entry = ModelEntry.objects.filter(pk=request.POST["entry"]).first()
    answer = service.request_stop(Actor.from_request(request))
    done_url = entry.get_absolute_url() if entry else "backends:history"
    return _respond(request, entry, answer, done_url=done_url)


@require_GET
@login_required
@permission_required(VIEW, raise_exception=True)
def status(request):
    """The status partial. Fast polling (1 s) while something is in flight; once
    terminal it answers 286 so htmx stops that poll, and the swapped-in element
    watches cheaply (every 5 s, 204 while nothing changed) for other users' actions.
    """
    context = _status_context(request)
    st = context["status"]
    if request.GET.get("since") and request.GET["since"] == st.token and st.terminal:
        return HttpResponse(status=204)
    response = _render_status(request, context)
    if st.terminal and request.htmx and not request.GET.get("since"):
        stop_polling = HttpResponseStopPolling()
        stop_polling.content = response.content
        for key, value in response.items():
            stop_polling[key] = value
        return stop_polling
    return response


@require_GET
@login_required
@permission_required(VIEW, raise_exception=True)
def slot_watch(request):
    """Cheap watch of the vLLM slot for every open page (Models, Dashboard).

    ``?since=<token>``: 204 while the slot looks the same (a few indexed queries,
    no body). When it changed, the new banner comes back with
    ``HX-Trigger: slotChanged`` so the Models table, the drawer and the dashboard card
    refresh themselves: every browser sees Activating… then Active without a reload.
    """
    st = service.status()
    since = request.GET.get("since", "")
    if since and since == st.token:
        return HttpResponse(status=204)
    response = render(request, "backends/_slot_watch.html", {"slot": st})
    if since:
        trigger_client_event(
            response,
            "slotChanged",
            {"state": st.state, "name": st.logical_name, "user": st.user_name},
        )
    return response


@require_GET
@login_required
@permission_required(VIEW, raise_exception=True)
def log_tail(request, pk: int):
    """The end of one activation's own log file (local mode)."""
    act = get_object_or_404(Activation, pk=pk)
    text, note = "", ""
    path = Path(act.log_path) if act.log_path else None
    log_root = Path(settings.IMAGEWORKS_LOG_DIR).resolve()
    if path is None:
        note = "No log file was recorded for this activation."
    elif act.launched_elsewhere:
        note = f"The log is on host {act.host_name}: {act.log_path}"
    elif not path.is_absolute() or log_root not in path.resolve().parents:
        # Proxy mode: the log lives on the admin service's host.
        note = f"The log is on the vLLM host: {act.log_path}"
    else:
        text = process.log_tail(path, LOG_TAIL_BYTES)
        note = "" if text else "The log file is empty or gone."
    return render(
        request,
        "backends/_log_tail.html",
        {"activation": act, "text": text, "note": note},
    )


@require_GET
@login_required
@permission_required(VIEW, raise_exception=True)
def history(request):
    """Every activation, newest first: who, when, command, pid, port, time to ready, exit."""
    page = Paginator(Activation.objects.select_related("entry"), 50).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "backends/activation_list.html",
        {"page": page, "status": service.status()},
    )
