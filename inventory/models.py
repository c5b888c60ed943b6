"""What the reconcile scan found, disk use per entry, and the trash.

``ScanRun``/``Finding``/``EntryUsage`` are rebuilt by every scan (the newest runs
are kept); ``TrashItem`` is the record of folders moved to the trash (each item also
carries a JSON manifest on disk, so the way back survives the database).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from .choices import FindingKind, ScanStatus, TrashState, UsageState


class ScanRun(models.Model):
    """One walk of the model roots and the findings it produced."""

    started = models.DateTimeField(default=timezone.now, db_index=True)
    finished = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=16, choices=ScanStatus.choices, default=ScanStatus.RUNNING
    )
    job = models.ForeignKey(
        "registry.Job",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    user_name = models.CharField(max_length=150, blank=True)
    roots = models.JSONField(default=list, blank=True)
    missing_roots = models.JSONField(default=list, blank=True)
    ollama_dir = models.CharField(max_length=1000, blank=True)
    files = models.PositiveIntegerField(default=0)
    dirs = models.PositiveIntegerField(default=0)
    total_bytes = models.BigIntegerField(default=0)
    disk_bytes = models.BigIntegerField(default=0)
    elapsed_s = models.FloatField(default=0.0)
    counts = models.JSONField(default=dict, blank=True)  # kind -> findings
    notes = models.JSONField(default=list, blank=True)  # e.g. backend check errors
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started", "-pk"]
        get_latest_by = "started"
        permissions = [("run_scan", "Can run the reconcile scan")]

    def __str__(self) -> str:
        return f"scan #{self.pk} ({self.status})"


class Finding(models.Model):
    """One thing the registry, the disk and the backends disagree about."""

    scan = models.ForeignKey(ScanRun, on_delete=models.CASCADE, related_name="findings")
    kind = models.CharField(max_length=32, choices=FindingKind.choices, db_index=True)
    severity = models.CharField(max_length=8, default="info")
    entry = models.ForeignKey(
        "registry.ModelEntry",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="findings",
    )
    entry_name = models.CharField(max_length=500, blank=True, db_index=True)
    path = models.TextField(blank=True)
    message = models.TextField()
    size_bytes = models.BigIntegerField(null=True, blank=True)
    fixes = models.JSONField(default=list, blank=True)  # FixKind values, best first
    hint = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["kind", "entry_name", "path"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.entry_name or self.path}"

    @property
    def fix(self) -> str:
        return self.fixes[0] if self.fixes else ""


class EntryUsage(models.Model):
    """Disk use of one entry as of the last scan (``entry.usage``)."""

    entry = models.OneToOneField(
        "registry.ModelEntry", on_delete=models.CASCADE, related_name="usage"
    )
    scan = models.ForeignKey(
        ScanRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    state = models.CharField(
        max_length=16, choices=UsageState.choices, default=UsageState.UNKNOWN
    )
    path = models.TextField(blank=True)
    files = models.PositiveIntegerField(default=0)
    # None = unknown (not scanned: outside the roots, Ollama store not readable).
    size_bytes = models.BigIntegerField(null=True, blank=True, db_index=True)
    disk_bytes = models.BigIntegerField(null=True, blank=True)
    owned_bytes = models.BigIntegerField(null=True, blank=True)
    exclusive_bytes = models.BigIntegerField(null=True, blank=True)
    shared_bytes = models.BigIntegerField(default=0)
    shared_with = models.JSONField(default=list, blank=True)
    # SharedFile records (see inventory.usage): what a reclaim plan needs.
    shared = models.JSONField(default=list, blank=True)
    shared_truncated = models.BooleanField(default=False)
    partial_files = models.PositiveIntegerField(default=0)
    linked_from = models.JSONField(default=list, blank=True)
    scanned_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "entry disk use"
        verbose_name_plural = "entry disk use"

    def __str__(self) -> str:
        return f"{self.entry_id}: {self.size_bytes} B"


class TrashItem(models.Model):
    """A folder moved to the trash by a reclaim (restorable until the trash is emptied)."""

    state = models.CharField(
        max_length=16,
        choices=TrashState.choices,
        default=TrashState.IN_TRASH,
        db_index=True,
    )
    entry = models.ForeignKey(
        "registry.ModelEntry",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="trash_items",
    )
    # Every entry whose folder moved with it; the ones we marked deprecated.
    entry_names = models.JSONField(default=list, blank=True)
    deprecated_by_us = models.JSONField(default=list, blank=True)
    original_path = models.TextField()
    item_dir = models.TextField(unique=True)
    trash_path = models.TextField()
    size_bytes = models.BigIntegerField(default=0)
    freed_bytes = models.BigIntegerField(default=0)
    files = models.PositiveIntegerField(default=0)
    batch = models.CharField(max_length=32, blank=True, db_index=True)
    moved_at = models.DateTimeField(default=timezone.now)
    moved_by = models.CharField(max_length=150, blank=True)
    restored_at = models.DateTimeField(null=True, blank=True)
    restored_by = models.CharField(max_length=150, blank=True)
    emptied_at = models.DateTimeField(null=True, blank=True)
    emptied_by = models.CharField(max_length=150, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["-moved_at", "-pk"]
        permissions = [
            ("reclaim_space", "Can plan and execute a reclaim (move folders to trash)"),
            ("restore_trash", "Can restore folders from the trash"),
            ("empty_trash", "Can empty the trash (deletes files for good)"),
        ]

    def __str__(self) -> str:
        return f"{self.original_path} ({self.state})"

    @property
    def label(self) -> str:
        return ", ".join(self.entry_names) or self.original_path
