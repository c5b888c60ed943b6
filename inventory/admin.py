"""Read-only admin views (scans are rebuilt by the scanner; the trash is changed
only through the site's audited restore / empty actions)."""

from django.contrib import admin

from .models import EntryUsage, Finding, ScanRun, TrashItem


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ScanRun)
class ScanRunAdmin(ReadOnlyAdmin):
    list_display = ["pk", "started", "status", "files", "total_bytes", "elapsed_s"]


@admin.register(Finding)
class FindingAdmin(ReadOnlyAdmin):
    list_display = ["kind", "entry_name", "path", "size_bytes", "scan"]
    list_filter = ["kind", "severity"]
    search_fields = ["entry_name", "path", "message"]


@admin.register(EntryUsage)
class EntryUsageAdmin(ReadOnlyAdmin):
    list_display = ["entry", "state", "size_bytes", "owned_bytes", "shared_bytes"]
    list_filter = ["state"]


@admin.register(TrashItem)
class TrashItemAdmin(ReadOnlyAdmin):
    list_display = ["original_path", "state", "size_bytes", "moved_at", "moved_by"]
    list_filter = ["state"]
