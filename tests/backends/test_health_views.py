"""Health views: permissions, the card partial, "Check now", history, active model."""

from __future__ import annotations

import json
from unittest import mock

from django.test import TestCase, override_settings
from django.urls import reverse

from backends import health
from backends.models import BackendEndpoint, HealthTransition
from tests.base import PermissionMatrixMixin
from tests.fakes.fake_ollama import FakeOllama
from tests.fakes.fake_openai import FakeOpenAI
from tests.utils import create_model_entry


@override_settings(IMAGEWORKS_HEALTH_TIMEOUT=0.5, IMAGEWORKS_OLLAMA_URL="")
class HealthViewTests(PermissionMatrixMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.make_personas()

    def setUp(self):
        self.fake = FakeOllama(
            installed=["qwen3:8b", "extra:1b"], loaded=["qwen3:8b"]
        ).start()
        self.addCleanup(self.fake.stop)
        host, port = self.fake.url.removeprefix("http://").split(":")
        create_model_entry(
            "qwen3_8b_(Q4_K_M)",
            backend="ollama",
            served_model_id="qwen3:8b",
            backend_config={"host": host, "port": int(port)},
        )
        create_model_entry(
            "missing",
            backend="ollama",
            served_model_id="gone:7b",
            backend_config={"host": host, "port": int(port)},
        )
        self.override = override_settings(IMAGEWORKS_OLLAMA_URL=self.fake.url)
        self.override.enable()
        self.addCleanup(self.override.disable)

    def test_read_views_need_login_and_the_viewer_permission(self):
        for url in [
            reverse("health:overview"),
            reverse("health:card", args=["ollama"]),
            reverse("health:history"),
            reverse("health:active_model"),
            reverse("health:status_json"),
        ]:
            self.assert_login_required(url)
            self.assert_forbidden(self.outsider, url)
            for user in (self.viewer, self.operator, self.editor, self.admin):
                self.assert_allowed(user, url, ok=(200,))
            self.assert_method_not_allowed(self.viewer, url, "post")

    def test_check_now_is_post_only_for_any_role(self):
        for url in (
            reverse("health:check", args=["ollama"]),
            reverse("health:check_all"),
        ):
            self.assert_post_matrix(
                url,
                allowed=[self.viewer, self.operator, self.admin],
                forbidden=[self.outsider],
            )

    def test_unknown_kind_is_404(self):
        client = self.client_for(self.viewer)
        self.assertEqual(
            client.get(reverse("health:card", args=["nope"])).status_code, 404
        )

    def test_card_checks_when_stale_and_shows_what_ollama_serves(self):
        client = self.client_for(self.viewer)
        response = client.get(reverse("health:card", args=["ollama"]))
        self.assertEqual(response.status_code, 200)
        html = response.content.decode()
        self.assertIn('data-status="online"', html)
        self.assertIn('class="dot green"', html)
        self.assertIn("Version 0.12.6", html)
        self.assertIn("<code>qwen3:8b</code>", html)  # loaded
        self.assertIn("Missing on the server: <code>gone:7b</code>", html)
        self.assertIn("Not in the registry: <code>extra:1b</code>", html)
        self.assertIn("Check now", html)
        # Fresh result: a second load does not probe again.
        with mock.patch("backends.health.check.check_all") as check:
            client.get(reverse("health:card", args=["ollama"]))
        check.assert_not_called()

    def test_card_not_configured(self):
        html = (
            self.client_for(self.viewer)
            .get(reverse("health:card", args=["triton"]))
            .content.decode()
        )
        self.assertIn('data-status="not_configured"', html)
        self.assertIn('class="dot grey"', html)
        self.assertIn("Not configured", html)

    def test_check_now_returns_the_fresh_card_to_htmx_and_redirects_otherwise(self):
        client = self.client_for(self.viewer)
        url = reverse("health:check", args=["ollama"])
        response = client.post(url, HTTP_HX_REQUEST="true")
        self.assertEqual(response.status_code, 200)
        self.assertIn('id="health-card-ollama"', response.content.decode())
        self.fake.stop()
        response = client.post(url, HTTP_REFERER="http://testserver/models/")
        self.assertEqual(response["Location"], "http://testserver/models/")
        row = BackendEndpoint.objects.get(key=f"ollama:{self.fake.url}")
        self.assertEqual(row.status, "offline")
        response = client.post(url, HTTP_REFERER="https://evil.example/")
        self.assertRedirects(
            response, reverse("health:overview"), fetch_redirect_response=False
        )

    def test_history_lists_transitions(self):
        health.check_all(["ollama"])
        self.fake.stop()
        health.check_all(["ollama"])
        # ollama: unknown -> online -> offline (the vLLM slot was not checked)
        self.assertEqual(HealthTransition.objects.count(), 2)
        response = self.client_for(self.viewer).get(
            reverse("health:history") + "?kind=ollama"
        )
        html = response.content.decode()
        self.assertEqual(response.status_code, 200)
        self.assertIn("connection refused", html)
        self.assertEqual(len(response.context["page"].object_list), 2)

    def test_status_json(self):
        health.check_all()
        data = json.loads(
            self.client_for(self.viewer).get(reverse("health:status_json")).content
        )
        by_key = {e["key"]: e for e in data["endpoints"]}
        self.assertEqual(by_key[f"ollama:{self.fake.url}"]["status"], "online")
        self.assertEqual(by_key["vllm:active"]["status"], "not_configured")

    def test_overview_includes_a_self_refreshing_slot_per_backend(self):
        html = (
            self.client_for(self.viewer)
            .get(reverse("health:overview"))
            .content.decode()
        )
        for kind in ("vllm", "ollama", "lmdeploy", "triton", "openai"):
            self.assertIn(f'hx-get="{reverse("health:card", args=[kind])}"', html)
        self.assertIn('hx-trigger="load, every 15s, healthChanged from:body"', html)


@override_settings(IMAGEWORKS_HEALTH_TIMEOUT=0.5, IMAGEWORKS_OLLAMA_URL="")
class ActiveModelCardTests(PermissionMatrixMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.make_personas()

    def test_no_active_model(self):
        with mock.patch("backends.health.active.current", return_value=None):
            html = (
                self.client_for(self.viewer)
                .get(reverse("health:active_model"))
                .content.decode()
            )
        self.assertIn("No vLLM model is active", html)

    def test_active_model_with_health(self):
        fake = FakeOpenAI(models=["gpt-oss-20b"]).start()
        self.addCleanup(fake.stop)
        state = {
            "logical_name": "gpt-oss-20b_(MXFP4)",
            "served_model_id": "gpt-oss-20b",
            "port": fake.port,
            "pid": None,
            "started_at": 1767225600.0,
        }
        with mock.patch("backends.health.active.current", return_value=state):
            health.check_all(["vllm"])
            html = (
                self.client_for(self.viewer)
                .get(reverse("health:active_model"))
                .content.decode()
            )
        self.assertIn("gpt-oss-20b_(MXFP4)", html)
        self.assertIn(f"<dd>{fake.port}</dd>", html)
        self.assertIn('data-status="online"', html)
        self.assertIn("2026-01-01 00:00", html)
