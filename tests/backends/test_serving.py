"""Where a model is served: one answer for the drawer, the copy button, the loader API,
the REST detail, the CLI and the health cards (issue 15 item 1)."""

from __future__ import annotations

import json
from io import StringIO
from unittest import mock

from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from backends.choices import ActivationState
from backends.health.endpoints import build_endpoints
from backends.models import Activation
from backends.serving import served_endpoint
from backends.vllm import service
from tests.base import BaseTestCase
from tests.utils import create_model_entry

HX = {"HTTP_HX_REQUEST": "true"}
VLLM_AT = {
    "IMAGEWORKS_VLLM_HOST": "10.1.2.3",
    "IMAGEWORKS_VLLM_PORT": 25555,
    "IMAGEWORKS_VLLM_USE_ENTRY_PORT": False,
}


def vllm_entry(name="qwen-vl", **cfg):
    config = {"port": 24002, **cfg}
    return create_model_entry(
        name,
        backend="vllm",
        backend_config=config,
        merged={"name": name, "backend": "vllm", "backend_config": config},
    )


def other_entry(name, backend, **cfg):
    return create_model_entry(
        name,
        backend=backend,
        backend_config=cfg,
        merged={"name": name, "backend": backend, "backend_config": cfg},
    )


@override_settings(**VLLM_AT)
class VllmEndpointTests(BaseTestCase):
    def test_an_inactive_vllm_entry_is_served_on_the_site_port_not_its_own(self):
        served = served_endpoint(vllm_entry())
        self.assertEqual(served.url, "http://10.1.2.3:25555/v1")
        self.assertEqual(served.source, "settings")
        self.assertIn("IMAGEWORKS_VLLM_PORT", served.source_label)
        self.assertFalse(served.serving)

    @override_settings(IMAGEWORKS_VLLM_USE_ENTRY_PORT=True)
    def test_the_entry_port_counts_only_when_configured_so(self):
        served = served_endpoint(vllm_entry())
        self.assertEqual(served.url, "http://10.1.2.3:24002/v1")
        self.assertIn("IMAGEWORKS_VLLM_USE_ENTRY_PORT", served.source_label)

    def test_the_active_model_is_where_its_activation_answers(self):
        entry = vllm_entry()
        now = timezone.now()
        Activation.objects.create(
            slot=service.SLOT,
            entry=entry,
            logical_name=entry.name,
            served_model_id=entry.name,
            state=ActivationState.RUNNING,
            user_name="alice",
            command=["vllm"],
            port=25556,
            pid=1,
            base_url="http://gpu-b:25556",
            started_at=now,
            ready_at=now,
        )
        served = served_endpoint(entry)
        self.assertEqual(served.url, "http://gpu-b:25556/v1")
        self.assertEqual(served.source, "activation")
        self.assertTrue(served.serving)
        # Another vLLM entry is still "would be served on the site port".
        self.assertEqual(
            served_endpoint(vllm_entry("other")).url, "http://10.1.2.3:25555/v1"
        )

    def test_an_explicit_base_url_wins_for_an_inactive_entry(self):
        served = served_endpoint(vllm_entry(base_url="http://remote:9999/v1/"))
        self.assertEqual(served.url, "http://remote:9999/v1")
        self.assertEqual(served.source, "entry")

    def test_the_drawer_and_copy_button_give_the_site_port(self):
        entry = vllm_entry()
        url = reverse("registry:modelentry_detail", args=[entry.pk])
        html = self.client_for(self.viewer).get(url, **HX).content.decode()
        self.assertIn(
            'data-testid="drawer-endpoint-url">http://10.1.2.3:25555/v1', html
        )
        self.assertIn("base_url: http://10.1.2.3:25555/v1", html)  # copied text
        self.assertIn("Would be served here once activated", html)
        self.assertNotIn(":24002", html)

    def test_the_loader_select_gives_the_same_url(self):
        from api.selection import select_model

        entry = vllm_entry()
        self.assertEqual(select_model(entry.name).endpoint, "http://10.1.2.3:25555/v1")

    def test_the_cli_show_layers_prints_it_with_its_source(self):
        from imageworks_site import cli

        entry = vllm_entry()
        out = StringIO()
        with (
            mock.patch("sys.stdout", out),
            mock.patch.object(cli, "presync", lambda **kw: None),
        ):
            code = cli.main(["show", entry.name, "--layers"])
        self.assertEqual(code, 0)
        payload = json.loads(out.getvalue())
        self.assertEqual(payload["endpoint"]["url"], "http://10.1.2.3:25555/v1")
        self.assertIn("settings", payload["endpoint"]["source"])


@override_settings(
    IMAGEWORKS_OLLAMA_URL="http://ollama-box:11434",
    IMAGEWORKS_TRITON_URL="http://triton-box:8001/",
    IMAGEWORKS_LMDEPLOY_URL="",
)
class OtherBackendTests(BaseTestCase):
    def test_an_entry_without_a_server_uses_the_configured_url(self):
        served = served_endpoint(other_entry("llava", "ollama"))
        self.assertEqual(served.url, "http://ollama-box:11434/v1")
        self.assertEqual(served.source, "settings")
        self.assertIn("IMAGEWORKS_OLLAMA_URL", served.source_label)
        triton = served_endpoint(other_entry("t", "triton"))
        self.assertEqual(triton.url, "http://triton-box:8001/v1")

    def test_the_entry_own_server_wins(self):
        served = served_endpoint(
            other_entry("llava", "ollama", host="gpu2", port=11500)
        )
        self.assertEqual(served.url, "http://gpu2:11500/v1")
        self.assertEqual(served.source, "entry")
        self.assertIn("backend_config.host/port", served.source_label)

    def test_nothing_configured_falls_back_to_the_default_port_and_says_so(self):
        served = served_endpoint(other_entry("lm", "lmdeploy"))
        self.assertEqual(served.url, "http://localhost:24001/v1")
        self.assertEqual(served.source, "default")

    def test_health_checks_the_same_server_the_drawer_names(self):
        other_entry("llava", "ollama")
        other_entry("far", "ollama", base_url="http://far:11434/v1")
        by_url = {ep.url: ep for ep in build_endpoints() if ep.kind == "ollama"}
        self.assertEqual(set(by_url), {"http://ollama-box:11434", "http://far:11434"})
        self.assertEqual(by_url["http://ollama-box:11434"].entries, ["llava"])
        self.assertIn(
            "IMAGEWORKS_OLLAMA_URL", by_url["http://ollama-box:11434"].sources
        )

    def test_the_drawer_says_which_source(self):
        entry = other_entry("llava", "ollama")
        url = reverse("registry:modelentry_detail", args=[entry.pk])
        html = self.client_for(self.viewer).get(url, **HX).content.decode()
        self.assertIn("http://ollama-box:11434/v1", html)
        self.assertIn("IMAGEWORKS_OLLAMA_URL", html)
        self.assertIn('data-source="settings"', html)
