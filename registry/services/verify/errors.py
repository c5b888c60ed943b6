"""Why a verify or lock could not be done (messages are shown to the operator)."""

from __future__ import annotations

from ... import hashing

NOT_APPLICABLE_MESSAGE = "Verify does not apply to Ollama tags (no local files)"


class VerifyError(Exception):
    """A verify/lock that could not be done; the message is shown to the operator."""


class NotApplicable(VerifyError):
    """The entry has no local files (an Ollama tag)."""


class ModelFilesMissing(VerifyError):
    """The model directory is not there (or no path is recorded)."""


class OutsideModelRoots(VerifyError):
    """The model path is outside ``settings.IMAGEWORKS_MODEL_ROOTS``."""


class LockViolation(VerifyError):
    """A locked entry's files do not hash to the expected aggregate. Nothing was written."""

    def __init__(
        self, name: str, expected: str, actual: str, diff: hashing.FileDiff | None
    ):
        self.name = name
        self.expected = expected
        self.actual = actual
        self.diff = diff
        super().__init__(
            f"Lock violation: expected {expected} got {actual} ({describe_diff(diff)})"
        )


def describe_diff(diff: hashing.FileDiff | None, limit: int = 5) -> str:
    """``"changed: config.json; added: extra.bin"`` (or why there is no list)."""
    if diff is None:
        return "no stored file list to compare"
    parts = []
    for label, paths in (
        ("changed", diff.changed),
        ("added", diff.added),
        ("removed", diff.removed),
    ):
        if paths:
            shown = ", ".join(paths[:limit])
            if len(paths) > limit:
                shown += f" (+{len(paths) - limit} more)"
            parts.append(f"{label}: {shown}")
    return "; ".join(parts) or "the stored file list has the same hashes"
