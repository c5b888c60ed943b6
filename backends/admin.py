from django.contrib import admin

from registry.admin import ReadOnlyAdmin

from .models import Activation, BackendEndpoint, HealthTransition


@admin.register(Activation)
class ActivationAdmin(ReadOnlyAdmin):
    list_display = [
        "logical_name",
        "state",
        "mode",
        "host_name",
        "port",
        "pid",
        "user_name",
        "requested_at",
        "time_to_ready_s",
    ]
    list_filter = ["state", "mode", "host_name"]


@admin.register(BackendEndpoint)
class BackendEndpointAdmin(ReadOnlyAdmin):
    list_display = [
        "label",
        "kind",
        "url",
        "status",
        "since",
        "last_checked",
        "latency_ms",
    ]


@admin.register(HealthTransition)
class HealthTransitionAdmin(ReadOnlyAdmin):
    list_display = ["endpoint", "time", "old_status", "new_status", "reason"]
