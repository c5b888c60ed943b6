"""Choice sets of the inventory app (plain enums: importable without settings)."""

from django.db import models


class FindingKind(models.TextChoices):
    ORPHAN_FOLDER = "orphan_folder", "Orphan folder"
    PATH_MISSING = "path_missing", "Path missing"
    PATH_EMPTY = "path_empty", "Path empty"
    PARTIAL_DOWNLOAD = "partial_download", "Partial download"
    OLLAMA_UNREGISTERED = "ollama_unregistered", "Ollama model not in the registry"
    OLLAMA_NOT_INSTALLED = "ollama_not_installed", "Ollama entry not installed"
    OLLAMA_DIGEST = "ollama_digest", "Ollama digest differs"
    VLLM_MISMATCH = "vllm_mismatch", "Served vLLM differs from the entry"
    DUPLICATE_FILES = "duplicate_files", "Same files under several entries"
    LINK_OUTSIDE = "link_outside", "Symlink out of the model roots"
    BROKEN_LINK = "broken_link", "Broken symlink"
    OUTSIDE_ROOTS = "outside_roots", "Entry path outside the model roots"
    UNREADABLE = "unreadable", "Unreadable folder or file"

    @property
    def severity(self) -> str:
        """``bad`` (something is broken), ``warn`` (drift/waste) or ``info``."""
        return SEVERITY.get(self.value, "info")


SEVERITY = {
    "path_missing": "bad",
    "path_empty": "bad",
    "partial_download": "warn",
    "ollama_not_installed": "bad",
    "ollama_digest": "warn",
    "vllm_mismatch": "bad",
    "broken_link": "bad",
    "orphan_folder": "warn",
    "duplicate_files": "warn",
    "ollama_unregistered": "info",
    "link_outside": "info",
    "outside_roots": "info",
    "unreadable": "warn",
}


class FixKind(models.TextChoices):
    """The suggested fix of a finding; each has a preview (``fix.html``)."""

    IMPORT = "import", "Import through the import wizard"
    EDIT = "edit", "Edit the entry"
    VERIFY = "verify", "Verify the files"
    MARK_DEPRECATED = "mark_deprecated", "Mark the entry deprecated"
    RECLAIM = "reclaim", "Plan a reclaim"
    COMMAND = "command", "Run a command"
    SETTING = "setting", "Change a setting"
    NONE = "none", "No fix needed"


class UsageState(models.TextChoices):
    OK = "ok", "On disk"
    MISSING = "missing", "Path missing"
    EMPTY = "empty", "Folder empty"
    OUTSIDE = "outside", "Outside the model roots"
    NO_PATH = "no_path", "No local path"
    OLLAMA = "ollama", "In the Ollama store"
    OLLAMA_ABSENT = "ollama_absent", "Not in the Ollama store"
    UNKNOWN = "unknown", "Not scanned"


class ScanStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class TrashState(models.TextChoices):
    IN_TRASH = "in_trash", "In the trash"
    RESTORED = "restored", "Restored"
    EMPTIED = "emptied", "Deleted (trash emptied)"
    LOST = "lost", "Missing from the trash"


class InventoryOp(models.TextChoices):
    """What an inventory audit row did (``ActionLog.details["op"]``; the row's action
    is ``reconcile``)."""

    SCAN = "scan", "Scan"
    RECLAIM = "reclaim", "Move to trash"
    RESTORE = "restore", "Restore from trash"
    EMPTY_TRASH = "empty_trash", "Empty trash"
    ADOPT = "adopt", "Adopt a trash manifest"
