"""Placeholder views; the Models page work replaces this module."""

from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import get_object_or_404, render
from django.views.generic import ListView

from imageworks_site.permissions import RolePermissionRequiredMixin

from .models import ActionLog, ModelEntry


class ModelEntryListView(RolePermissionRequiredMixin, ListView):
    permission_required = "registry.view_modelentry"
    model = ModelEntry
    template_name = "registry/modelentry_list.html"


@login_required
@permission_required("registry.view_modelentry", raise_exception=True)
def modelentry_detail(request, pk):
    entry = get_object_or_404(ModelEntry, pk=pk)
    return render(request, "registry/modelentry_list.html", {"object_list": [entry]})


class ActionLogListView(RolePermissionRequiredMixin, ListView):
    permission_required = "registry.view_actionlog"
    model = ActionLog
    template_name = "registry/actionlog_list.html"
