"""Jobs: enqueue, progress from a task, the polled status partial, stale detection."""

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from registry import jobs
from registry.audit import Actor
from registry.choices import JobStatus
from registry.jobs import JobConflict, JobSpec, enqueue, mark_stale_jobs
from registry.models import Job
from tests.base import BaseTestCase, PermissionMatrixMixin
from tests.registry.jobdemo import demo_kinds


class JobTests(PermissionMatrixMixin, BaseTestCase):
    def setUp(self):
        super().setUp()
        self.enterContext(demo_kinds())

    def enqueue(self, kind="demo", **kw):
        with self.captureOnCommitCallbacks(execute=True):
            job = enqueue(
                kind,
                actor=Actor.from_user(self.operator),
                entry_name=kw.pop("entry_name", "m1"),
            )
        job.refresh_from_db()
        return job

    def test_a_task_reports_progress_and_succeeds(self):
        job = self.enqueue()
        self.assertEqual(job.status, JobStatus.SUCCEEDED)
        self.assertEqual(job.progress, 1.0)
        self.assertEqual(job.result, {"answer": 42})
        self.assertEqual(job.data["bytes_total"], 10)
        self.assertEqual(job.log[-1]["msg"], "working")
        self.assertEqual(job.user_name, "alice")
        self.assertIsNotNone(job.finished)

    def test_job_failed_gives_the_message(self):
        job = self.enqueue("demo-fail")
        self.assertEqual(job.status, JobStatus.FAILED)
        self.assertEqual(job.error, "model files not found at /nowhere")

    def test_an_unexpected_exception_fails_the_job_with_a_traceback_in_its_log(self):
        job = self.enqueue("demo-crash")
        self.assertEqual(job.status, JobStatus.FAILED)
        self.assertIn("RuntimeError: unexpected", job.error)
        self.assertIn("Traceback", job.log[-1]["msg"])

    def test_a_second_live_job_for_the_same_entry_is_refused(self):
        Job.objects.create(
            kind="demo", entry_name="m1", status=JobStatus.RUNNING, user_name="bob"
        )
        with self.assertRaisesMessage(
            JobConflict, "A demo job is already running for m1 by bob."
        ):
            enqueue(
                "demo",
                actor=Actor.from_user(self.operator),
                entry_name="m1",
            )
        # A different entry is fine.
        job = self.enqueue(entry_name="m2")
        self.assertEqual(job.status, JobStatus.SUCCEEDED)

    def test_the_status_partial_polls_until_the_job_ends(self):
        job = Job.objects.create(
            kind="demo", status=JobStatus.RUNNING, progress=0.25, message="Hashing"
        )
        url = reverse("registry:job_status", args=[job.pk])
        response = self.client_for(self.viewer).get(url, headers={"HX-Request": "true"})
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, 'hx-trigger="every 1s"')
        self.assertContains(response, "25%")
        job.status = JobStatus.SUCCEEDED
        job.save()
        response = self.client_for(self.viewer).get(url, headers={"HX-Request": "true"})
        self.assertEqual(response.status_code, 286)  # htmx: stop polling
        self.assertNotContains(response, "every 1s", status_code=286)

    def test_job_pages_need_view_permission(self):
        job = Job.objects.create(kind="demo", status=JobStatus.RUNNING)
        self.assert_get_matrix(
            reverse("registry:job_status", args=[job.pk]),
            allowed=[self.viewer, self.operator],
            forbidden=[self.outsider],
        )
        self.assert_get_matrix(
            reverse("registry:job_detail", args=[job.pk]),
            allowed=[self.viewer],
            forbidden=[self.outsider],
        )

    def test_cancel_needs_the_kinds_permission(self):
        job = Job.objects.create(
            kind="verify", status=JobStatus.RUNNING, entry_name="m1"
        )
        url = reverse("registry:job_cancel", args=[job.pk])
        self.assert_forbidden(self.viewer, url, "post")
        self.assert_forbidden(self.editor, url, "post")
        self.assert_method_not_allowed(self.operator, url, "get")
        self.assert_allowed(self.operator, url, "post")
        job.refresh_from_db()
        self.assertEqual(job.status, JobStatus.CANCELLED)

    def test_stale_jobs_are_marked_failed_with_a_reason(self):
        old = timezone.now() - timedelta(minutes=30)
        dead = Job.objects.create(
            kind="verify", status=JobStatus.RUNNING, entry_name="a", heartbeat=old
        )
        lost = Job.objects.create(
            kind="verify", status=JobStatus.QUEUED, entry_name="b", created=old
        )
        alive = Job.objects.create(
            kind="verify",
            status=JobStatus.RUNNING,
            entry_name="c",
            heartbeat=timezone.now(),
        )
        self.assertEqual(mark_stale_jobs(timedelta(minutes=10)), 2)
        dead.refresh_from_db()
        lost.refresh_from_db()
        alive.refresh_from_db()
        self.assertEqual(dead.status, JobStatus.FAILED)
        self.assertIn("Worker stopped reporting", dead.error)
        self.assertEqual(lost.status, JobStatus.FAILED)
        self.assertEqual(alive.status, JobStatus.RUNNING)


class JobSpecTests(PermissionMatrixMixin, BaseTestCase):
    """One table of job kinds: old-style tasks, unknown kinds, registered permissions."""

    def test_a_task_queued_with_a_function_path_fails_cleanly(self):
        # What a worker still holds after an upgrade: run_job(job_id, "dotted.path").
        job = Job.objects.create(kind="verify", entry_name="m1")
        jobs.run_job(job.pk, "registry.services.verify.verify_job")
        job.refresh_from_db()
        self.assertEqual(job.status, JobStatus.FAILED)
        self.assertIn("queued by an earlier version", job.error)
        self.assertIsNotNone(job.finished)

    def test_a_job_of_an_unregistered_kind_fails_with_the_kind(self):
        job = Job.objects.create(kind="retired-feature")
        jobs.run_job(job.pk)
        job.refresh_from_db()
        self.assertEqual(job.status, JobStatus.FAILED)
        self.assertIn("'retired-feature'", job.error)

    def test_enqueue_refuses_an_unregistered_kind_and_writes_no_row(self):
        from django.core.exceptions import ImproperlyConfigured

        with self.assertRaisesMessage(ImproperlyConfigured, "'retired-feature'"):
            enqueue("retired-feature", actor=Actor.from_user(self.operator))
        self.assertFalse(Job.objects.exists())

    def test_a_kind_cannot_be_registered_twice_with_different_specs(self):
        from django.core.exceptions import ImproperlyConfigured

        spec = jobs.spec_for("verify")
        other = JobSpec("verify", lambda job: {}, spec.cancel_permission)
        with self.assertRaises(ImproperlyConfigured):
            jobs.register(other)
        jobs.register(spec)  # the same spec again is fine (apps ready() twice)
        self.assertIs(jobs.spec_for("verify"), spec)

    def test_backends_kinds_take_their_cancel_permission_from_their_spec(self):
        # Registered by the backends app (registry names no backends permission).
        job = Job.objects.create(kind="activate", status=JobStatus.RUNNING)
        url = reverse("registry:job_cancel", args=[job.pk])
        self.assert_forbidden(self.viewer, url, "post")
        self.assert_forbidden(self.editor, url, "post")
        self.assert_allowed(self.operator, url, "post")
        job.refresh_from_db()
        self.assertEqual(job.status, JobStatus.CANCELLED)
