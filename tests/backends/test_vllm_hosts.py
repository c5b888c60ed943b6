"""Per-host vLLM activation: queue routing, and pids judged only on their own machine.

The activation on "GPU host B" is a real fake-vLLM process on this machine; which
machine a process believes it is on comes from ``IMAGEWORKS_HOST_NAME``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from io import StringIO
from unittest import mock

from django.core.management import call_command
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from backends import health, tasks
from backends.choices import ActivationState, HealthStatus
from backends.models import Activation
from backends.vllm import service, statefile
from backends.vllm.command import VllmConfig
from registry.audit import Actor
from registry.models import ActionLog, Job
from tests.backends.activation_fixtures import FakeVllmMixin, make_entry
from tests.backends.vllm_helpers import fake_processes, free_port, wait_until
from tests.base import BaseTestCase

ACTOR = Actor.system("tester")
HTMX = {"HTTP_HX_REQUEST": "true"}


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def running_row(name: str, *, host_name: str, pid: int, port: int, base_url=""):
    now = timezone.now()
    return Activation.objects.create(
        slot=service.SLOT,
        logical_name=name,
        served_model_id=name,
        state=ActivationState.RUNNING,
        user_name="bob",
        command=["vllm", "serve", name],
        port=port,
        pid=pid,
        pgid=pid,
        create_time=1.0,
        cmdline_hash="0" * 64,
        host_name=host_name,
        base_url=base_url,
        started_at=now,
        ready_at=now,
    )


class QueueRoutingTests(FakeVllmMixin, BaseTestCase):
    """Which django-q2 queue each job is handed to (``async_task(..., cluster=)``)."""

    def setUp(self):
        super().setUp()
        self.entry = make_entry("org/model-a (FP8)", self.weights)
        patcher = mock.patch(
            "django_q.tasks.async_task", autospec=True, return_value="t-1"
        )
        self.async_task = patcher.start()
        self.addCleanup(patcher.stop)

    def post(self, url):
        with self.captureOnCommitCallbacks(execute=True):
            return self.client_for(self.operator).post(url, {}, **HTMX)

    def submitted(self) -> dict:
        """kind -> the keyword arguments its job was handed to django-q2 with."""
        return {
            Job.objects.get(pk=c.args[1]).kind: c.kwargs
            for c in self.async_task.call_args_list
        }

    @override_settings(IMAGEWORKS_VLLM_QUEUE="gpu-b")
    def test_it_sends_activate_and_stop_to_the_gpu_queue_and_verify_to_the_site(self):
        self.assertEqual(
            self.post(reverse("backends:activate", args=[self.entry.pk])).status_code,
            202,
        )
        Job.objects.update(status="succeeded")  # let the stop through
        self.post(reverse("backends:stop"))
        self.post(reverse("registry:entry_verify", args=[self.entry.pk]))
        sent = self.submitted()
        self.assertEqual(set(sent), {"activate", "stop", "verify"})
        self.assertEqual(sent["activate"]["cluster"], "gpu-b")
        self.assertEqual(sent["stop"]["cluster"], "gpu-b")
        self.assertNotIn("cluster", sent["verify"])  # the site queue
        job = Job.objects.get(kind="activate")
        self.assertEqual(
            job.message, f"Queued: activate {self.entry.name} (queue gpu-b)"
        )
        self.assertEqual(job.task_id, "t-1")

    def test_it_keeps_everything_on_the_site_queue_without_a_gpu_queue(self):
        self.post(reverse("backends:activate", args=[self.entry.pk]))
        sent = self.submitted()
        self.assertEqual(set(sent), {"activate"})
        self.assertNotIn("cluster", sent["activate"])
        self.assertEqual(
            Job.objects.get(kind="activate").message,
            f"Queued: activate {self.entry.name}",
        )

    @override_settings(IMAGEWORKS_VLLM_QUEUE="gpu-b")
    def test_it_schedules_reconcile_on_the_gpu_queue_and_removes_it_without_one(self):
        from django_q.models import Schedule

        schedule = tasks.ensure_reconcile_schedule()
        tasks.ensure_reconcile_schedule()  # idempotent
        row = Schedule.objects.get(name=tasks.RECONCILE_SCHEDULE)
        self.assertEqual(
            (row.pk, row.cluster, row.func, row.minutes),
            (schedule.pk, "gpu-b", tasks.RECONCILE_TASK, 1),
        )
        with self.settings(IMAGEWORKS_VLLM_QUEUE=""):
            self.assertIsNone(tasks.ensure_reconcile_schedule())
        self.assertFalse(
            Schedule.objects.filter(name=tasks.RECONCILE_SCHEDULE).exists()
        )


class AdvertisedUrlTests(BaseTestCase):
    @override_settings(IMAGEWORKS_HOST_NAME="gpu-b")
    def test_it_records_an_address_other_hosts_can_reach_or_none(self):
        def url(**kw):
            return service.advertised_url(VllmConfig(**kw), 24001)

        self.assertEqual(url(host="127.0.0.1"), "")  # loopback only
        self.assertEqual(url(host="0.0.0.0"), "http://gpu-b:24001")
        self.assertEqual(url(host="10.0.0.7"), "http://10.0.0.7:24001")
        self.assertEqual(
            url(host="0.0.0.0", connect_host="gpu-b.lan"), "http://gpu-b.lan:24001"
        )


class ReconcileAcrossHostsTests(FakeVllmMixin, BaseTestCase):
    """Reconciliation on web host A vs. the server started on GPU host B."""

    def setUp(self):
        super().setUp()
        self.state_path.parent.mkdir(parents=True, exist_ok=True)

    def write_state(self, act):
        statefile.write_state(self.state_path, service.state_dict(act))

    def reconcile_as(self, host: str, **more) -> list[str]:
        with self.settings(IMAGEWORKS_HOST_NAME=host, **more):
            return service.adopt_or_clean()

    def test_it_leaves_another_hosts_activation_alone_and_marks_its_own_dead(self):
        pid = dead_pid()
        act = running_row("b-model", host_name="gpu-b", pid=pid, port=self.port)
        self.write_state(act)

        lines = self.reconcile_as("web-a")
        act.refresh_from_db()
        self.assertEqual(act.state, ActivationState.RUNNING)
        self.assertTrue(self.state_path.exists())
        self.assertEqual(len(lines), 1)
        self.assertIn("b-model is running on host gpu-b; checked from there", lines[0])
        self.assertFalse(ActionLog.objects.filter(action="reconcile").exists())
        # current() (CLI current-model, dashboard) still reports B's model.
        with self.settings(IMAGEWORKS_HOST_NAME="web-a"):
            self.assertEqual(service.current()["logical_name"], "b-model")

        # The same dead pid, judged on the machine that owns it: found dead.
        lines = self.reconcile_as("gpu-b")
        act.refresh_from_db()
        self.assertEqual(act.state, ActivationState.FAILED)
        self.assertIn("found dead", act.error)
        self.assertFalse(self.state_path.exists())
        self.assertIn(f"b-model (pid {pid}) is no longer running", lines[0])
        self.assertTrue(ActionLog.objects.filter(action="reconcile").exists())

    def test_it_marks_a_dead_server_it_launched_itself(self):
        act = running_row("a-model", host_name="web-a", pid=dead_pid(), port=self.port)
        self.write_state(act)
        self.reconcile_as("web-a")
        act.refresh_from_db()
        self.assertEqual(act.state, ActivationState.FAILED)
        self.assertFalse(self.state_path.exists())

    def test_it_judges_rows_from_before_hosts_were_recorded_locally(self):
        act = running_row("old-model", host_name="", pid=dead_pid(), port=self.port)
        self.reconcile_as("web-a")
        act.refresh_from_db()
        self.assertEqual(act.state, ActivationState.FAILED)

    def test_it_refuses_to_stop_or_replace_another_hosts_server(self):
        act = running_row("b-model", host_name="gpu-b", pid=dead_pid(), port=self.port)
        other = make_entry("other", self.weights)
        with self.settings(IMAGEWORKS_HOST_NAME="web-a"):
            with self.assertRaisesMessage(
                service.ActivationRefused, "b-model is running on host gpu-b"
            ):
                service.stop(ACTOR)
            with self.assertRaisesMessage(
                service.ActivationRefused, "can only be replaced from there"
            ):
                service.activate(other, ACTOR)
        act.refresh_from_db()
        self.assertEqual(act.state, ActivationState.RUNNING)
        self.assertEqual(fake_processes(), [])  # A started nothing

    def test_status_partial_says_where_the_server_runs(self):
        running_row("b-model", host_name="gpu-b", pid=dead_pid(), port=self.port)
        with self.settings(IMAGEWORKS_HOST_NAME="web-a"):
            page = self.client_for(self.viewer).get(reverse("backends:status"))
        self.assertContains(page, "running on host gpu-b; checked from there")
        with self.settings(IMAGEWORKS_HOST_NAME="gpu-b"):
            page = self.client_for(self.viewer).get(reverse("backends:status"))
        self.assertNotContains(page, "checked from there")

    def test_a_state_file_without_a_live_row_is_left_to_the_gpu_queue(self):
        state = statefile.make_state(
            logical_name="ghost",
            served_model_id="ghost",
            port=self.port,
            pid=dead_pid(),
            started_at=1.0,
        )
        statefile.write_state(self.state_path, state)
        lines = self.reconcile_as("web-a", IMAGEWORKS_VLLM_QUEUE="gpu-b")
        self.assertTrue(self.state_path.exists())
        self.assertIn("left for the worker of queue gpu-b", lines[0])
        # Single-queue site (today's behaviour): the stale file is removed here.
        lines = self.reconcile_as("web-a")
        self.assertFalse(self.state_path.exists())
        self.assertIn("Removed stale state file for ghost", lines[0])

    def test_release_host_frees_the_slot_of_a_host_that_is_gone(self):
        act = running_row("b-model", host_name="gpu-b", pid=dead_pid(), port=self.port)
        self.write_state(act)
        with self.settings(IMAGEWORKS_HOST_NAME="web-a"):
            with self.assertRaisesMessage(service.ActivationRefused, "this host"):
                service.release_host("web-a", ACTOR)
            lines = service.release_host("gpu-b", ACTOR)
        act.refresh_from_db()
        self.assertEqual(act.state, ActivationState.FAILED)
        self.assertEqual(act.error, "Released by tester: host gpu-b is gone.")
        self.assertFalse(self.state_path.exists())
        self.assertEqual(lines, ["Released b-model (running on host gpu-b)."])
        self.assertEqual(
            ActionLog.objects.get(action="reconcile").message,
            "Released b-model (running on host gpu-b).",
        )

    def test_reconcile_task_on_the_gpu_host_clears_its_dead_server(self):
        act = running_row("b-model", host_name="gpu-b", pid=dead_pid(), port=self.port)
        with self.settings(IMAGEWORKS_HOST_NAME="gpu-b"):
            result = tasks.reconcile_vllm()
        act.refresh_from_db()
        self.assertEqual(act.state, ActivationState.FAILED)
        self.assertEqual(result["host"], "gpu-b")
        self.assertIn("no longer running", result["actions"][0])


class RemoteServerOverHttpTests(FakeVllmMixin, BaseTestCase):
    """A real server launched "on gpu host" (host name localhost, bound to 0.0.0.0)."""

    def setUp(self):
        super().setUp()
        self.gpu = self.settings(IMAGEWORKS_HOST_NAME="localhost")
        self.web = self.settings(IMAGEWORKS_HOST_NAME="web-a")

    def activate_on_gpu_host(self):
        self.fake_env(ready_delay=0.2)
        entry = make_entry("org/remote-model", self.weights)
        with self.gpu, self.settings(IMAGEWORKS_VLLM_HOST="0.0.0.0"):
            act = service.activate(entry, ACTOR)
        self.assertEqual(act.host_name, "localhost")
        self.assertEqual(act.base_url, f"http://localhost:{self.port}")
        return act

    def test_it_asks_the_server_over_http_and_never_touches_its_row(self):
        act = self.activate_on_gpu_host()
        with self.web:
            lines = service.adopt_or_clean()
        self.assertEqual(
            lines,
            [
                f"org/remote-model is running on host localhost; answers at "
                f"http://localhost:{self.port}."
            ],
        )

        # The server dies on the GPU host: web host A sees it, but leaves the row.
        for proc in fake_processes():
            proc.kill()
        self.assertTrue(wait_until(lambda: not fake_processes()))
        with self.web:
            lines = service.adopt_or_clean()
        act.refresh_from_db()
        self.assertEqual(act.state, ActivationState.RUNNING)
        self.assertTrue(self.state_path.exists())
        self.assertIn("but does not answer at", lines[0])
        self.assertIn("left to localhost, which checks it from there", lines[0])

        # Its own host finds it dead and cleans up.
        with self.gpu:
            service.adopt_or_clean()
        act.refresh_from_db()
        self.assertEqual(act.state, ActivationState.FAILED)
        self.assertFalse(self.state_path.exists())

    def test_health_check_on_another_host_probes_the_recorded_address(self):
        self.activate_on_gpu_host()
        with self.web:
            row = health.check_all(["vllm"]).endpoints[0]
        self.assertEqual(row.status, HealthStatus.ONLINE)
        self.assertEqual(row.url, f"http://localhost:{self.port}")
        self.assertEqual(row.details["activation"]["host_name"], "localhost")

    def test_health_check_without_an_address_does_not_guess(self):
        # A server on gpu-b bound to loopback; this machine's port is free.
        running_row("b-model", host_name="gpu-b", pid=dead_pid(), port=free_port())
        with self.web:
            row = health.check_all(["vllm"]).endpoints[0]
        self.assertEqual(row.status, HealthStatus.UNKNOWN)
        self.assertIn("running on host gpu-b; checked from there", row.details["note"])
        self.assertEqual(
            Activation.objects.get(logical_name="b-model").state,
            ActivationState.RUNNING,
        )

    def test_vllm_reconcile_on_another_host_reports_instead_of_cleaning(self):
        act = self.activate_on_gpu_host()
        for proc in fake_processes():
            proc.kill()
        self.assertTrue(wait_until(lambda: not fake_processes()))
        out = StringIO()
        with self.web:
            call_command("vllm_reconcile", stdout=out)
        first, rest = out.getvalue().split("\n", 1)
        self.assertIn("org/remote-model is running on host localhost but", first)
        self.assertEqual(json.loads(rest)["pid"], act.pid)  # still the current model
        act.refresh_from_db()
        self.assertEqual(act.state, ActivationState.RUNNING)
