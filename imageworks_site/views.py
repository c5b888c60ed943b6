"""The site's own pages: the dashboard (home) and the login page."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET

from registry.models import ActionLog, ModelEntry


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True


@require_GET
@login_required
def dashboard(request):
    entries = ModelEntry.objects.filter(testing=False, deprecated=False)
    context = {
        "entry_count": entries.count(),
        "locked_count": entries.filter(locked=True).count(),
        "recent_actions": ActionLog.objects.order_by("-time", "-pk")[:10],
    }
    return render(request, "dashboard.html", context)
