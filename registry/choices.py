"""Choice sets for the registry app (upper-case members, badge colour alongside)."""

from django.db import models


class Layer(models.TextChoices):
    CURATED = "curated", "Curated"
    DISCOVERED = "discovered", "Discovered"


class Provenance(models.TextChoices):
    CURATED = "curated", "Curated"
    DISCOVERED = "discovered", "Discovered"
    BOTH = "both", "Both"


class ChangeKind(models.TextChoices):
    ADDED = "added", "Added"
    REMOVED = "removed", "Removed"
    CHANGED = "changed", "Changed"


class Source(models.TextChoices):
    WEB = "web", "Web"
    CLI = "cli", "CLI"
    SCHEDULE = "schedule", "Schedule"
    SYSTEM = "system", "System"
    API = "api", "API"


class Action(models.TextChoices):
    SYNC = "sync", "Sync"
    EDIT = "edit", "Edit"
    IMPORT = "import", "Import"
    VERIFY = "verify", "Verify"
    LOCK = "lock", "Lock"
    UNLOCK = "unlock", "Unlock"
    ACTIVATE = "activate", "Activate"
    STOP = "stop", "Stop"
    EXPORT = "export", "Export"
    HEALTH = "health", "Health"
    RECONCILE = "reconcile", "Reconcile"
    REPAIR = "repair", "Repair"  # a stale snapshot or leftover temp files put right
    TOKEN = "token", "API token"  # an API token created or revoked


class Outcome(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"

    @property
    def badge(self) -> str:
        return {"running": "info", "succeeded": "ok", "failed": "bad"}[self.value]


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"

    @classmethod
    def terminal(cls) -> tuple[str, ...]:
        return (cls.SUCCEEDED, cls.FAILED, cls.CANCELLED)

    @classmethod
    def live(cls) -> tuple[str, ...]:
        return (cls.QUEUED, cls.RUNNING)


class JobKind(models.TextChoices):
    """What a ``Job`` does. Each kind has one ``registry.jobs.JobSpec`` (function,
    queue, cancel permission): registry's own are registered by ``registry.apps``,
    ACTIVATE and STOP by the backends app, RECONCILE_SCAN by the inventory app."""

    SYNC = "sync", "Sync"
    VERIFY = "verify", "Verify"  # also verify-then-lock (``params["then_lock"]``)
    ACTIVATE = "activate", "Activate"
    STOP = "stop", "Stop"
    RECONCILE_SCAN = "reconcile_scan", "Reconcile scan"
    BULK = "bulk", "Bulk action"  # verify/lock/unlock many entries (services.bulk)


class BulkAction(models.TextChoices):
    """What a bulk action on selected Models rows does (``services.bulk``)."""

    VERIFY = "verify", "Verify"
    LOCK = "lock", "Lock"
    UNLOCK = "unlock", "Unlock"


class LockRequestStatus(models.TextChoices):
    """What became of a front end's "lock this entry" (``verify.request_lock``)."""

    LOCKED = "locked", "Locked"
    QUEUED = "queued", "Verify-then-lock job queued"
    ALREADY_LOCKED = "already_locked", "Already locked"
    BUSY = "busy", "A verify job is running"
    NOT_APPLICABLE = "not_applicable", "No local files"
    FAILED = "failed", "Failed"


BACKEND_CHOICES = [
    "vllm",
    "ollama",
    "lmdeploy",
    "triton",
    "gguf",
    "remote",
    "unassigned",
]
CANONICAL_CAPABILITIES = ["vision", "embedding", "audio", "thinking", "tools"]
