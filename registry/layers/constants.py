"""File and layer names, and the messages and key sets every layer module shares."""

from __future__ import annotations

CURATED_FILE = "model_registry.curated.json"
DISCOVERED_FILE = "model_registry.discovered.json"
SNAPSHOT_FILE = "model_registry.json"
LEGACY_BACKUP_FILE = "model_registry.backup.pre_split.json"
LOCK_FILE = ".model_registry.lock"

CURATED = "curated"
DISCOVERED = "discovered"
SNAPSHOT = "snapshot"
LEGACY = "legacy"
LAYER_FILES: dict[str, str] = {CURATED: CURATED_FILE, DISCOVERED: DISCOVERED_FILE}

READ_ONLY_MESSAGE = (
    "Registry file is read-only: adjust filesystem permissions or open a pull "
    "request if repo-managed"
)


#: Keys the original keeps only in the discovered layer (reference 2.5).
DYNAMIC_KEYS = frozenset(
    {
        "download_format",
        "download_location",
        "download_path",
        "download_size_bytes",
        "download_files",
        "download_directory_checksum",
        "downloaded_at",
        "last_accessed",
        "artifacts",
        "performance",
        "probes",
        "version_lock",
    }
)
