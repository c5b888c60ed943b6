from django.apps import AppConfig


class InventoryConfig(AppConfig):
    """Registry, disk and backends compared: reconcile report, disk use, reclaim, trash."""

    name = "inventory"
    verbose_name = "Inventory (disk and reconcile)"

    def ready(self) -> None:
        from registry import jobs
        from registry.choices import JobKind

        # Named, not imported (inventory.tasks imports the scanner).
        jobs.register(
            jobs.JobSpec(
                JobKind.RECONCILE_SCAN,
                jobs.Lazy("inventory.tasks.scan_job"),
                "inventory.run_scan",
                background=True,
            )
        )
