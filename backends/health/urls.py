"""Health URLs, included by the site at ``/health/`` with namespace "health"."""

from django.urls import path

from . import views

app_name = "health"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("status.json", views.status_json, name="status_json"),
    path("history/", views.history, name="history"),
    path("active-model/", views.active_model, name="active_model"),
    path("check/", views.check_now, name="check_all"),
    path("<str:kind>/card/", views.card, name="card"),
    path("<str:kind>/check/", views.check_now, name="check"),
]
