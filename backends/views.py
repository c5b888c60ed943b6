"""Activation views: fetch, ask the activation service, render the status partial.

All state changes are POST (CSRF) and need ``backends.control_backend`` (checked
here, on the server). The rules (one activation at a time, preflight and its
override, in-flight requests: what is refused) live in
``service.request_activation`` / ``request_stop``, shared with the CLI and the API.
The read-only partials (preflight report, fit, GPU panel, the dialogs' checks) are
GETs that call one service function each.
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
from django_htmx.http import (
    HttpResponseStopPolling,
    reswap,
    retarget,
    trigger_client_event,
)

from registry.audit import Actor
from registry.choices import JobStatus
from registry.models import Job, ModelEntry

from .choices import RequestOutcome
from .forms import DEFAULT_DRAIN_S, SlotOptionsForm
from .models import Activation
from .vllm import process, service

CONTROL = "backends.control_backend"
VIEW = "backends.view_activation"
VIEW_HEALTH = "backends.view_backendendpoint"
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
    """Render a request's outcome: the status partial (htmx) or a message + redirect.

    A preflight refusal shows its report in the drawer's preflight box (htmx), so
    the operator sees every failed check and can override it from the dialog.
    """
    if answer.preflight is not None and entry is not None and request.htmx:
        response = render(
            request,
            "backends/_preflight.html",
            {"entry": entry, "report": answer.preflight, "refused": True},
        )
        retarget(response, f"#preflight-{entry.pk}")
        reswap(response, "innerHTML")
        trigger_client_event(
            response, "showMessage", {"level": "error", "text": answer.message}
        )
        return response
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
    """Queue the activation of one entry; refuse at once when it cannot work.

    The dialog's choices (override preflight, wait for or cut the replaced model's
    requests, reason) come as :class:`~backends.forms.SlotOptionsForm` fields.
    """
    entry = get_object_or_404(ModelEntry, pk=pk)
    form = SlotOptionsForm(request.POST)
    if not form.is_valid():
        return _refuse(request, entry, form.first_error(), 422)
    answer = service.request_activation(
        entry, Actor.from_request(request), options=form.options()
    )
    return _respond(request, entry, answer, done_url=entry.get_absolute_url())


@require_POST
@login_required
@permission_required(CONTROL, raise_exception=True)
def stop(request):
    """Queue a stop of the served model (cancels a start in progress)."""
    entry = None
    if str(request.POST.get("entry") or "").isdigit():
        entry = ModelEntry.objects.filter(pk=request.POST["entry"]).first()
    form = SlotOptionsForm(request.POST)
    if not form.is_valid():
        return _refuse(request, entry, form.first_error(), 422)
    answer = service.request_stop(Actor.from_request(request), options=form.options())
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


@require_GET
@login_required
@permission_required(VIEW, raise_exception=True)
def preflight(request, pk: int):
    """ "Check before activating": every preflight check, one line each with its fix."""
    entry = get_object_or_404(ModelEntry, pk=pk)
    report = service.run_preflight(entry)
    return render(
        request, "backends/_preflight.html", {"entry": entry, "report": report}
    )


@require_GET
@login_required
@permission_required(VIEW, raise_exception=True)
def fit(request, pk: int):
    """The drawer's GPU memory line: measured first, then the estimate, per launch."""
    entry = get_object_or_404(ModelEntry, pk=pk)
    return render(
        request,
        "backends/_fit.html",
        {"entry": entry, "view": service.fit_view(entry)},
    )


@require_GET
@login_required
@permission_required(CONTROL, raise_exception=True)
def activate_checks(request, pk: int):
    """What the Activate dialog asks about: preflight (override when failed) and,
    when it replaces a running model, that model's in-flight requests."""
    entry = get_object_or_404(ModelEntry, pk=pk)
    running = service.in_flight_view(replacing=entry.name)
    return render(
        request,
        "backends/_activate_checks.html",
        {
            "entry": entry,
            "report": service.run_preflight(entry),
            "replaces": running.live,
            "reading": running.reading,
            "drain_default": DEFAULT_DRAIN_S,
        },
    )


@require_GET
@login_required
@permission_required(CONTROL, raise_exception=True)
def stop_checks(request):
    """What the Stop dialog asks about: the running model's in-flight requests."""
    running = service.in_flight_view()
    return render(
        request,
        "backends/_stop_checks.html",
        {
            "live": running.live,
            "reading": running.reading,
            "drain_default": DEFAULT_DRAIN_S,
        },
    )


@require_GET
@login_required
@permission_required(VIEW_HEALTH, raise_exception=True)
def gpus(request):
    """The GPU panel (Backends page) or, with ``?card=1``, the Models page's card."""
    return render(
        request,
        "backends/_gpus.html",
        {"panel": service.gpu_panel(), "card": request.GET.get("card") == "1"},
    )
