"""Activation views: permission matrix, refusals, htmx status polling, end to end."""

from __future__ import annotations

from unittest import mock

from django.contrib.messages import get_messages
from django.urls import reverse

from backends.choices import ActivationState
from backends.models import Activation
from backends.vllm import service
from registry.models import ActionLog, Job
from registry.services.verify import GateResult
from tests.backends.activation_fixtures import FakeVllmMixin, make_entry
from tests.base import BaseTestCase, PermissionMatrixMixin

HTMX = {"HTTP_HX_REQUEST": "true"}


class ActivationViewTests(FakeVllmMixin, PermissionMatrixMixin, BaseTestCase):
    def setUp(self):
        super().setUp()
        self.entry = make_entry("org/model-a (FP8)", self.weights)
        self.ollama = make_entry("llava:13b", self.weights, backend="ollama")

    def post(self, user, url, data=None, **extra):
        with self.captureOnCommitCallbacks(execute=True):
            return self.client_for(user).post(url, data or {}, **extra)

    def test_activate_permission_matrix(self):
        url = reverse("backends:activate", args=[self.entry.pk])
        with mock.patch("backends.tasks.enqueue_activation") as enqueue:
            enqueue.side_effect = lambda entry, actor: Job.objects.create(
                kind="activate", entry_name=entry.name
            )
            self.assert_post_matrix(
                url,
                allowed=[self.operator],
                forbidden=[self.viewer, self.editor, self.outsider],
            )
            self.assertEqual(enqueue.call_count, 1)
            self.assertEqual(enqueue.call_args.args[1].name, "alice")

    def test_stop_permission_matrix(self):
        url = reverse("backends:stop")
        with mock.patch("backends.tasks.enqueue_stop") as enqueue:
            enqueue.side_effect = lambda actor, name="": Job.objects.create(kind="stop")
            self.assert_post_matrix(
                url,
                allowed=[self.operator],
                forbidden=[self.viewer, self.editor, self.outsider],
            )

    def test_read_views_need_view_permission(self):
        for url in (reverse("backends:status"), reverse("backends:history")):
            self.assert_get_matrix(
                url, allowed=[self.viewer, self.operator], forbidden=[self.outsider]
            )
            self.assert_method_not_allowed(self.operator, url, "post")

    def test_non_vllm_entry_refused_with_reason(self):
        url = reverse("backends:activate", args=[self.ollama.pk])
        response = self.post(self.operator, url, **HTMX)
        self.assertEqual(response.status_code, 422)
        self.assertContains(
            response, "Only vLLM models can be activated", status_code=422
        )
        self.assertFalse(Job.objects.exists())

    def test_busy_slot_names_who_is_activating_what(self):
        Activation.objects.create(
            logical_name="other-model",
            served_model_id="other-model",
            port=self.port,
            user_name="bob",
        )
        response = self.post(
            self.operator, reverse("backends:activate", args=[self.entry.pk]), **HTMX
        )
        self.assertEqual(response.status_code, 409)
        self.assertContains(
            response, "bob is already activating other-model.", status_code=409
        )

    def test_queued_job_holds_the_slot_for_everyone(self):
        Job.objects.create(
            kind="activate", status="queued", user_name="bob", entry_name="other-model"
        )
        response = self.post(
            self.operator, reverse("backends:activate", args=[self.entry.pk]), **HTMX
        )
        self.assertEqual(response.status_code, 409)
        self.assertContains(
            response, "bob is already activating other-model.", status_code=409
        )
        self.assertEqual(Job.objects.count(), 1)
        Job.objects.update(kind="stop", entry_name="")
        response = self.post(
            self.operator, reverse("backends:activate", args=[self.entry.pk])
        )
        self.assertRedirects(
            response, self.entry.get_absolute_url(), fetch_redirect_response=False
        )
        self.assertIn(
            "bob is already stopping the active model.",
            [str(m) for m in get_messages(response.wsgi_request)],
        )
        self.assertEqual(Job.objects.count(), 1)

    def test_drawer_panel_shows_command_cli_and_disabled_reasons(self):
        from django.template.loader import render_to_string
        from django.test import RequestFactory

        request = RequestFactory().get("/")
        request.user = self.operator
        from django.contrib.auth.context_processors import PermWrapper

        html = render_to_string(
            "backends/drawer_activation.html",
            {"entry": self.entry, "perms": PermWrapper(self.operator)},
            request,
        )
        self.assertIn("<dialog", html)
        self.assertIn(
            "imageworks-models activate-model &#x27;org/model-a (FP8)&#x27;", html
        )
        self.assertIn("--served-model-name", html)
        self.assertIn('data-shortcut="activate"', html)
        html = render_to_string(
            "backends/drawer_activation.html",
            {"entry": self.ollama, "perms": PermWrapper(self.operator)},
            request,
        )
        self.assertIn(
            'disabled aria-disabled="true" data-shortcut="activate" data-reason="Only vLLM models can be activated"',
            html,
        )
        with mock.patch(
            "backends.vllm.prepare.lock_gate",
            return_value=GateResult(False, "hash mismatch"),
        ):
            html = render_to_string(
                "backends/drawer_activation.html",
                {"entry": self.entry, "perms": PermWrapper(self.operator)},
                request,
            )
        self.assertIn("hash mismatch", html)
        self.assertIn(">Verify</button>", html)
        html = render_to_string(
            "backends/drawer_activation.html",
            {"entry": self.entry, "perms": PermWrapper(self.viewer)},
            request,
        )
        self.assertNotIn("<dialog", html)

    def test_activate_then_status_then_stop_end_to_end(self):
        self.fake_env(ready_delay=0.2)
        response = self.post(
            self.operator, reverse("backends:activate", args=[self.entry.pk]), **HTMX
        )
        self.assertEqual(response.status_code, 202)
        job = Job.objects.get(kind="activate")
        self.assertEqual(job.status, "succeeded", job.error)
        act = Activation.objects.get()
        self.assertEqual(act.state, ActivationState.RUNNING)
        self.assertEqual(act.user_name, "alice")

        status_url = reverse("backends:status") + f"?entry={self.entry.pk}"
        viewer = self.client_for(self.viewer)
        response = viewer.get(status_url, **HTMX)
        self.assertEqual(response.status_code, 286)  # terminal: stop the fast poll
        self.assertContains(response, "Active", status_code=286)
        self.assertContains(response, 'hx-trigger="every 5s"', status_code=286)
        token = service.status().token
        self.assertEqual(
            viewer.get(status_url + f"&since={token}", **HTMX).status_code, 204
        )

        response = self.post(
            self.operator, reverse("backends:stop"), {"entry": self.entry.pk}, **HTMX
        )
        self.assertEqual(response.status_code, 202)
        act.refresh_from_db()
        self.assertEqual(act.state, ActivationState.STOPPED)
        # The watcher sees the change on its next poll.
        response = viewer.get(status_url + f"&since={token}", **HTMX)
        self.assertContains(response, "No model active")
        self.assertEqual(
            sorted(
                ActionLog.objects.filter(action__in=["activate", "stop"]).values_list(
                    "action", "user_name"
                )
            ),
            [("activate", "alice"), ("stop", "alice")],
        )
        log = viewer.get(reverse("backends:log_tail", args=[act.pk]))
        self.assertContains(log, "fake vLLM model=")
        history = viewer.get(reverse("backends:history"))
        self.assertContains(history, "org/model-a (FP8)")

    def test_status_while_activating_polls_every_second(self):
        Activation.objects.create(
            logical_name=self.entry.name,
            served_model_id="x",
            port=self.port,
            user_name="bob",
            entry=self.entry,
        )
        response = self.client_for(self.viewer).get(reverse("backends:status"), **HTMX)
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "Activating…")
        self.assertContains(response, 'hx-trigger="every 1s"')
        from django.template.loader import render_to_string

        html = render_to_string("backends/active_badge.html", {"entry": self.entry})
        self.assertIn("Activating…", html)
        self.assertEqual(
            render_to_string(
                "backends/active_badge.html", {"entry": self.ollama}
            ).strip(),
            "",
        )

    def test_failed_job_error_is_shown(self):
        self.fake_env(crash_during_start=4)
        response = self.post(
            self.operator, reverse("backends:activate", args=[self.entry.pk]), **HTMX
        )
        job = Job.objects.get(kind="activate")
        self.assertEqual(job.status, "failed")
        self.assertIn("exited early (code 4)", job.error)
        response = self.client_for(self.operator).get(
            reverse("backends:status") + f"?job={job.pk}", **HTMX
        )
        self.assertContains(response, "exited early (code 4)", status_code=286)
        self.assertContains(response, "Failed", status_code=286)
