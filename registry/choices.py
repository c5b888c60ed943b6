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
