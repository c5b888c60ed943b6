from django.apps import AppConfig


class InventoryConfig(AppConfig):
    """Registry, disk and backends compared: reconcile report, disk use, reclaim, trash."""

    name = "inventory"
    verbose_name = "Inventory (disk and reconcile)"

    def ready(self) -> None:
        from registry import jobs

        from .tasks import JOB_SPEC

        jobs.register(JOB_SPEC)
