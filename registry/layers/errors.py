"""The registry's exceptions: every message names the file (and the entry)."""

from __future__ import annotations

import os
from pathlib import Path

from .constants import CURATED_FILE, DISCOVERED_FILE, LAYER_FILES


class RegistryError(Exception):
    """Base class of every registry failure; messages name the file (and entry)."""


class LayerParseError(RegistryError):
    """A registry file that cannot be read at all (file-level damage).

    The message is "The registry file is broken: <file>, <what>, <where>": *reason*
    says what is wrong (no ", " in it), *where* where (line and column, the JSON path
    of the bad value, a byte offset, or "the whole file").
    """

    def __init__(
        self, path: str | os.PathLike[str], reason: str, where: str = "the whole file"
    ) -> None:
        self.path = Path(path)
        self.reason = reason.replace(", ", "; ")
        self.where = where or "the whole file"
        super().__init__(
            f"The registry file is broken: {self.path}, {self.reason}, {self.where}"
        )


class RegistryNotFound(RegistryError):
    def __init__(self, folder: str | os.PathLike[str], detail: str = "") -> None:
        self.folder = Path(folder)
        message = detail or (
            f"No registry files found in {self.folder} "
            f"(expected {CURATED_FILE} or {DISCOVERED_FILE})"
        )
        super().__init__(message)


class ConflictError(RegistryError):
    """The entry changed on disk since the caller read it; nothing was written."""

    def __init__(
        self,
        name: str,
        layer: str,
        expected_fingerprint: str,
        current_fingerprint: str,
        current_curated: dict | None,
        current_discovered: dict | None,
    ) -> None:
        self.name = name
        self.layer = layer
        self.expected_fingerprint = expected_fingerprint
        self.current_fingerprint = current_fingerprint
        self.current_curated = current_curated
        self.current_discovered = current_discovered
        file_name = LAYER_FILES.get(layer, layer)
        super().__init__(
            f"Entry {name!r} changed on disk since it was read; not writing "
            f"{file_name}. Reload and apply the change again."
        )


class FileChangedError(ConflictError):
    """A layer file was replaced (by another tool) between our read and our write."""

    def __init__(self, path: Path) -> None:
        RegistryError.__init__(
            self,
            f"{path.name} was changed by another program while it was being "
            "written; nothing was written. Reload and apply the change again.",
        )
        self.name = ""
        self.layer = ""
        self.expected_fingerprint = ""
        self.current_fingerprint = ""
        self.current_curated = None
        self.current_discovered = None


class RegistryWriteError(RegistryError):
    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(reason)


class LockTimeout(RegistryError):
    def __init__(self, lock_path: str | os.PathLike[str], timeout: float) -> None:
        self.lock_path = Path(lock_path)
        self.timeout = timeout
        super().__init__(
            f"Could not acquire the registry write lock {self.lock_path} within "
            f"{timeout:g} s: another writer is busy, try again."
        )
