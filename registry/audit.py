"""The audit log: who did what, one ``ActionLog`` row per state-changing service call.

Rows are mirrored to ``_staging/gui_registry_actions.json`` (a bounded JSON array,
rewritten atomically) so the original ImageWorks tools can read them.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError
from django.utils import timezone

from . import layers
from .choices import Outcome, Source
from .models import ActionLog, Job, ModelEntry

logger = logging.getLogger(__name__)

ACTIONS_FILE = "gui_registry_actions.json"
#: Sources whose actors are not permission-checked (see ``Actor.may``).
TRUSTED_SOURCES = (Source.CLI, Source.SCHEDULE, Source.SYSTEM)


@dataclass(frozen=True)
class Actor:
    """The operator behind a service call: a Django user (if any), a name, a source."""

    name: str
    source: str = Source.WEB
    user: Any = field(default=None, compare=False)
    # The permissions the actor's credential is limited to (an API token's scope);
    # None: the user's role alone decides.
    scope: frozenset[str] | None = field(default=None, compare=False)

    @classmethod
    def from_request(cls, request) -> Actor:
        user = request.user if request.user.is_authenticated else None
        return cls(
            name=user.get_username() if user else "anonymous",
            source=Source.WEB,
            user=user,
        )

    @classmethod
    def from_user(cls, user, source: str = Source.WEB) -> Actor:
        return cls(name=user.get_username(), source=source, user=user)

    @classmethod
    def cli(cls) -> Actor:
        """The OS user running the CLI, linked to the Django user of the same name."""
        try:
            name = getpass.getuser()
        except (KeyError, OSError):
            name = f"uid-{os.getuid()}"
        user = get_user_model().objects.filter(username=name).first()
        return cls(name=name, source=Source.CLI, user=user)

    @classmethod
    def system(cls, name: str = "system", source: str = Source.SCHEDULE) -> Actor:
        return cls(name=name, source=source, user=None)

    @property
    def user_id(self):
        return self.user.pk if self.user is not None else None

    def may(self, perm: str) -> bool:
        """Whether this actor holds the Django permission *perm*.

        Web actors (and any new front end) need it; the CLI and schedules run as an
        OS user who can edit the registry files directly, so they are not checked.
        """
        if self.source in TRUSTED_SOURCES:
            return True
        if self.scope is not None and perm not in self.scope:
            return False
        return self.user is not None and self.user.has_perm(perm)


@dataclass
class AuditHandle:
    """Mutable result holder for ``audited``: set message/after/details as you go."""

    row: ActionLog
    message: str = ""
    after: Any = None
    details: dict = field(default_factory=dict)
    failed: bool = False

    def fail(self, message: str) -> None:
        """Mark the action failed without raising (e.g. a lock violation that is reported)."""
        self.failed = True
        self.message = message


def record(
    actor: Actor,
    action: str,
    *,
    entry: ModelEntry | None = None,
    entry_name: str = "",
    outcome: str = Outcome.SUCCEEDED,
    message: str = "",
    before: Any = None,
    after: Any = None,
    details: dict | None = None,
    duration_ms: int | None = None,
    job: Job | None = None,
) -> ActionLog:
    """Write one finished audit row (and mirror it to the staging file)."""
    now = timezone.now()
    row = ActionLog.objects.create(
        time=now,
        finished_at=None if outcome == Outcome.RUNNING else now,
        user=actor.user,
        user_name=actor.name,
        source=actor.source,
        action=action,
        entry=entry,
        entry_name=entry_name or (entry.name if entry else ""),
        outcome=outcome,
        message=message,
        before=before,
        after=after,
        details=details or {},
        duration_ms=duration_ms,
        job=job,
    )
    mirror_to_staging()
    return row


@contextmanager
def audited(
    actor: Actor,
    action: str,
    *,
    entry: ModelEntry | None = None,
    entry_name: str = "",
    job: Job | None = None,
    before: Any = None,
    details: dict | None = None,
) -> Iterator[AuditHandle]:
    """Record one action: a ``running`` row at the start, finished on exit.

    An exception inside the block marks the row failed with the exception's message
    and is re-raised; ``handle.fail(msg)`` marks it failed without raising.
    """
    started = time.monotonic()
    row = record(
        actor,
        action,
        entry=entry,
        entry_name=entry_name,
        outcome=Outcome.RUNNING,
        before=before,
        details=details,
        job=job,
    )
    handle = AuditHandle(row=row, details=dict(details or {}))
    try:
        yield handle
    except BaseException as exc:
        handle.failed = True
        handle.message = handle.message or str(exc) or exc.__class__.__name__
        raise
    finally:
        _finish(row, handle, started)


def _finish(row: ActionLog, handle: AuditHandle, started: float) -> None:
    row.finished_at = timezone.now()
    row.duration_ms = int((time.monotonic() - started) * 1000)
    row.outcome = Outcome.FAILED if handle.failed else Outcome.SUCCEEDED
    row.message = handle.message
    row.after = handle.after
    row.details = handle.details
    if row.entry_id is None and row.entry_name:
        row.entry = ModelEntry.objects.filter(name=row.entry_name).first()
    try:
        row.save(
            update_fields=[
                "finished_at",
                "duration_ms",
                "outcome",
                "message",
                "after",
                "details",
                "entry",
            ]
        )
    except DatabaseError:
        # The database may be what failed; never hide the original error behind this one.
        logger.exception("could not finish audit row %s", row.pk)
        return
    mirror_to_staging()


def action_as_json(row: ActionLog) -> dict:
    """The staging-file shape (see reference/original-gui.md section 6)."""
    return {
        "id": row.pk,
        "timestamp": row.time.isoformat(),
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "operator": row.user_name,
        "source": row.source,
        "action": row.action,
        "model": row.entry_name or None,
        "status": row.outcome,
        "duration_ms": row.duration_ms,
        "summary": row.message,
        "job_id": row.job_id,
    }


def mirror_to_staging() -> None:
    """Rewrite the staging mirror with the latest N rows (atomic; best effort)."""
    staging = Path(settings.IMAGEWORKS_STAGING_DIR)
    keep = settings.IMAGEWORKS_ACTION_LOG_KEEP
    # Imported here: filelock is not needed to start the CLI (start-up time).
    from filelock import FileLock, Timeout

    try:
        staging.mkdir(parents=True, exist_ok=True)
        rows = list(ActionLog.objects.order_by("-time", "-pk")[:keep])
        payload = (
            json.dumps([action_as_json(r) for r in reversed(rows)], indent=2) + "\n"
        )
        target = staging / ACTIONS_FILE
        # The lock orders concurrent rewrites so an older snapshot never lands last.
        with FileLock(str(staging / (ACTIONS_FILE + ".lock")), timeout=5):
            layers.atomic_write(target, payload.encode("utf-8"), keep_backups=0)
    except (OSError, Timeout, DatabaseError, layers.RegistryError) as exc:
        # The database row is the record; the file is a courtesy copy for old tools.
        logger.warning("could not mirror the action log to %s: %s", staging, exc)
