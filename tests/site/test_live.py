"""The live-panel poll (/live/): 304 while nothing changed, the right events when
something did, whoever changed it; constant queries (issue 15 item 2)."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from backends.choices import BackendKind, HealthStatus
from backends.models import BackendEndpoint
from registry.audit import Actor, audited, record
from registry.choices import Action
from registry.version import bump
from tests.base import BaseTestCase
from tests.utils import create_model_entry

URL = reverse("live")


class LivePollTests(BaseTestCase):
    def setUp(self):
        self.client = self.client_for(self.viewer)

    def poll(self, token: str = ""):
        headers = {"HTTP_IF_NONE_MATCH": f'"{token}"'} if token else {}
        return self.client.get(URL, **headers)

    def baseline(self) -> str:
        response = self.poll()
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json()["events"], [])
        self.assertEqual(response["ETag"], f'"{response.json()["token"]}"')
        return response.json()["token"]

    def test_nothing_changed_is_a_304_without_a_body(self):
        token = self.baseline()
        response = self.poll(token)
        self.assertEqual(response.status_code, 304)
        self.assertEqual(response.content, b"")
        self.assertEqual(response["ETag"], f'"{token}"')

    def test_an_entry_change_fires_entry_changed_only(self):
        token = self.baseline()
        create_model_entry("new-model")  # bumps the registry version like sync
        response = self.poll(token)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json()["events"], ["entryChanged"])
        self.assertEqual(self.poll(response.json()["token"]).status_code, 304)

    def test_an_action_from_the_cli_fires_actions_changed(self):
        token = self.baseline()
        record(Actor.cli(), Action.VERIFY, entry_name="x")
        self.assertEqual(self.poll(token).json()["events"], ["actionsChanged"])

    def test_a_running_action_that_finishes_fires_again(self):
        with audited(Actor.system("worker"), Action.VERIFY, entry_name="x"):
            token = self.baseline()
        # Same newest row, now finished: Recent actions must show the outcome.
        self.assertEqual(self.poll(token).json()["events"], ["actionsChanged"])

    def test_a_health_result_fires_health_changed(self):
        token = self.baseline()
        BackendEndpoint.objects.create(
            key="vllm:active",
            kind=BackendKind.VLLM,
            label="vLLM",
            status=HealthStatus.ONLINE,
            last_checked=timezone.now(),
        )
        self.assertEqual(self.poll(token).json()["events"], ["healthChanged"])

    def test_signed_out_pages_are_refused(self):
        from django.test import Client

        response = Client().get(URL)
        self.assertEqual(response.status_code, 302)

    def test_queries_per_poll_do_not_grow_with_the_registry(self):
        def count() -> int:
            token = self.poll().json()["token"]
            with CaptureQueriesContext(connection) as ctx:
                self.assertEqual(self.poll(token).status_code, 304)
            return len(ctx.captured_queries)

        small = count()
        for i in range(30):
            create_model_entry(f"m{i}")
            record(Actor.cli(), Action.EDIT, entry_name=f"m{i}")
        bump()
        self.assertEqual(count(), small)
        self.assertLessEqual(small, 6)  # session, user, version, 2 audit, health

    def test_pages_carry_the_poll_url(self):
        html = self.client.get(reverse("registry:modelentry_list")).content.decode()
        self.assertIn(f'data-live-url="{URL}"', html)
        self.assertIn('hx-trigger="load, actionsChanged from:body"', html)
        self.assertIn('hx-trigger="load, entryChanged from:body"', html)


class ActivationChecksHealthTests(BaseTestCase):
    def test_a_stop_checks_vllm_at_once_and_the_poll_says_so(self):
        from backends.vllm import service

        client = self.client_for(self.viewer)
        token = client.get(URL).json()["token"]
        answer = service.request_stop(Actor.cli(), wait=True)
        self.assertEqual(answer.outcome, service.RequestOutcome.DONE)
        row = BackendEndpoint.objects.get(key="vllm:active")
        self.assertIsNotNone(row.last_checked)  # checked now, not at the next schedule
        self.assertEqual(row.status, HealthStatus.NOT_CONFIGURED)
        events = client.get(URL, HTTP_IF_NONE_MATCH=f'"{token}"').json()["events"]
        self.assertIn("healthChanged", events)


class VllmCardFollowsTheSlotTests(BaseTestCase):
    """A card read right after an activation became ready re-checks vLLM at once,
    instead of saying "Not configured" next to the active model until the schedule."""

    def setUp(self):
        BackendEndpoint.objects.create(
            key="vllm:active",
            kind=BackendKind.VLLM,
            label="vLLM (active model)",
            status=HealthStatus.NOT_CONFIGURED,
            last_checked=timezone.now(),
            details={"configured": True, "activation": None},
        )

    def refresh(self) -> bool:
        from unittest import mock

        from backends.health import check

        with mock.patch.object(check, "check_all") as check_all:
            ran = check.refresh_if_stale(["vllm"], max_age=600)
        self.assertEqual(ran, check_all.called)
        return ran

    def test_fresh_results_for_the_same_slot_are_kept(self):
        self.assertFalse(self.refresh())

    def test_a_model_that_became_ready_since_is_checked_now(self):
        from backends.choices import ActivationState
        from backends.models import Activation
        from backends.vllm import service

        Activation.objects.create(
            slot=service.SLOT,
            logical_name="qwen",
            served_model_id="qwen",
            state=ActivationState.RUNNING,
            user_name="alice",
            command=["vllm"],
            port=24001,
            pid=1,
            started_at=timezone.now(),
            ready_at=timezone.now(),
        )
        self.assertTrue(self.refresh())
