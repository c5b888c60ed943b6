"""Verify model files against their recorded hash, lock/unlock versions, the lock gate.

One algorithm everywhere: ``registry.hashing`` (algorithm A, parallel, with progress).
Lock state lives where the original keeps it (reference 2.5): the DISCOVERED layer's
``version_lock {locked, expected_aggregate_sha256, last_verified}`` and
``artifacts {aggregate_sha256, files: [{path, sha256}]}``, written only through
``writeback.change_entry`` (file first, one audit row per call).

Services (web jobs and the CLI call the same functions):

* :func:`verify` (``hashcheck``) hashes the model directory. On success it stores
  ``artifacts`` and ``version_lock.last_verified`` (and, for a locked entry without an
  expected hash, seeds the expected hash, like the original). On a locked entry whose
  hash differs from the expected one it raises :class:`LockViolation`: nothing is
  written, the audit row is failed and lists both hashes and the per-file differences.
* :func:`lock` / :func:`unlock` (``locking``) set ``version_lock.locked``;
  ``lock(set_expected=True)`` records the hash of a verify that is still current (or
  verifies first). Unlock keeps the expected hash.
* :func:`lock_gate` (``gate``) answers "is this entry's lock satisfied?" with a cheap
  ``stat`` of the model files (no re-hash).
* :func:`request_verify` / :func:`request_lock` (``request``): the rules a front end
  applies (refusals, verify-then-lock in a job), returning an outcome to render.
* :func:`verify_job` (``jobs``) is the task function of ``JobKind.VERIFY``.
"""

from ..writeback import EntryNotFound
from .common import (
    check_model_root,
    cli_command,
    model_roots,
    resolve_model_dir,
)
from .errors import (
    NOT_APPLICABLE_MESSAGE,
    LockViolation,
    ModelFilesMissing,
    NotApplicable,
    OutsideModelRoots,
    VerifyError,
    describe_diff,
)
from .gate import GateResult, lock_gate, needs_verify_before_lock
from .hashcheck import ProgressCallback, VerifyOutcome, verify
from .jobs import verify_job
from .locking import LockOutcome, lock, unlock
from .request import (
    LOCK_NOT_APPLICABLE_MESSAGE,
    LockRequest,
    VerifyRequest,
    busy_message,
    live_verify_job,
    request_lock,
    request_verify,
)

__all__ = [
    "LOCK_NOT_APPLICABLE_MESSAGE",
    "NOT_APPLICABLE_MESSAGE",
    "EntryNotFound",
    "GateResult",
    "LockOutcome",
    "LockRequest",
    "LockViolation",
    "ModelFilesMissing",
    "NotApplicable",
    "OutsideModelRoots",
    "ProgressCallback",
    "VerifyError",
    "VerifyOutcome",
    "VerifyRequest",
    "busy_message",
    "check_model_root",
    "cli_command",
    "describe_diff",
    "live_verify_job",
    "lock",
    "lock_gate",
    "model_roots",
    "needs_verify_before_lock",
    "request_lock",
    "request_verify",
    "resolve_model_dir",
    "unlock",
    "verify",
    "verify_job",
]
