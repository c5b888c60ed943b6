"""Stop and switch with requests in flight (issue 13 §4), end to end against the fake
vLLM: its ``/metrics`` counts real completion requests (and staged ones), the drawer's
dialogs show how many, and the operator's choice (wait until idle, or stop now with
a reason) runs inside the stop or activate job and goes into the audit log. Both
ways are tested: draining lets the request complete, stopping now cuts it off.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

from django.test import TransactionTestCase
from django.urls import reverse

from backends.choices import ActivationState, RequestOutcome
from backends.models import Activation
from backends.vllm import drain, service
from registry.audit import Actor
from registry.choices import Action, JobStatus, Outcome
from registry.models import ActionLog, Job
from tests.api.helpers import bearer, make_token
from tests.backends.activation_fixtures import FakeVllmMixin, make_entry
from tests.backends.test_preflight_gate import run_cli
from tests.base import BaseTestCase

HTMX = {"HTTP_HX_REQUEST": "true"}
ACTOR = Actor.system("tester")


def post_json(url: str, body: dict, timeout: float = 10.0):
    req = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, json.loads(resp.read())


class InFlightMixin(FakeVllmMixin):
    """A running model A whose completions take 1.5 s (so they can be in flight)."""

    def setUp(self):
        super().setUp()
        self.fake_env(completion_delay=1.5)
        self.a = make_entry("model-a", self.weights)
        self.b = make_entry("model-b", self.weights)
        self.live = service.activate(self.a, ACTOR)
        self.url = f"http://127.0.0.1:{self.port}"

    def completion_in_flight(self):
        """Start one completion request on A and wait until /metrics counts it."""
        result: dict = {}

        def run():
            try:
                result["status"] = post_json(
                    self.url + "/v1/completions", {"model": "model-a", "prompt": "hi"}
                )[0]
            except (urllib.error.URLError, ConnectionError, OSError) as exc:
                result["error"] = exc

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 3
        while not drain.in_flight(self.url).busy:
            self.assertLess(time.monotonic(), deadline, "the request never ran")
            time.sleep(0.02)
        return thread, result

    def stage(self, **counts):
        post_json(self.url + "/_control", counts)

    def audit(self, action=Action.STOP) -> ActionLog:
        return ActionLog.objects.filter(action=action).first()


class StopViewTests(InFlightMixin, BaseTestCase):
    def post(self, url, data=None, user=None):
        with self.captureOnCommitCallbacks(execute=True):
            return self.client_for(user or self.operator).post(url, data or {}, **HTMX)

    def test_the_stop_dialog_names_the_model_who_started_it_and_when(self):
        page = self.client_for(self.operator).get(self.a.get_absolute_url())
        self.assertContains(page, 'data-testid="stop-dialog"')
        self.assertContains(page, 'Stop <span class="mono">model-a</span>?', html=False)
        self.assertContains(page, "Started by <strong>tester</strong> at")
        idle = self.client_for(self.operator).get(reverse("backends:stop_checks"))
        self.assertContains(idle, "No requests in flight on")
        self.assertNotContains(idle, 'name="in_flight"')

        self.stage(running=2, waiting=1)
        busy = self.client_for(self.operator).get(reverse("backends:stop_checks"))

        self.assertContains(busy, "2 requests running, 1 waiting")
        self.assertContains(busy, 'name="in_flight" value="wait" checked')
        self.assertContains(busy, 'name="in_flight" value="now"')
        self.assertContains(busy, 'name="drain_s" value="60"')
        self.assertContains(busy, 'name="reason"')

    def test_stop_without_a_choice_is_refused_while_requests_are_in_flight(self):
        self.stage(running=1)
        response = self.post(reverse("backends:stop"))
        self.assertEqual(response.status_code, 422)
        self.assertIn(
            "model-a is answering requests (1 request running", response["HX-Trigger"]
        )
        self.assertFalse(Job.objects.exists())
        self.assertEqual(Activation.objects.get(pk=self.live.pk).state, "running")

    def test_wait_until_idle_lets_the_request_complete(self):
        thread, result = self.completion_in_flight()

        response = self.post(
            reverse("backends:stop"),
            {"in_flight": "wait", "drain_s": "10", "reason": "nightly maintenance"},
        )

        self.assertEqual(response.status_code, 202)
        thread.join(5)
        self.assertEqual(result.get("status"), 200, result)  # answered, not cut off
        job = Job.objects.get(kind="stop")
        self.assertEqual(job.status, JobStatus.SUCCEEDED, job.error)
        self.assertEqual(job.params, {"drain_s": 10.0, "reason": "nightly maintenance"})
        row = self.audit()
        self.assertEqual(row.user_name, "alice")
        self.assertRegex(
            row.message, r"^Stopped model-a after its requests finished \("
        )
        self.assertIn("Reason: nightly maintenance", row.message)
        self.assertIs(row.details["drain"]["idle"], True)
        act = Activation.objects.get(pk=self.live.pk)
        self.assertEqual(act.state, ActivationState.STOPPED)
        self.assertEqual(act.error, "Stopped by alice: nightly maintenance")

    def test_stop_now_cuts_the_request_off_and_needs_a_reason(self):
        thread, result = self.completion_in_flight()
        refused = self.post(reverse("backends:stop"), {"in_flight": "now"})
        self.assertEqual(refused.status_code, 422)
        self.assertIn("needs a reason", refused["HX-Trigger"])

        response = self.post(
            reverse("backends:stop"), {"in_flight": "now", "reason": "GPU is on fire"}
        )

        self.assertEqual(response.status_code, 202)
        thread.join(5)
        self.assertIn("error", result)  # the client lost its request
        row = self.audit()
        self.assertEqual(row.outcome, Outcome.SUCCEEDED)
        self.assertIn("with 1 request running, 0 waiting cut off", row.message)
        self.assertEqual(row.details["reason"], "GPU is on fire")
        self.assertTrue(row.details["stopped_now"])

    def test_replacing_a_busy_model_asks_too_and_can_wait(self):
        self.stage(running=1)
        checks = self.client_for(self.operator).get(
            reverse("backends:activate_checks", args=[self.b.pk])
        )
        self.assertContains(checks, "1 request running, 0 waiting")
        refused = self.post(reverse("backends:activate", args=[self.b.pk]))
        self.assertEqual(refused.status_code, 422)
        self.assertIn("model-a is answering requests", refused["HX-Trigger"])
        self.stage(running=0)
        thread, result = self.completion_in_flight()

        response = self.post(
            reverse("backends:activate", args=[self.b.pk]),
            {"in_flight": "wait", "drain_s": "10", "reason": "switch to B"},
        )

        self.assertEqual(response.status_code, 202)
        thread.join(5)
        self.assertEqual(result.get("status"), 200, result)
        job = Job.objects.get(kind="activate")
        self.assertEqual(job.status, JobStatus.SUCCEEDED, job.error)
        row = self.audit(Action.ACTIVATE)
        self.assertIn("replacing model-a after its requests finished", row.message)
        self.assertEqual(row.details["reason"], "switch to B")
        live = service.live_activation()
        self.assertEqual((live.logical_name, live.state), ("model-b", "running"))
        service.stop(ACTOR)

    def test_replacing_now_cuts_the_request(self):
        thread, result = self.completion_in_flight()
        response = self.post(
            reverse("backends:activate", args=[self.b.pk]),
            {"in_flight": "now", "reason": "B is needed now"},
        )
        self.assertEqual(response.status_code, 202)
        thread.join(5)
        self.assertIn("error", result)
        self.assertIn(
            "replacing model-a with 1 request running, 0 waiting cut off",
            self.audit(Action.ACTIVATE).message,
        )
        service.stop(ACTOR)


class DrainServiceTests(InFlightMixin, TransactionTestCase):
    def test_a_wait_that_runs_out_stops_anyway_and_says_what_was_cut(self):
        self.stage(running=2, waiting=1)
        notes: list[str] = []
        stopped = service.stop(
            ACTOR, options=service.SlotOptions(drain_s=1.0), notify=notes.append
        )
        self.assertEqual(stopped.state, ActivationState.STOPPED)
        self.assertIn(
            "after waiting 1s (2 requests running, 1 waiting cut off)",
            self.audit().message,
        )
        self.assertTrue(
            any(n.startswith("Waiting for 2 requests running") for n in notes), notes
        )

    def test_cancelling_the_job_during_the_wait_keeps_the_model_running(self):
        self.stage(running=1)
        job = Job.objects.create(kind="stop", status=JobStatus.RUNNING, user_name="bob")
        outcome: dict = {}

        def run():
            try:
                service.stop(ACTOR, job=job, options=service.SlotOptions(drain_s=30))
            except service.ActivationError as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 5
        while Activation.objects.get(pk=self.live.pk).state != "stopping":
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.05)
        Job.objects.filter(pk=job.pk).update(status=JobStatus.CANCELLED)
        thread.join(10)

        self.assertIsInstance(outcome.get("error"), service.DrainCancelled)
        act = Activation.objects.get(pk=self.live.pk)
        self.assertEqual((act.state, act.error), ("running", ""))
        self.assertTrue(drain.in_flight(self.url).known)  # still serving
        self.assertEqual(self.audit().outcome, Outcome.FAILED)
        service.stop(ACTOR, options=service.SlotOptions(force=True, reason="cleanup"))


class CliAndApiTests(InFlightMixin, BaseTestCase):
    def test_cli_stop_refuses_then_drains_or_forces(self):
        self.stage(running=1)
        code, out, err = run_cli("activate-model", "--stop")
        self.assertEqual((code, out), (1, ""))
        self.assertIn(
            "model-a is answering requests (1 request running, 0 waiting)", err
        )
        self.assertIn("activate-model --stop --drain SECONDS", err)
        self.assertIn("activate-model --stop --force --reason TEXT", err)
        self.assertEqual(run_cli("activate-model", "--stop", "--force")[0], 2)
        self.stage(running=0)
        thread, result = self.completion_in_flight()

        code, out, err = run_cli("activate-model", "--stop", "--drain", "10")

        self.assertEqual((code, out), (0, "Stopped active vLLM instance.\n"), err)
        self.assertIn("Waiting for 1 request running, 0 waiting on model-a", err)
        self.assertIn("Idle after", err)
        thread.join(5)
        self.assertEqual(result.get("status"), 200)
        self.assertEqual(self.audit().source, "cli")

    def test_cli_force_with_reason_and_replace(self):
        self.stage(running=1)
        code, _, err = run_cli("activate-model", "model-b")
        self.assertEqual(code, 1)
        self.assertIn("activate-model model-b --drain SECONDS", err)
        code, out, err = run_cli(
            "activate-model", "model-b", "--force", "--reason", "urgent eval"
        )
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["logical_name"], "model-b")
        row = self.audit(Action.ACTIVATE)
        self.assertIn("with 1 request running, 0 waiting cut off", row.message)
        self.assertEqual(row.details["reason"], "urgent eval")
        service.stop(ACTOR)

    def test_rest_stop_and_activate_take_the_same_choices(self):
        secret = make_token(self.operator, scope="operate")
        api = self.client

        def call(path, body=None):
            with self.captureOnCommitCallbacks(execute=True):
                return api.post(
                    path,
                    json.dumps(body) if body is not None else "",
                    content_type="application/json",
                    **bearer(secret),
                )

        self.stage(running=1)
        refused = call("/api/v1/vllm/stop")
        self.assertEqual(refused.status_code, 422)
        self.assertIn("model-a is answering requests", refused.json()["detail"])
        no_reason = call(f"/api/v1/entries/{self.b.pk}/activate", {"force": True})
        self.assertEqual(no_reason.status_code, 422)
        self.assertIn("needs a reason", no_reason.json()["detail"])

        ok = call(
            f"/api/v1/entries/{self.b.pk}/activate",
            {"force": True, "reason": "api switch"},
        )

        self.assertEqual(ok.status_code, 202, ok.content)
        job = Job.objects.get(pk=ok.json()["job"]["id"])
        self.assertEqual(job.status, JobStatus.SUCCEEDED, job.error)
        row = self.audit(Action.ACTIVATE)
        self.assertEqual(row.source, "api")
        self.assertEqual(row.details["reason"], "api switch")
        stopped = call("/api/v1/vllm/stop", {"drain_seconds": 5})
        self.assertEqual(stopped.status_code, 202)
        self.assertEqual(service.live_activation(), None)

    def test_request_outcome_carries_the_reading(self):
        self.stage(running=3)
        answer = service.request_stop(ACTOR)
        self.assertEqual(answer.outcome, RequestOutcome.REFUSED)
        self.assertEqual(answer.in_flight.running, 3)
