"""``{% verify_panel entry as vp %}``: what the drawer's hash/lock slot shows."""

from __future__ import annotations

from datetime import timedelta

from django import template
from django.utils import timezone

from registry.choices import JobKind, JobStatus
from registry.models import Job, ModelEntry
from registry.services.verify import (
    NOT_APPLICABLE_MESSAGE,
    cli_command,
    lock_gate,
    needs_verify_before_lock,
)

register = template.Library()

#: A finished verify job stays visible in the drawer this long.
RECENT_JOB = timedelta(minutes=15)


def _recent_job(entry: ModelEntry) -> Job | None:
    job = (
        Job.objects.filter(kind=JobKind.VERIFY, entry_name=entry.name)
        .order_by("-created")
        .first()
    )
    if job is None:
        return None
    if job.is_terminal and job.finished and timezone.now() - job.finished > RECENT_JOB:
        return None
    return job


@register.simple_tag
def verify_panel(entry: ModelEntry) -> dict:
    """Buttons' availability (with reasons), the lock gate, the last job, CLI equivalents."""
    has_files = entry.has_local_files
    job = _recent_job(entry)
    busy = job is not None and job.status in JobStatus.live()
    expected = entry.expected_sha256 or ""
    actual = entry.aggregate_sha256 or ""
    if not has_files:
        lock_reason = "Lock does not apply to Ollama tags (no local files)"
    elif busy:
        lock_reason = "A verify job is running for this model"
    else:
        lock_reason = ""
    return {
        "job": job,
        "busy": busy,
        "gate": lock_gate(entry) if entry.locked else None,
        "can_verify": has_files and not busy,
        "verify_reason": NOT_APPLICABLE_MESSAGE
        if not has_files
        else ("A verify job is already running" if busy else ""),
        "can_lock": entry.locked or not lock_reason,
        "lock_reason": "" if entry.locked else lock_reason,
        "lock_needs_verify": (
            not entry.locked and has_files and needs_verify_before_lock(entry)
        ),
        "mismatch": bool(entry.locked and expected and actual and actual != expected),
        "cli": {
            "verify": cli_command("verify", entry.name),
            "lock": cli_command("lock", entry.name),
            "unlock": cli_command("unlock", entry.name),
        },
    }


@register.simple_tag
def lock_icon(locked) -> str:
    """The table's SVG padlock (emoji render as boxes without an emoji font)."""
    from registry.tables import LOCK_ICONS

    return LOCK_ICONS[bool(locked)]
