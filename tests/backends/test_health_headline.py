"""A card's headline is its configured endpoint's state; entries' own servers that
differ are listed under it; a configured Triton has a card (issue 15 item 3)."""

from __future__ import annotations

from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from backends.choices import BackendKind, HealthStatus
from backends.health.summary import kind_summary
from backends.models import BackendEndpoint
from tests.base import BaseTestCase

HX = {"HTTP_HX_REQUEST": "true"}
LONG_ERROR = (
    "connection refused: http://a-very-long-host-name-for-an-ollama-server."
    "example.internal.lab:11434/api/tags?" + "x" * 120
)


def endpoint(kind, url, status, *, sources, entries=(), error=""):
    now = timezone.now()
    return BackendEndpoint.objects.create(
        key=f"{kind}:{url}",
        kind=kind,
        label=f"{kind} ({url})",
        url=url,
        status=status,
        since=now,
        last_checked=now,
        last_error=error,
        details={
            "configured": True,
            "sources": list(sources),
            "entries": {name: {} for name in entries},
        },
    )


@override_settings(
    IMAGEWORKS_OLLAMA_URL="http://ollama-box:11434",
    IMAGEWORKS_HEALTH_CARD_REFRESH=0,  # read what is stored, no probing
)
class OllamaHeadlineTests(BaseTestCase):
    def setUp(self):
        endpoint(
            BackendKind.OLLAMA,
            "http://ollama-box:11434",
            HealthStatus.ONLINE,
            sources=["IMAGEWORKS_OLLAMA_URL", "entry:llava"],
            entries=["llava"],
        )
        endpoint(
            BackendKind.OLLAMA,
            "http://old-box:11434",
            HealthStatus.OFFLINE,
            sources=["entry:qwen-old"],
            entries=["qwen-old"],
            error=LONG_ERROR,
        )

    def test_the_headline_is_the_configured_server_not_the_worst_entry(self):
        card = kind_summary(BackendKind.OLLAMA)
        self.assertEqual(card["status"], HealthStatus.ONLINE)
        self.assertEqual(card["primary"].url, "http://ollama-box:11434")
        self.assertEqual([ep.url for ep in card["others"]], ["http://old-box:11434"])
        self.assertEqual(len(card["others_not_ready"]), 1)

    def test_the_card_lists_the_differing_server_under_the_headline(self):
        url = reverse("health:card", args=["ollama"])
        html = self.client_for(self.viewer).get(url, **HX).content.decode()
        self.assertIn('data-status="online"', html)  # the card's headline
        self.assertIn('data-testid="health-status-ollama">Ready', html)
        self.assertIn("Entries' own servers", html)
        self.assertIn("1 not ready", html)
        self.assertIn("qwen-old", html)
        head = html.index('data-testid="health-primary-ollama"')
        self.assertLess(head, html.index('data-key="ollama:http://old-box:11434"'))

    @override_settings(IMAGEWORKS_OLLAMA_URL="")
    def test_without_a_configured_url_the_worst_entry_server_leads_and_says_so(self):
        card = kind_summary(BackendKind.OLLAMA)
        self.assertEqual(card["status"], HealthStatus.OFFLINE)
        self.assertIsNone(card["primary"])
        self.assertIn("IMAGEWORKS_OLLAMA_URL", card["note"])


@override_settings(IMAGEWORKS_TRITON_URL="http://triton-box:8001")
class TritonCardTests(BaseTestCase):
    def test_a_configured_triton_has_a_card_on_the_models_page(self):
        html = (
            self.client_for(self.viewer)
            .get(reverse("registry:modelentry_list"))
            .content.decode()
        )
        self.assertIn('id="card-triton"', html)

    @override_settings(IMAGEWORKS_TRITON_URL="")
    def test_no_triton_card_when_nothing_uses_or_configures_it(self):
        html = (
            self.client_for(self.viewer)
            .get(reverse("registry:modelentry_list"))
            .content.decode()
        )
        self.assertNotIn('id="card-triton"', html)
