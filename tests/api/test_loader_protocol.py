"""The original loader protocol, replayed from fixtures of its requests and answers.

Every exchange in ``fixtures/exchanges.json`` is sent as the original's clients send
it; the answer must be the original's (status and body), except for the documented
differences (``ours``), which are asserted too.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.test import TestCase, TransactionTestCase, override_settings

from api.tokens import create_token
from registry import hashing, normalize
from registry.models import ActionLog
from tests.base import PersonaMixin

from .helpers import (
    EXCHANGES,
    FIXTURES,
    FixtureRegistryMixin,
    bearer,
    make_token,
    write_fixture_registry,
)

VLLM_ENDPOINT = "http://127.0.0.1:24001/v1"


def raw_capabilities() -> dict[str, dict]:
    caps = {}
    for layer in ("curated", "discovered"):
        path = FIXTURES / "registry" / f"model_registry.{layer}.json"
        for item in json.loads(path.read_text()):
            caps[item["name"]] = item["capabilities"]
    return caps


class LoaderProtocolTests(FixtureRegistryMixin, PersonaMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.make_personas()
        cls.sync()

    def setUp(self):
        super().setUp()
        self.secret = make_token(self.operator, "operate")
        self.caps = {
            name: normalize.normalize_capabilities(raw)
            for name, raw in raw_capabilities().items()
        }
        self.aggregates = {"siglip": self.aggregate("siglip")}

    def aggregate(self, folder: str) -> str:
        return hashing.hash_directory(Path(self.models_dir) / folder).aggregate_sha256

    # --- fixture plumbing -----------------------------------------------------------

    def resolve(self, value):
        if isinstance(value, str):
            if value.startswith("$caps:"):
                return self.caps[value.removeprefix("$caps:")]
            if value == "$vllm_endpoint":
                return VLLM_ENDPOINT
            for key, digest in self.aggregates.items():
                value = value.replace(f"$aggregate:{key}-changed", digest + "-changed")
                value = value.replace(f"$aggregate:{key}", digest)
            return value
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        return value

    def send(self, request: dict, headers: dict | None = None):
        kwargs = dict(headers if headers is not None else bearer(self.secret))
        for key, value in (request.get("headers") or {}).items():
            kwargs[f"HTTP_{key.upper().replace('-', '_')}"] = value
        if request["method"] == "GET":
            return self.client.get(request["path"], **kwargs)
        return self.client.generic(
            request["method"],
            request["path"],
            json.dumps(request.get("json", {})),
            content_type="application/json",
            **kwargs,
        )

    def expected(self, exchange: dict) -> tuple[int, object, dict]:
        original, ours = exchange["original"], exchange.get("ours", {})
        status = ours.get("status", original["status"])
        body = ours.get("json", original["json"])
        if isinstance(body, dict) and "json" not in ours:
            body = {
                **body,
                **{k: v for k, v in ours.items() if k in body and k != "display_name"},
            }
        return status, self.resolve(body), ours

    def check(self, exchange: dict) -> None:
        response = self.send(exchange["request"])
        status, body, ours = self.expected(exchange)
        label = exchange["id"]
        self.assertEqual(response.status_code, status, (label, response.content[:500]))
        self.assertTrue(response["Content-Type"].startswith("application/json"), label)
        got = response.json()
        if "detail_prefix" in ours:
            self.assertTrue(
                got["detail"].startswith(self.resolve(ours["detail_prefix"])),
                (label, got),
            )
            return
        if status == 422:
            trimmed = [
                {k: item[k] for k in ("type", "loc", "msg")} for item in got["detail"]
            ]
            self.assertEqual(trimmed, body["detail"], label)
            return
        if "display_name" in ours:
            for item in body:
                item["display_name"] = ours["display_name"][item["name"]]
        self.assertEqual(got, body, label)
        if isinstance(got, list):
            self.assertEqual(
                [list(item) for item in got], [list(item) for item in body], label
            )

    def exchange(self, exchange_id: str) -> dict:
        return next(e for e in EXCHANGES if e["id"] == exchange_id)

    # --- the exchanges -------------------------------------------------------------

    def test_it_answers_every_read_exchange_like_the_original(self):
        for exchange in EXCHANGES:
            if exchange["request"]["path"] == "/v1/verify" or "setup" in exchange:
                continue
            with self.subTest(exchange["id"]):
                self.check(exchange)

    def test_verify_answers_504_when_the_job_outlives_the_timeout(self):
        from unittest import mock

        from registry.models import Job

        job = Job.objects.create(kind="verify", entry_name="x", status="queued")
        with (
            override_settings(IMAGEWORKS_LOADER_VERIFY_TIMEOUT=0.2),
            mock.patch("api.services.enqueue_verify", return_value=job),
        ):
            response = self.send(self.exchange("verify-ok")["request"])
        self.assertEqual(response.status_code, 504)
        self.assertIn(f"job {job.pk}", response.json()["detail"])

    def test_a_running_verify_of_the_same_entry_is_joined_not_refused(self):
        from unittest import mock

        from registry.jobs import JobConflict
        from registry.models import Job

        running = Job.objects.create(
            kind="verify",
            entry_name="x",
            status="succeeded",
            result={"aggregate_sha256": "abc"},
        )
        with mock.patch(
            "api.services.enqueue_verify", side_effect=JobConflict(running, "busy")
        ):
            response = self.send(self.exchange("verify-ok")["request"])
        self.assertEqual(response.json(), {"status": "ok", "aggregate_sha256": "abc"})

    def test_models_is_gzipped_for_clients_that_accept_it(self):
        import gzip

        request = self.exchange("models")["request"]
        plain = self.send(request)
        zipped = self.send({**request, "headers": {"Accept-Encoding": "gzip, deflate"}})
        self.assertEqual(zipped["Content-Encoding"], "gzip")
        self.assertIn("Accept-Encoding", zipped["Vary"])
        self.assertEqual(gzip.decompress(zipped.content), plain.content)
        self.assertNotIn("Content-Encoding", plain)

    def test_models_shows_a_change_at_once_although_the_payload_is_kept(self):
        from registry.audit import Actor
        from registry.services.verify import unlock

        name = "siglip-large-patch16-384_(FP32)"
        request = self.exchange("models")["request"]
        before = {m["name"]: m for m in self.send(request).json()}
        self.assertTrue(before[name]["locked"])
        unlock(name, Actor.system("tests"))
        after = {m["name"]: m for m in self.send(request).json()}
        self.assertFalse(after[name]["locked"])

    def test_models_answers_304_to_a_client_that_has_the_current_list(self):
        from registry.audit import Actor
        from registry.services.verify import unlock

        request = self.exchange("models")["request"]
        first = self.send(request)
        etag = first["ETag"]
        again = self.send({**request, "headers": {"If-None-Match": etag}})
        self.assertEqual(again.status_code, 304)
        self.assertEqual(again.content, b"")
        self.assertEqual(again["ETag"], etag)
        # The gzipped body is another representation: another tag.
        zipped = self.send({**request, "headers": {"Accept-Encoding": "gzip"}})
        self.assertNotEqual(zipped["ETag"], etag)
        # After a change the old tag gets the new list.
        unlock("siglip-large-patch16-384_(FP32)", Actor.system("tests"))
        changed = self.send({**request, "headers": {"If-None-Match": etag}})
        self.assertEqual(changed.status_code, 200)
        self.assertNotEqual(changed["ETag"], etag)
        self.assertFalse(
            {m["name"]: m for m in changed.json()}["siglip-large-patch16-384_(FP32)"][
                "locked"
            ]
        )

    def test_loader_reads_cost_the_same_few_queries_at_any_registry_size(self):
        """Token (with its user), the permissions (one query), then: the entry and
        the live activation for /v1/select; the registry version for /v1/models once
        its body is kept. Many more entries change none of it."""
        from registry import version
        from registry.models import ModelEntry

        select = {
            "method": "POST",
            "path": "/v1/select",
            "json": {"name": "qwen2.5-vl-7b-instruct_(AWQ)"},
        }
        models = self.exchange("models")["request"]
        self.assertEqual(self.send(models).status_code, 200)  # builds the body
        for _round in range(2):
            with self.assertNumQueries(4):
                self.assertEqual(self.send(select).status_code, 200)
            with self.assertNumQueries(3):
                self.assertEqual(self.send(models).status_code, 200)
            template = ModelEntry.objects.get(name="qwen3_8b_(Q4_K_M)")
            for i in range(200):
                template.pk = None
                template.name = f"bulk-{_round}-{i:03d}"
                template.save()
            version.bump()
            self.assertEqual(self.send(models).status_code, 200)  # rebuilt once

    def test_models_reads_a_changed_vision_probe(self):
        from registry import layers
        from registry.audit import Actor
        from registry.services.writeback import change_entry

        name = "siglip-large-patch16-384_(FP32)"
        request = self.exchange("models")["request"]
        before = {m["name"]: m["vision_ok"] for m in self.send(request).json()}
        self.assertEqual(before[name], True)

        def failed_probe(raw):
            raw["probes"] = {"vision": {**raw["probes"]["vision"], "vision_ok": False}}
            return raw

        change_entry(
            Actor.system("tests"), "edit", name, layers.DISCOVERED, failed_probe
        )
        after = {m["name"]: m["vision_ok"] for m in self.send(request).json()}
        self.assertEqual(after[name], False)
        self.assertIsNone(after["qwen3_8b_(Q4_K_M)"])

    # --- the endpoint fix: where vLLM really serves --------------------------------

    def test_select_points_at_the_live_activation_when_the_entry_is_served(self):
        from backends.models import Activation
        from registry.models import ModelEntry

        entry = ModelEntry.objects.get(name="florence-2-large_(FP16)")
        Activation.objects.create(
            entry=entry,
            logical_name=entry.name,
            served_model_id="microsoft/Florence-2-large",
            state="running",
            port=24123,
            base_url="http://gpu-host:24123",
        )
        body = self.send(self.exchange("select-own-port")["request"]).json()
        self.assertEqual(body["endpoint"], "http://gpu-host:24123/v1")
        other = self.send(self.exchange("select-vision")["request"]).json()
        self.assertEqual(other["endpoint"], VLLM_ENDPOINT)

    @override_settings(IMAGEWORKS_VLLM_PORT=25555, IMAGEWORKS_VLLM_HOST="0.0.0.0")
    def test_select_uses_the_configured_vllm_port_and_reachable_host(self):
        from django.conf import settings

        body = self.send(self.exchange("select-own-port")["request"]).json()
        self.assertEqual(
            body["endpoint"], f"http://{settings.IMAGEWORKS_HOST_NAME}:25555/v1"
        )

    # --- authentication ----------------------------------------------------------

    def test_every_loader_call_needs_a_token_by_default(self):
        for exchange in EXCHANGES:
            if exchange["request"]["path"] == "/":
                continue
            with self.subTest(exchange["id"]):
                response = self.send(exchange["request"], headers={})
                self.assertEqual(response.status_code, 401)
                self.assertEqual(response["WWW-Authenticate"], "Bearer")
                self.assertIn("Authorization: Bearer", response.json()["detail"])

    @override_settings(IMAGEWORKS_LOADER_OPEN_READ=True)
    def test_open_read_lets_list_and_select_through_without_a_token(self):
        for exchange_id in ("models", "select-minimal"):
            response = self.send(self.exchange(exchange_id)["request"], headers={})
            self.assertEqual(response.status_code, 200, exchange_id)
        for exchange_id in ("verify-ok", "metrics-empty", "probe-vision"):
            response = self.send(self.exchange(exchange_id)["request"], headers={})
            self.assertEqual(response.status_code, 401, exchange_id)
        bad = self.send(
            self.exchange("models")["request"], headers=bearer("iwk_not-a-token")
        )
        self.assertEqual(bad.status_code, 401, "a wrong token is refused, not ignored")

    def test_a_read_token_may_select_but_not_verify(self):
        secret = make_token(self.viewer, "read")
        ok = self.send(self.exchange("select-minimal")["request"], bearer(secret))
        self.assertEqual(ok.status_code, 200)
        refused = self.send(self.exchange("verify-ok")["request"], bearer(secret))
        self.assertEqual(refused.status_code, 403)
        self.assertIn("role does not allow verify", refused.json()["detail"])
        token, secret = create_token(self.operator, "reader", "read")
        refused = self.send(self.exchange("verify-ok")["request"], bearer(secret))
        self.assertEqual(refused.status_code, 403)
        self.assertIn("scope (read) does not allow verify", refused.json()["detail"])
        row = ActionLog.objects.filter(action="verify").latest("pk")
        self.assertEqual(
            (row.outcome, row.user_name), ("failed", "alice (token reader)")
        )

    # --- GET /: dashboard for browsers, the service root for loader clients --------

    def test_root_is_the_dashboard_for_browsers_and_json_for_loader_clients(self):
        anonymous_browser = self.client.get("/", HTTP_ACCEPT="text/html,*/*;q=0.8")
        self.assertEqual(anonymous_browser.status_code, 302)
        self.assertIn("/login/", anonymous_browser["Location"])
        self.assertIn("Accept", anonymous_browser["Vary"])
        self.client.force_login(self.viewer)
        page = self.client.get("/", HTTP_ACCEPT="text/html")
        self.assertContains(page, "Dashboard")
        self.assertEqual(self.client.get("/").status_code, 200)  # no Accept: a page
        self.assertTemplateUsed(self.client.get("/"), "dashboard.html")
        for accept in ("*/*", "application/json"):
            response = self.client.get("/", HTTP_ACCEPT=accept)
            self.assertEqual(
                response.json(),
                {"service": "imageworks-model-loader", "version": "0.1"},
            )


class LoaderVerifyTests(FixtureRegistryMixin, PersonaMixin, TransactionTestCase):
    """``POST /v1/verify`` runs a real verify job (inline: committed transactions)."""

    aggregate = LoaderProtocolTests.aggregate
    resolve = LoaderProtocolTests.resolve
    send = LoaderProtocolTests.send
    expected = LoaderProtocolTests.expected
    check = LoaderProtocolTests.check
    exchange = LoaderProtocolTests.exchange

    def setUp(self):  # noqa: F811 - personas per test: the database is flushed
        write_fixture_registry(self.tmp_root)  # the files too: verify writes them
        self.make_personas()
        self.sync()
        self.secret = make_token(self.operator, "operate")
        self.caps = {
            name: normalize.normalize_capabilities(raw)
            for name, raw in raw_capabilities().items()
        }
        self.aggregates = {"siglip": self.aggregate("siglip")}

    def test_it_verifies_and_reports_a_lock_violation_like_the_original(self):
        self.check(self.exchange("verify-unknown"))
        self.check(self.exchange("verify-ok"))
        weights = Path(self.models_dir) / "siglip" / "model.safetensors"
        weights.write_text("tampered weights")
        self.aggregates["siglip-changed"] = self.aggregate("siglip")
        exchange = self.exchange("verify-lock-violation")
        ours = {
            "detail_prefix": "Lock violation: expected "
            f"{self.aggregates['siglip']} got {self.aggregates['siglip-changed']}"
        }
        response = self.send(exchange["request"])
        self.assertEqual(response.status_code, 409)
        self.assertTrue(response.json()["detail"].startswith(ours["detail_prefix"]))
        rows = ActionLog.objects.filter(action="verify").order_by("pk")
        self.assertEqual(
            [(r.outcome, r.user_name) for r in rows if r.outcome != "running"][-2:],
            [
                ("succeeded", "alice (token operate-alice)"),
                ("failed", "alice (token operate-alice)"),
            ],
        )

    def test_the_first_verify_of_a_locked_entry_records_its_expected_hash(self):
        self.check(self.exchange("verify-ok"))
        models = self.send({"method": "GET", "path": "/v1/models"}).json()
        siglip = next(m for m in models if m["name"].startswith("siglip"))
        self.assertTrue(siglip["locked"])
        from registry.models import ModelEntry

        entry = ModelEntry.objects.get(name=siglip["name"])
        self.assertEqual(entry.expected_sha256, self.aggregates["siglip"])
