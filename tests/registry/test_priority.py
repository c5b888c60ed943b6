"""CPU-heavy jobs run below the web workers' priority, in their own thread only."""

import multiprocessing
import os
import sys
import threading
import unittest

from django.db import connections
from django.test import TransactionTestCase, override_settings

from registry import jobs, priority
from registry.choices import JobStatus
from registry.jobs import JobFailed, JobSpec
from registry.models import Job

linux_only = unittest.skipUnless(
    sys.platform == "linux", "per-thread nice values are a Linux feature"
)


def own_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def report_priority(job):
    """A background job that says at which nice value it ran, and which thread."""
    return {
        "nice": own_nice(),
        "thread": threading.current_thread().name,
        "worker_nice": os.getpriority(os.PRIO_PROCESS, os.getpid()),
    }


def run_job_in_a_worker_process(job_id: int) -> None:
    """What a django-q2 worker does: a child process (not ``MainProcess``) runs it."""
    connections.close_all()  # the parent's connections are not shared across fork
    jobs.run_job(job_id)
    connections.close_all()


@linux_only
class RunLoweredTests(unittest.TestCase):
    def test_the_work_runs_at_the_lower_priority_and_the_caller_keeps_its_own(self):
        before = own_nice()
        seen = priority.run_lowered(own_nice, nice=before + 5)
        self.assertEqual(seen, before + 5)
        self.assertEqual(own_nice(), before)

    def test_a_priority_is_never_raised(self):
        before = own_nice()
        self.assertEqual(priority.run_lowered(own_nice, nice=before - 1), before)

    def test_the_result_and_the_exception_come_back_as_from_a_direct_call(self):
        self.assertEqual(priority.run_lowered(lambda a, b: a + b, 2, 3, nice=1), 5)

        def fails():
            raise JobFailed("model files not found at /nowhere")

        with self.assertRaisesRegex(JobFailed, "model files not found at /nowhere"):
            priority.run_lowered(fails, nice=1)

    def test_outside_a_task_worker_the_function_is_called_directly(self):
        # The test process is the main process: the command line and inline clusters
        # run jobs like this, in the caller's thread.
        self.assertEqual(
            priority.in_background(lambda: threading.current_thread().name),
            threading.current_thread().name,
        )


@linux_only
@override_settings(IMAGEWORKS_JOB_NICENESS=7)
class BackgroundJobKindTests(TransactionTestCase):
    def setUp(self):
        for kind, background in (("demo-bg", True), ("demo-fg", False)):
            jobs.register(
                JobSpec(
                    kind,
                    report_priority,
                    "registry.sync_registry",
                    background=background,
                )
            )
            self.addCleanup(jobs.unregister, kind)

    def run_in_worker(self, kind: str) -> Job:
        job = Job.objects.create(kind=kind, entry_name="m1", status=JobStatus.QUEUED)
        child = multiprocessing.get_context("fork").Process(
            target=run_job_in_a_worker_process, args=(job.pk,)
        )
        connections.close_all()
        child.start()
        child.join(60)
        self.assertEqual(child.exitcode, 0)
        job.refresh_from_db()
        self.assertEqual(job.status, JobStatus.SUCCEEDED, job.error)
        return job

    def test_a_background_kind_runs_lowered_in_its_own_thread_and_the_worker_does_not(
        self,
    ):
        parent = os.getpriority(os.PRIO_PROCESS, os.getpid())
        job = self.run_in_worker("demo-bg")
        self.assertEqual(job.result["nice"], max(parent, 7))
        self.assertTrue(job.result["thread"].startswith("lowered"))
        # The worker process itself keeps its priority: a later activation job's vLLM
        # server must not inherit a lowered one.
        self.assertEqual(job.result["worker_nice"], parent)

    def test_other_kinds_such_as_activation_run_at_the_workers_priority(self):
        parent = os.getpriority(os.PRIO_PROCESS, os.getpid())
        job = self.run_in_worker("demo-fg")
        self.assertEqual(job.result["nice"], parent)
        self.assertEqual(job.result["thread"], "MainThread")

    def test_the_registry_s_heavy_kinds_are_background_and_activation_is_not(self):
        from registry.choices import JobKind

        background = {
            kind
            for kind in JobKind.values
            if jobs._SPECS.get(kind) is not None and jobs._SPECS[kind].background
        }
        self.assertEqual(
            background,
            {JobKind.SYNC, JobKind.VERIFY, JobKind.BULK, JobKind.RECONCILE_SCAN},
        )
