"""Database mirror of the JSON registry layers, plus what files cannot hold.

The JSON layer files stay the source of truth for registry content. ``ModelEntry``
rows are rebuilt from them by ``registry.services.sync``; ``EntryChange``, ``ActionLog`` and
``Job`` are the site's own records (history, audit, background work).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from . import layers
from .choices import (
    Action,
    ChangeKind,
    JobKind,
    JobStatus,
    Layer,
    Outcome,
    Provenance,
    Source,
)
from .fields import OrderedJSONField


class ModelEntry(models.Model):
    """One merged registry entry (curated over discovered), denormalised for the table."""

    name = models.CharField(max_length=500, unique=True)
    display_name = models.CharField(max_length=500, blank=True, db_index=True)
    backend = models.CharField(max_length=50, db_index=True)
    roles = models.JSONField(default=list, blank=True)
    # "|caption|keywords|": lets every database filter roles with a LIKE.
    roles_key = models.CharField(max_length=2000, blank=True, db_index=True)
    capabilities = OrderedJSONField(default=dict, blank=True)
    cap_text = models.BooleanField(default=False)
    cap_vision = models.BooleanField(default=False, db_index=True)
    cap_embedding = models.BooleanField(default=False, db_index=True)
    cap_audio = models.BooleanField(default=False, db_index=True)
    cap_thinking = models.BooleanField(default=False, db_index=True)
    cap_tools = models.BooleanField(default=False, db_index=True)
    # "None"/"none" in the files is stored here as "" (unset).
    served_model_id = models.CharField(max_length=500, blank=True)
    aliases = models.JSONField(default=list, blank=True)
    # Lower-cased name, display name and aliases, one per line (search prefilter).
    search_text = models.TextField(blank=True)
    backend_config = OrderedJSONField(default=dict, blank=True)
    download_path = models.CharField(max_length=2000, blank=True)
    download_size_bytes = models.BigIntegerField(null=True, blank=True)
    aggregate_sha256 = models.CharField(max_length=64, blank=True)
    locked = models.BooleanField(default=False, db_index=True)
    expected_sha256 = models.CharField(max_length=64, blank=True)
    last_verified = models.CharField(max_length=64, blank=True)
    last_verified_at = models.DateTimeField(null=True, blank=True)
    last_verified_by = models.CharField(max_length=150, blank=True)
    deprecated = models.BooleanField(default=False, db_index=True)
    testing = models.BooleanField(default=False, db_index=True)
    # None = unknown (for Ollama: until the health check has asked the server).
    installed = models.BooleanField(null=True, blank=True, db_index=True)
    in_curated = models.BooleanField(default=False)
    in_discovered = models.BooleanField(default=False)
    provenance = models.CharField(
        max_length=16, choices=Provenance.choices, db_index=True
    )
    # Top-level key -> "curated" | "discovered" | "both" (where the merged value comes from).
    field_sources = models.JSONField(default=dict, blank=True)
    curated_raw = OrderedJSONField(null=True, blank=True)
    discovered_raw = OrderedJSONField(null=True, blank=True)
    # sha256 over (curated_raw, discovered_raw): the optimistic-concurrency token.
    fingerprint = models.CharField(max_length=64)
    version = models.PositiveIntegerField(default=1)
    created = models.DateTimeField(auto_now_add=True)
    last_updated = models.DateTimeField(auto_now=True)
    synced_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        verbose_name = "model entry"
        verbose_name_plural = "model entries"
        permissions = [
            ("verify_entry", "Can verify model file hashes"),
            ("lock_entry", "Can lock and unlock model versions"),
            ("edit_entry", "Can edit registry entries"),
            ("import_entry", "Can import discovered entries"),
            ("sync_registry", "Can reload the registry from disk"),
        ]
        indexes = [
            models.Index(
                fields=["testing", "deprecated", "name"], name="entry_visible_name"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("registry:modelentry_detail", args=[self.pk])

    @property
    def merged(self) -> dict:
        """The entry as every tool sees it: curated over discovered (the original's
        merge rule), derived from the two raw layers rather than stored a third time.
        A new dict on each access; change the raw layers, not this."""
        return layers.merged_view(self.curated_raw, self.discovered_raw)

    @property
    def hash_snippet(self) -> str:
        return self.aggregate_sha256[:12]

    @property
    def capability_flags(self) -> list[str]:
        return [
            cap
            for cap in ("vision", "embedding", "audio", "thinking", "tools")
            if getattr(self, f"cap_{cap}")
        ]

    @property
    def model_dir(self) -> str:
        """The directory holding the model files (model_path, else download_path)."""
        path = (self.backend_config or {}).get("model_path") or self.download_path or ""
        return str(path)

    @property
    def has_local_files(self) -> bool:
        path = self.model_dir
        return bool(path) and not path.startswith("ollama:")


class RegistryVersion(models.Model):
    """One row that changes with every change to the ``ModelEntry`` mirror.

    Sync and write-back bump it in the same transaction as their row changes
    (``registry.version.bump``), so reading it (one primary-key lookup) tells every
    cache keyed on it whether the mirror moved, without scanning the big table.
    ``stamp`` is random per bump: a bump that was rolled back is never seen again.
    ``listing_stamp`` moves only when rows come or go or their names, search text,
    backend or roles change: what the search index and the filter choices hold.
    """

    counter = models.BigIntegerField(default=0)
    stamp = models.CharField(max_length=32)
    listing_stamp = models.CharField(max_length=32)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "registry version"

    def __str__(self) -> str:
        return f"{self.counter}-{self.stamp}"


class LayerFile(models.Model):
    """What sync last saw of one registry file: the cheap "did anything change?" check."""

    layer = models.CharField(max_length=16, unique=True)
    path = models.TextField()
    exists = models.BooleanField(default=False)
    mtime_ns = models.BigIntegerField(null=True, blank=True)
    size = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    entry_count = models.PositiveIntegerField(default=0)
    # Entries skipped as unreadable: [{"index", "name", "reason"}].
    problems = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["layer"]
        verbose_name = "layer file"

    def __str__(self) -> str:
        return f"{self.layer}: {self.path}"


class Job(models.Model):
    """A unit of background work (verify, activate, sync...) with progress for the UI.

    django-q2 only transports the work; this row is what users see and poll.
    """

    kind = models.CharField(max_length=32, choices=JobKind.choices, db_index=True)
    status = models.CharField(
        max_length=16,
        choices=JobStatus.choices,
        default=JobStatus.QUEUED,
        db_index=True,
    )
    progress = models.FloatField(default=0.0)
    message = models.CharField(max_length=500, blank=True)
    log = models.JSONField(default=list, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    user_name = models.CharField(max_length=150, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.WEB)
    entry = models.ForeignKey(
        ModelEntry,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
    )
    entry_name = models.CharField(max_length=500, blank=True, db_index=True)
    params = models.JSONField(default=dict, blank=True)
    data = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    created = models.DateTimeField(default=timezone.now, db_index=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)
    heartbeat = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        constraints = [
            # One live job of a kind per entry: a second verify of the same model is refused.
            models.UniqueConstraint(
                fields=["kind", "entry_name"],
                condition=Q(status__in=JobStatus.live()),
                name="one_live_job_per_kind_and_entry",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("registry:job_detail", args=[self.pk])

    @property
    def is_terminal(self) -> bool:
        return self.status in JobStatus.terminal()


class ActionLog(models.Model):
    """Who did what: one row per state-changing service call (audit log)."""

    time = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # Kept as text so the record survives the user's deletion (and names CLI users).
    user_name = models.CharField(max_length=150, db_index=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.WEB)
    action = models.CharField(max_length=32, choices=Action.choices, db_index=True)
    entry = models.ForeignKey(
        ModelEntry,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="actions",
    )
    entry_name = models.CharField(max_length=500, blank=True, db_index=True)
    outcome = models.CharField(
        max_length=16, choices=Outcome.choices, default=Outcome.RUNNING, db_index=True
    )
    message = models.TextField(blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    details = models.JSONField(default=dict, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="actions"
    )

    class Meta:
        ordering = ["-time", "-pk"]
        verbose_name = "action log entry"
        verbose_name_plural = "action log"

    def __str__(self) -> str:
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.user_name} {self.action} {self.entry_name}"


class EntryChange(models.Model):
    """What changed in one layer's copy of one entry (keys added/removed/changed).

    Written by sync whenever a layer file's entry differs from the mirror, whoever
    changed the file. Holds only the changed keys, never a whole file copy.
    """

    time = models.DateTimeField(default=timezone.now, db_index=True)
    entry = models.ForeignKey(
        ModelEntry,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="changes",
    )
    entry_name = models.CharField(max_length=500, db_index=True)
    layer = models.CharField(max_length=16, choices=Layer.choices, db_index=True)
    kind = models.CharField(max_length=16, choices=ChangeKind.choices)
    # [{"path": "backend_config.port", "op": "added|removed|changed", "before": x, "after": y}]
    changes = models.JSONField(default=list, blank=True)
    action = models.ForeignKey(
        ActionLog,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="entry_changes",
    )
    # The operator when the change came through the site or CLI; "" for outside edits.
    user_name = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["-time", "-pk"]
        indexes = [
            models.Index(fields=["layer", "-time"], name="entrychange_layer_time")
        ]

    def __str__(self) -> str:
        return f"{self.entry_name} [{self.layer}] {self.kind}"


class TableConfig(models.Model):
    """One user's columns for one table (NetBox's table config): shown, in order.

    ``columns`` lists the configurable columns to show, in display order; columns
    that are always shown (the row checkbox, the name) are not listed. No row: the
    table's default columns.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    table = models.CharField(max_length=50)
    columns = models.JSONField(default=list, blank=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "table"], name="one_config_per_table"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id}: {self.table}"


__all__ = [
    "Action",
    "ActionLog",
    "ChangeKind",
    "EntryChange",
    "Job",
    "JobStatus",
    "Layer",
    "LayerFile",
    "ModelEntry",
    "Outcome",
    "Provenance",
    "RegistryVersion",
    "Source",
    "TableConfig",
]
