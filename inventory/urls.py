"""Mounted at ``models/`` (namespace ``inventory``): pages under the Models page."""

from django.urls import path

from .views import reclaim, report, trash

app_name = "inventory"

urlpatterns = [
    path("reconcile/", report.ReportView.as_view(), name="report"),
    path("reconcile/scan/", report.scan_start, name="scan_start"),
    path("reconcile/scan/status/", report.scan_status, name="scan_status"),
    path("reconcile/<int:pk>/fix/", report.finding_fix, name="finding_fix"),
    path(
        "reconcile/deprecate/<int:pk>/",
        report.mark_deprecated,
        name="mark_deprecated",
    ),
    path("reclaim/", reclaim.reclaim_page, name="reclaim"),
    path("reclaim/preview/", reclaim.reclaim_preview, name="reclaim_preview"),
    path("reclaim/execute/", reclaim.reclaim_execute, name="reclaim_execute"),
    path("trash/", trash.trash_page, name="trash"),
    path("trash/<int:pk>/restore/", trash.trash_restore, name="trash_restore"),
    path("trash/empty/", trash.trash_empty, name="trash_empty"),
]
