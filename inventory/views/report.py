"""The reconcile report (``/models/reconcile/``), the scan button and fix previews.

Thin: the report reads the last scan's findings (django-tables2 + django-filter,
htmx partial swaps with real hrefs); the scan runs as a background job; fixes are
previewed by ``inventory.services.fixes`` and the only write here, "mark
deprecated", goes through the registry's ``change_entry``.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin

from imageworks_site.permissions import RolePermissionRequiredMixin
from registry.audit import Actor
from registry.choices import JobStatus
from registry.models import Job, ModelEntry

from .. import sources, tasks
from ..choices import FindingKind
from ..filtersets import FindingFilterSet
from ..forms import DeprecateForm
from ..models import Finding
from ..services import fixes
from ..services.scanning import latest_scan
from ..tables import FindingTable

PAGE_SIZE = 50


def live_scan_job() -> Job | None:
    return (
        Job.objects.filter(kind=tasks.JOB_KIND, status__in=JobStatus.live())
        .order_by("-created")
        .first()
    )


class ReportView(RolePermissionRequiredMixin, SingleTableMixin, FilterView):
    permission_required = "inventory.view_finding"
    filterset_class = FindingFilterSet
    table_class = FindingTable
    template_name = "inventory/report.html"
    table_pagination = {"per_page": PAGE_SIZE}

    def get_template_names(self):
        if self.request.htmx and not self.request.htmx.boosted:
            return ["inventory/report.html#table"]
        return [self.template_name]

    def get_queryset(self):
        self.scan = latest_scan()
        if self.scan is None:
            return Finding.objects.none()
        return Finding.objects.filter(scan=self.scan).defer("details")

    def get_table(self, **kwargs):
        table = super().get_table(**kwargs)
        table.base_url = reverse("inventory:report")
        return table

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        scan = self.scan
        counts = dict(scan.counts) if scan else {}
        context.update(
            scan=scan,
            job=live_scan_job(),
            kind_counts=[
                (kind, label, counts.get(kind.value, 0))
                for kind, label in ((k, k.label) for k in FindingKind)
                if counts.get(kind.value)
            ],
            roots=sources.model_roots(),
            list_url=reverse("inventory:report"),
        )
        return context


@login_required
@permission_required("inventory.run_scan", raise_exception=True)
@require_POST
def scan_start(request):
    """Queue a scan (or show the one already running)."""
    job = tasks.scan_or_running(Actor.from_request(request))
    if request.htmx:
        return render(request, "inventory/_scan_job.html", {"job": job})
    messages.info(request, "Scan queued: the report updates when it has finished.")
    return redirect("inventory:report")


@login_required
@permission_required("inventory.view_finding", raise_exception=True)
@require_GET
def scan_status(request):
    """The scan job's status (polled by the report while a scan runs)."""
    job = live_scan_job() or Job.objects.filter(kind=tasks.JOB_KIND).first()
    return render(request, "inventory/_scan_job.html", {"job": job})


@login_required
@permission_required("inventory.view_finding", raise_exception=True)
@require_GET
def finding_fix(request, pk: int):
    """What each fix of a finding would do (modal body for htmx, a page otherwise)."""
    finding = get_object_or_404(Finding, pk=pk)
    context = {"finding": finding, "options": fixes.fix_options(finding, request.user)}
    template = "inventory/_fix.html" if request.htmx else "inventory/fix_page.html"
    return render(request, template, context)


@login_required
@permission_required("registry.edit_entry", raise_exception=True)
@require_POST
def mark_deprecated(request, pk: int):
    """Set the entry's curated ``deprecated`` flag (file first, audited)."""
    entry = get_object_or_404(ModelEntry, pk=pk)
    form = DeprecateForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The request was not understood; open the fix again.")
        return redirect("inventory:report")
    try:
        fixes.mark_deprecated(
            entry, Actor.from_request(request), form.cleaned_data["fingerprint"]
        )
    except sources.EditRefused as exc:
        messages.error(request, f"Not marked deprecated: {exc}")
    else:
        messages.success(request, f"{entry.name} is marked deprecated.")
    return redirect(_safe_next(request, reverse("inventory:report")))


def _safe_next(request, default: str) -> str:
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default
