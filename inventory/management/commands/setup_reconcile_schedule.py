"""Create or update the scheduled reconcile scan (idempotent)."""

from django.conf import settings
from django.core.management.base import BaseCommand

from inventory.tasks import SCHEDULE_NAME, ensure_schedule


class Command(BaseCommand):
    help = (
        "Create or update the periodic reconcile scan of the model roots "
        "(IMAGEWORKS_RECONCILE_INTERVAL minutes; 0 removes it). Safe to run repeatedly."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--minutes", type=int, default=None, help="interval (default: setting)"
        )

    def handle(self, *args, minutes=None, **options):
        if minutes is None:
            minutes = settings.IMAGEWORKS_RECONCILE_INTERVAL
        schedule = ensure_schedule(minutes)
        if schedule is None:
            self.stdout.write(f"{SCHEDULE_NAME}: removed (interval 0)")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"{schedule.name}: every {schedule.minutes} min, "
                f"next run {schedule.next_run:%Y-%m-%d %H:%M}"
            )
        )
