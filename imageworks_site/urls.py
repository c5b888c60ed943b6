from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from api.api import api
from api.views import loader_root

from . import views

urlpatterns = [
    # GET / is the dashboard for browsers and the loader protocol's root for its
    # clients (content negotiation on Accept: api.views.loader_root).
    path("", loader_root(views.dashboard), name="dashboard"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("live/", views.live, name="live"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("registry.urls")),
    path("models/", include("inventory.urls", namespace="inventory")),
    path("backends/", include("backends.urls")),
    path("health/", include("backends.health.urls")),
    path("", include("api.urls")),
    # The loader protocol (/v1/...) and the REST API (/api/v1/...).
    path("", api.urls),
]

handler403 = "imageworks_site.errors.permission_denied"
handler404 = "imageworks_site.errors.not_found"
handler500 = "imageworks_site.errors.server_error"
