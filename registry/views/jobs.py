"""Job pages: a detail page and the status partial the UI polls with htmx."""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from ..audit import Actor
from ..jobs import request_cancel
from ..models import Job


@require_GET
@login_required
@permission_required("registry.view_job", raise_exception=True)
def job_detail(request, pk: int):
    job = get_object_or_404(Job, pk=pk)
    return render(request, "registry/job_detail.html", {"job": job})


@require_GET
@login_required
@permission_required("registry.view_job", raise_exception=True)
def job_status(request, pk: int):
    """The job status partial; answers 286 (stop polling) once the job has ended."""
    job = get_object_or_404(Job, pk=pk)
    response = render(request, "registry/_job_status.html", {"job": job})
    if job.is_terminal and request.htmx:
        # 286 tells htmx to stop "every Ns" polling; the body still replaces the element.
        stop = HttpResponseStopPolling()
        stop.content = response.content
        if job.entry_id:
            # The job may have changed the entry (hash, lock): rows and drawer refresh.
            stop["HX-Trigger"] = json.dumps({"entryChanged": {"pk": job.entry_id}})
        return stop
    return response


@require_POST
@login_required
@permission_required("registry.view_job", raise_exception=True)
def job_cancel(request, pk: int):
    """Cancel a live job; its kind's spec names the permission (``jobs.request_cancel``)."""
    job = get_object_or_404(Job, pk=pk)
    request_cancel(job, Actor.from_request(request))
    if request.htmx:
        return render(
            request, "registry/_job_status.html", {"job": Job.objects.get(pk=pk)}
        )
    return redirect(job.get_absolute_url())
