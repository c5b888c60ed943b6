"""The site's own pages: the dashboard (home), the login page, the favicon
and the live-panel poll (``/live/``)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.http import FileResponse, Http404, HttpResponseNotModified, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.http import require_GET

from registry.models import ActionLog, ModelEntry

from . import live as live_state


class LoginView(auth_views.LoginView):
    template_name = "registration/login.html"
    redirect_authenticated_user = True
    # Django's FormView treats PUT like POST; the login form answers GET and POST only.
    http_method_names = ["get", "post", "head", "options"]


@require_GET
@login_required
def dashboard(request):
    # A signed-in user without a role sees neither counts nor the action log
    # (the dashboard needs only a login; the data needs the view permissions).
    context = {"entry_count": 0, "locked_count": 0, "recent_actions": []}
    if request.user.has_perm("registry.view_modelentry"):
        entries = ModelEntry.objects.filter(testing=False, deprecated=False)
        context["entry_count"] = entries.count()
        context["locked_count"] = entries.filter(locked=True).count()
    if request.user.has_perm("registry.view_actionlog"):
        context["recent_actions"] = ActionLog.objects.order_by("-time", "-pk")[:10]
    return render(request, "dashboard.html", context)


@require_GET
@cache_control(max_age=86400, public=True)
def favicon(request):
    """``/favicon.ico``: browsers and non-HTML pages (admin, JSON) ask for it at the root."""
    path = finders.find("imageworks/favicon.ico")
    if not path:
        raise Http404("favicon missing")
    return FileResponse(open(path, "rb"), content_type="image/x-icon")


@require_GET
@login_required
@never_cache
def live(request):
    """``/live/``: what changed since the page's token (``imageworks_site.live``).

    ``If-None-Match: "<token>"`` (or ``?since=<token>``): 304 when nothing moved;
    otherwise 200 ``{"token", "events"}`` with the new ETag. Without a token the
    answer is the baseline (no events).
    """
    current = live_state.token(live_state.parts())
    etag = f'"{current}"'
    sent = request.headers.get("If-None-Match", "").strip()
    since = sent.strip('"').removeprefix("W/").strip('"') or request.GET.get(
        "since", ""
    )
    if since == current:
        response = HttpResponseNotModified()
        response["ETag"] = etag
        return response
    events = live_state.changed_events(since, current) if since else []
    response = JsonResponse({"token": current, "events": events})
    response["ETag"] = etag
    return response
