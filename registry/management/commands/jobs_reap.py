"""Fail jobs whose worker died (kill -9, crash, host lost) so none stays "running"."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand

from registry.jobs import mark_stale_jobs


class Command(BaseCommand):
    help = (
        "Mark running jobs that stopped heartbeating, and queued jobs never picked up, "
        "as failed with a reason. The registry sync schedule runs this every minute."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--max-silence",
            type=float,
            default=10 * 60,
            help="seconds without a heartbeat before a running job is failed (600)",
        )
        parser.add_argument(
            "--max-queued",
            type=float,
            default=None,
            help="seconds a queued job may wait (default: --max-silence)",
        )

    def handle(self, *args, max_silence, max_queued, **options):
        count = mark_stale_jobs(
            timedelta(seconds=max_silence),
            timedelta(seconds=max_queued) if max_queued is not None else None,
        )
        self.stdout.write(f"Marked {count} stale job(s) failed.")
