"""Big registries sync in ONE background job, never inside every web request."""

import tempfile
from pathlib import Path

from django.test import TestCase, override_settings
from django.urls import reverse

from registry.choices import JobStatus
from registry.models import Job, ModelEntry
from registry.sample import write_sample_registry
from tests.base import PersonaMixin

LIST = reverse("registry:modelentry_list")


class BackgroundSyncTests(PersonaMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.make_personas()

    def setUp(self):
        tmp = Path(tempfile.mkdtemp(prefix="iw-bgsync-"))
        write_sample_registry(tmp / "configs", tmp / "models", force=True)
        # Every registry counts as "large" in these tests.
        patcher = override_settings(
            IMAGEWORKS_REGISTRY_DIR=tmp / "configs", IMAGEWORKS_INLINE_SYNC_MAX_BYTES=1
        )
        patcher.enable()
        self.addCleanup(patcher.disable)

    def test_a_page_load_queues_one_sync_job_and_the_job_mirrors_the_files(self):
        client = self.client_for(self.viewer)
        with self.captureOnCommitCallbacks(execute=False) as callbacks:
            response = client.get(LIST)
        self.assertContains(response, 'data-testid="sync-job"')
        job = Job.objects.get(kind="sync")
        self.assertEqual(job.status, JobStatus.QUEUED)
        self.assertFalse(ModelEntry.objects.exists())  # the request did not sync
        for callback in callbacks:
            callback()  # what the worker does
        job.refresh_from_db()
        self.assertEqual(job.status, JobStatus.SUCCEEDED, job.error)
        self.assertEqual(ModelEntry.objects.count(), 12)

    def test_a_second_page_load_joins_the_running_job(self):
        running = Job.objects.create(
            kind="sync", status=JobStatus.RUNNING, user_name="bob"
        )
        response = self.client_for(self.viewer).get(LIST)
        self.assertContains(response, f'id="job-{running.pk}"')
        self.assertEqual(Job.objects.filter(kind="sync").count(), 1)

    def test_reload_queues_the_job_and_says_so(self):
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client_for(self.operator).post(
                reverse("registry:registry_reload"), follow=True
            )
        self.assertContains(response, "reloading in the background")
        self.assertEqual(Job.objects.get(kind="sync").status, JobStatus.SUCCEEDED)
        self.assertEqual(ModelEntry.objects.count(), 12)
