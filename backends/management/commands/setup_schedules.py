"""Create or update the django-q2 schedules of the backends app (idempotent)."""

from django.conf import settings
from django.core.management.base import BaseCommand

from backends.health.tasks import ensure_schedules
from backends.tasks import ensure_reconcile_schedule


class Command(BaseCommand):
    help = (
        "Create or update the scheduled backend health checks "
        "(interval: IMAGEWORKS_HEALTH_INTERVAL seconds) and, with "
        "IMAGEWORKS_VLLM_QUEUE set, the vLLM reconcile on the GPU host's queue. "
        "Safe to run repeatedly."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--interval", type=int, default=None, help="seconds (default: setting)"
        )

    def handle(self, *args, interval=None, **options):
        interval = interval or settings.IMAGEWORKS_HEALTH_INTERVAL
        for schedule in ensure_schedules(interval):
            self.stdout.write(
                f"{schedule.name}: every {schedule.minutes} min, next run {schedule.next_run:%H:%M:%S}"
            )
        self.stdout.write(
            self.style.SUCCESS(f"Health checks scheduled every ~{max(30, interval)} s.")
        )
        reconcile = ensure_reconcile_schedule()
        if reconcile is not None:
            self.stdout.write(
                f"{reconcile.name}: every {reconcile.minutes} min on queue "
                f"{reconcile.cluster} (the GPU host's worker)"
            )
