"""Scheduled health checks (django-q2).

django-q2 schedules have minute granularity (``Schedule.MINUTES``) and the
cluster's scheduler looks for due schedules about every 30 seconds. For an
interval below a minute (default 30 s) :func:`ensure_schedules` creates
``60 // interval`` one-minute schedules whose first runs are offset by
``interval`` seconds; each keeps its offset because q2 adds exactly one minute
to the previous ``next_run``. Intervals of a minute or more use one schedule of
``round(interval / 60)`` minutes. Effective resolution is the scheduler's ~30 s
tick, so intervals below 30 s are rounded up to 30 s.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from .check import check_all

logger = logging.getLogger(__name__)

TASK = "backends.health.tasks.run_health_checks"
SCHEDULE_PREFIX = "backend-health-checks"
MIN_INTERVAL_S = 30


def run_health_checks() -> dict:
    """django-q2 task: check every backend once; returns a short summary."""
    report = check_all()
    summary = {row.key: row.status for row in report.endpoints}
    logger.info("health check in %.2fs: %s", report.duration_s, summary)
    return {"duration_s": report.duration_s, "statuses": summary}


def schedule_plan(interval_s: int) -> list[tuple[int, int]]:
    """``[(minutes, offset_seconds), ...]``: the schedules that give ``interval_s``."""
    interval_s = max(MIN_INTERVAL_S, int(interval_s))
    if interval_s >= 60:
        return [(max(1, round(interval_s / 60)), 0)]
    return [(1, k * interval_s) for k in range(60 // interval_s)]


def ensure_schedules(interval_s: int | None = None) -> list:
    """Create or update the health-check schedules (idempotent); removes extra ones."""
    from django_q.models import Schedule

    interval_s = interval_s or int(getattr(settings, "IMAGEWORKS_HEALTH_INTERVAL", 30))
    plan = schedule_plan(interval_s)
    now = timezone.now()
    wanted = []
    for index, (minutes, offset) in enumerate(plan):
        name = f"{SCHEDULE_PREFIX}-{index}"
        wanted.append(name)
        schedule = Schedule.objects.filter(name=name).first()
        if schedule is None:
            schedule = Schedule(name=name, next_run=now + timedelta(seconds=offset))
        elif schedule.minutes != minutes or schedule.func != TASK:
            schedule.next_run = now + timedelta(seconds=offset)
        schedule.func = TASK
        schedule.schedule_type = Schedule.MINUTES
        schedule.minutes = minutes
        schedule.repeats = -1
        schedule.save()
    Schedule.objects.filter(name__startswith=SCHEDULE_PREFIX).exclude(
        name__in=wanted
    ).delete()
    return list(Schedule.objects.filter(name__in=wanted).order_by("name"))
