from django.urls import path

from . import views

app_name = "backends"

urlpatterns = [
    path("vllm/activate/<int:pk>/", views.activate, name="activate"),
    path("vllm/stop/", views.stop, name="stop"),
    path("vllm/status/", views.status, name="status"),
    path("vllm/slot/", views.slot_watch, name="slot_watch"),
    path("vllm/activations/", views.history, name="history"),
    path("vllm/activations/<int:pk>/log/", views.log_tail, name="log_tail"),
    path("vllm/preflight/<int:pk>/", views.preflight, name="preflight"),
    path("vllm/fit/<int:pk>/", views.fit, name="fit"),
    path(
        "vllm/activate/<int:pk>/checks/",
        views.activate_checks,
        name="activate_checks",
    ),
    path("vllm/stop/checks/", views.stop_checks, name="stop_checks"),
    path("gpus/", views.gpus, name="gpus"),
]
