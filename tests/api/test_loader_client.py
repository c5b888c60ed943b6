"""An unchanged loader client, pointed at the console's base URL over real HTTP."""

from __future__ import annotations

from django.test import LiveServerTestCase

from registry import hashing
from tests.base import make_user

from .helpers import FixtureRegistryMixin, make_token, write_fixture_registry
from .loader_client import LoaderClient, LoaderError


class LoaderClientTests(FixtureRegistryMixin, LiveServerTestCase):
    def setUp(self):
        write_fixture_registry(self.tmp_root)
        self.sync()
        self.operator = make_user("alice", "operator")
        self.client_ = LoaderClient(
            self.live_server_url, make_token(self.operator, "operate")
        )
        self.addCleanup(self.client_.close)

    def test_it_lists_selects_and_verifies_like_the_original_service(self):
        client = self.client_
        self.assertEqual(
            client.root(), {"service": "imageworks-model-loader", "version": "0.1"}
        )
        models = client.list_models()
        self.assertEqual(
            [m["name"] for m in models],
            sorted(m["name"] for m in models),
        )
        self.assertEqual(len(models), 5)
        chosen = client.select("qwen2.5-vl-7b-instruct_(AWQ)", ["vision"])
        self.assertEqual(chosen["internal_model_id"], "qwen2.5-vl-7b-instruct_(AWQ)")
        self.assertEqual(chosen["endpoint"], "http://127.0.0.1:24001/v1")
        self.assertEqual(len(chosen["capabilities"]), 47)
        verified = client.verify("siglip-large-patch16-384_(FP32)")
        expected = hashing.hash_directory(self.models_dir / "siglip").aggregate_sha256
        self.assertEqual(verified, {"status": "ok", "aggregate_sha256": expected})
        self.assertEqual(
            client.metrics("siglip-large-patch16-384_(FP32)")["rolling_samples"], 3
        )

    def test_errors_come_back_as_the_originals_detail_bodies(self):
        client = self.client_
        with self.assertRaises(LoaderError) as caught:
            client.select("no-such-model")
        self.assertEqual(caught.exception.status, 404)
        self.assertEqual(
            caught.exception.detail, "\"Model 'no-such-model' not found in registry\""
        )
        with self.assertRaises(LoaderError) as caught:
            client.select("florence-2-large_(FP16)", ["vision"])
        self.assertEqual(caught.exception.status, 409)
        with self.assertRaises(LoaderError) as caught:
            client.probe_vision("qwen2.5-vl-7b-instruct_(AWQ)", "/etc/passwd")
        self.assertEqual(caught.exception.status, 400)
        self.assertIn("not run by the registry console", caught.exception.detail)

    def test_without_a_token_the_client_is_told_how_to_authenticate(self):
        anonymous = LoaderClient(self.live_server_url)
        self.addCleanup(anonymous.close)
        with self.assertRaises(LoaderError) as caught:
            anonymous.list_models()
        self.assertEqual(caught.exception.status, 401)
        self.assertIn("Bearer", caught.exception.detail)
