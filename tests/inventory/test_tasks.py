"""The scan as a background job (progress, single flight, cancel) and its schedule."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command
from django.test import TestCase, override_settings
from django_q.models import Schedule

from inventory import tasks
from inventory.models import ScanRun
from registry.audit import Actor
from registry.jobs import JobConflict, cancel
from registry.models import Job
from tests.inventory.helpers import LibraryMixin

ACTOR = Actor.system("tests")


class ScanJobTests(LibraryMixin, TestCase):
    def setUp(self):
        super().setUp()
        for i in range(30):
            self.lib.model(f"org/m{i}", size=100)
        self.lib.save()

    def test_the_job_reports_progress_and_its_result(self):
        with self.captureOnCommitCallbacks(execute=True):
            job = tasks.request_scan(ACTOR, refresh_backends=False)
        job.refresh_from_db()
        self.assertEqual(job.status, "succeeded", job.error)
        self.assertEqual(job.progress, 1.0)
        self.assertEqual(job.result["files"], 90)
        self.assertEqual(job.result["counts"], {"orphan_folder": 30})
        self.assertEqual(ScanRun.objects.get().job, job)
        self.assertIn("Scanned 90 files", job.log[-1]["msg"])

    def test_one_scan_at_a_time(self):
        first = tasks.request_scan(ACTOR)  # queued: on_commit never fires in a TestCase
        with self.assertRaises(JobConflict):
            tasks.request_scan(ACTOR)
        self.assertEqual(tasks.scan_or_running(ACTOR), first)
        self.assertEqual(tasks.scheduled_scan(), {"skipped": True, "running": first.pk})

    def test_a_cancelled_job_stops_the_walk(self):
        job = tasks.request_scan(ACTOR)
        Job.objects.filter(pk=job.pk).update(status="running")
        job.refresh_from_db()
        cancel(job)
        tracker = tasks._Tracker(job)
        tracker(0.5, "Scanning", 10)
        self.assertTrue(tracker.cancel.is_set())


class ScheduleTests(TestCase):
    def test_setup_command_is_idempotent_and_zero_removes(self):
        out = StringIO()
        with override_settings(IMAGEWORKS_RECONCILE_INTERVAL=120):
            call_command("setup_reconcile_schedule", stdout=out)
            call_command("setup_reconcile_schedule", stdout=out)
        schedule = Schedule.objects.get(name=tasks.SCHEDULE_NAME)
        self.assertEqual((schedule.func, schedule.minutes), (tasks.TASK, 120))
        call_command("setup_reconcile_schedule", "--minutes", "0", stdout=out)
        self.assertFalse(Schedule.objects.filter(name=tasks.SCHEDULE_NAME).exists())
