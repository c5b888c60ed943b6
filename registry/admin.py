"""Django admin for superusers. Registry content is read-only here: the JSON files
are the source of truth, so edits go through the site's editor (file first)."""

from django.contrib import admin

from .models import ActionLog, EntryChange, Job, LayerFile, ModelEntry


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ModelEntry)
class ModelEntryAdmin(ReadOnlyAdmin):
    list_display = [
        "name",
        "display_name",
        "backend",
        "locked",
        "testing",
        "deprecated",
        "provenance",
    ]
    list_filter = ["backend", "locked", "testing", "deprecated", "provenance"]
    search_fields = ["name", "display_name", "search_text"]
    list_per_page = 50


@admin.register(ActionLog)
class ActionLogAdmin(ReadOnlyAdmin):
    list_display = [
        "time",
        "user_name",
        "source",
        "action",
        "entry_name",
        "outcome",
        "duration_ms",
    ]
    list_filter = ["action", "outcome", "source"]
    search_fields = ["entry_name", "user_name", "message"]
    date_hierarchy = "time"


@admin.register(EntryChange)
class EntryChangeAdmin(ReadOnlyAdmin):
    list_display = ["time", "entry_name", "layer", "kind", "user_name"]
    list_filter = ["layer", "kind"]
    search_fields = ["entry_name"]


@admin.register(Job)
class JobAdmin(ReadOnlyAdmin):
    list_display = [
        "pk",
        "kind",
        "entry_name",
        "status",
        "progress",
        "user_name",
        "created",
        "finished",
    ]
    list_filter = ["kind", "status"]


@admin.register(LayerFile)
class LayerFileAdmin(ReadOnlyAdmin):
    list_display = ["layer", "path", "entry_count", "synced_at"]
