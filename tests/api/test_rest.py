"""The REST API: what a script sees when it uses the site's services over HTTP."""

from __future__ import annotations

import json
from unittest import mock

from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext

from registry import layers
from registry.models import ActionLog, Job, ModelEntry
from tests.base import PersonaMixin, quiet_request_log
from tests.utils import create_model_entry

from .helpers import FixtureRegistryMixin, bearer, make_token

QWEN = "qwen2.5-vl-7b-instruct_(AWQ)"
FLORENCE = "florence-2-large_(FP16)"
OLLAMA = "qwen3_8b_(Q4_K_M)"
SIGLIP = "siglip-large-patch16-384_(FP32)"


class RestApiTests(FixtureRegistryMixin, PersonaMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.make_personas()
        cls.sync()

    def setUp(self):
        super().setUp()
        self.read = make_token(self.viewer, "read")
        self.operate = make_token(self.operator, "operate")
        self.edit = make_token(self.editor, "edit")

    def call(self, method, path, secret, body=None, run_jobs=False):
        kwargs = bearer(secret)
        with quiet_request_log(), self.captureOnCommitCallbacks(execute=run_jobs):
            if method == "GET":
                return self.client.get(path, **kwargs)
            return self.client.generic(
                method,
                path,
                json.dumps(body) if body is not None else "",
                content_type="application/json",
                **kwargs,
            )

    def pk(self, name):
        return ModelEntry.objects.get(name=name).pk

    # --- entries ---------------------------------------------------------------------

    def test_list_uses_the_pages_filters_search_and_pagination(self):
        body = self.call("GET", "/api/v1/entries", self.read).json()
        self.assertEqual(body["count"], 5)
        self.assertEqual(len(body["items"]), 5)
        item = next(i for i in body["items"] if i["name"] == QWEN)
        self.assertEqual(item["capabilities"], ["vision"])
        self.assertEqual(item["served_model_id"], "")
        names = lambda q: [  # noqa: E731
            i["name"] for i in self.call("GET", q, self.read).json()["items"]
        ]
        self.assertEqual(names("/api/v1/entries?backend=ollama"), [OLLAMA])
        self.assertEqual(names("/api/v1/entries?q=florance"), [FLORENCE])
        self.assertEqual(
            names("/api/v1/entries?role=caption&role=chat"),
            sorted([QWEN, FLORENCE, OLLAMA, "remote-llama_(Q5_K_M)"]),
        )
        self.assertEqual(names("/api/v1/entries?lock=locked"), [SIGLIP])
        self.assertEqual(names(f"/api/v1/entries?name={QWEN}"), [QWEN])
        page = self.call("GET", "/api/v1/entries?limit=2&offset=2", self.read).json()
        self.assertEqual((page["count"], len(page["items"])), (5, 2))
        bad = self.call("GET", "/api/v1/entries?lock=sometimes", self.read)
        self.assertEqual(bad.status_code, 422)
        self.assertEqual(bad.json()["detail"][0]["loc"], ["query", "lock"])

    def settle(self):
        """One request first: its cheap sync catches up with earlier tests' file
        writes (which would remove rows that exist only in the database)."""
        self.call("GET", "/api/v1/entries?limit=1", self.read)

    def test_testing_and_deprecated_entries_are_hidden_unless_asked_for(self):
        self.settle()
        create_model_entry("testmodel-x", testing=True)
        create_model_entry("old-model", deprecated=True)
        default = self.call("GET", "/api/v1/entries", self.read).json()
        self.assertEqual(default["count"], 5)
        both = self.call(
            "GET", "/api/v1/entries?testing=true&deprecated=true", self.read
        ).json()
        self.assertEqual(both["count"], 7)

    def test_the_list_costs_the_same_queries_for_10_or_60_entries(self):
        def count():
            with CaptureQueriesContext(connection) as ctx:
                self.call("GET", "/api/v1/entries?limit=100", self.read)
            return len(ctx.captured_queries)

        self.settle()
        for i in range(5):
            create_model_entry(f"extra-{i}")
        small = count()
        for i in range(5, 55):
            create_model_entry(f"extra-{i}")
        self.assertEqual(count(), small)

    def test_detail_shows_both_layers_and_where_each_field_comes_from(self):
        body = self.call("GET", f"/api/v1/entries/{self.pk(QWEN)}", self.read).json()
        self.assertEqual(body["provenance"], "curated")
        self.assertEqual(body["curated"]["served_model_id"], "None")
        self.assertIsNone(body["discovered"])
        self.assertEqual(body["field_sources"]["display_name"], "curated")
        self.assertEqual(len(body["fingerprint"]), 64)
        siglip = self.call("GET", f"/api/v1/entries/{self.pk(SIGLIP)}", self.read)
        self.assertTrue(siglip.json()["merged"]["version_lock"]["locked"])
        missing = self.call("GET", "/api/v1/entries/999999", self.read)
        self.assertEqual(
            (missing.status_code, missing.json()), (404, {"detail": "Not Found"})
        )

    # --- verify / lock / unlock ------------------------------------------------------

    def test_verify_queues_a_job_whose_progress_and_result_can_be_read(self):
        response = self.call(
            "POST",
            f"/api/v1/entries/{self.pk(QWEN)}/verify",
            self.operate,
            run_jobs=True,
        )
        self.assertEqual(response.status_code, 202, response.content)
        job_id = response.json()["job"]["id"]
        job = self.call("GET", f"/api/v1/jobs/{job_id}", self.read).json()
        self.assertEqual(job["status"], "succeeded", job)
        self.assertEqual(job["progress"], 1.0)
        self.assertEqual(len(job["result"]["aggregate_sha256"]), 64)
        self.assertIn("bytes_total", job["data"])
        self.assertTrue(job["log"])
        jobs = self.call("GET", "/api/v1/jobs?kind=verify", self.read).json()
        self.assertEqual([j["id"] for j in jobs["items"]], [job_id])

    def test_verify_of_an_ollama_tag_is_refused_with_the_reason_and_audited(self):
        response = self.call(
            "POST", f"/api/v1/entries/{self.pk(OLLAMA)}/verify", self.operate
        )
        self.assertEqual(response.status_code, 400)
        self.assertIn("Ollama", response.json()["detail"])
        row = ActionLog.objects.latest("pk")
        self.assertEqual((row.action, row.outcome), ("verify", "failed"))

    def test_lock_verifies_first_then_locks_and_unlock_keeps_the_hash(self):
        url = f"/api/v1/entries/{self.pk(QWEN)}"
        response = self.call("POST", f"{url}/lock", self.operate, run_jobs=True)
        self.assertEqual(response.status_code, 202, response.content)
        job = Job.objects.get(pk=response.json()["job"]["id"])
        self.assertEqual(job.status, "succeeded")
        entry = ModelEntry.objects.get(name=QWEN)
        self.assertTrue(entry.locked)
        self.assertEqual(entry.expected_sha256, entry.aggregate_sha256)
        again = self.call("POST", f"{url}/lock", self.operate)
        self.assertEqual(again.json()["detail"], f"{QWEN} is already locked.")
        unlocked = self.call("POST", f"{url}/unlock", self.operate)
        self.assertEqual(unlocked.status_code, 200)
        entry.refresh_from_db()
        self.assertFalse(entry.locked)
        self.assertTrue(entry.expected_sha256)

    # --- edit ------------------------------------------------------------------------

    def test_edit_writes_the_curated_layer_and_a_stale_fingerprint_gets_409(self):
        entry = ModelEntry.objects.get(name=QWEN)
        url = f"/api/v1/entries/{entry.pk}"
        body = {
            "fingerprint": entry.fingerprint,
            "fields": {"display_name": "Qwen VL (API)", "roles": ["caption"]},
        }
        dry = self.call("PATCH", url, self.edit, {**body, "dry_run": True}).json()
        self.assertEqual((dry["changed"], dry["saved"]), (True, False))
        self.assertIn('+  "display_name": "Qwen VL (API)"', dry["unified_diff"])
        saved = self.call("PATCH", url, self.edit, body)
        self.assertEqual(saved.status_code, 200, saved.content)
        self.assertTrue(saved.json()["saved"])
        curated = layers.load_registry(self.registry_dir).entries[QWEN].curated
        self.assertEqual(curated["display_name"], "Qwen VL (API)")
        self.assertEqual(curated["roles"], ["caption"])
        self.assertEqual(
            curated["backend_config"]["extra_args"], ["--max-model-len", "4096"]
        )
        row = ActionLog.objects.filter(action="edit").latest("pk")
        self.assertEqual(row.user_name, "erin (token edit-erin)")
        stale = self.call(
            "PATCH", url, self.edit, {**body, "fields": {"display_name": "Mine"}}
        )
        self.assertEqual(stale.status_code, 409)
        conflict = stale.json()
        self.assertIn("was changed by erin", conflict["detail"])
        self.assertIn("display_name", json.dumps(conflict["other_change"]))
        self.assertIn('"display_name": "Mine"', conflict["diff"])
        self.assertEqual(
            conflict["current_fingerprint"],
            ModelEntry.objects.get(name=QWEN).fingerprint,
        )

    def test_edit_validation_errors_name_the_field(self):
        entry = ModelEntry.objects.get(name=QWEN)
        url = f"/api/v1/entries/{entry.pk}"
        response = self.call(
            "PATCH",
            url,
            self.edit,
            {"fingerprint": entry.fingerprint, "fields": {"port": 70000, "bogus": 1}},
        )
        self.assertEqual(response.status_code, 422)
        self.assertEqual(
            response.json()["detail"][0]["loc"], ["body", "fields", "bogus"]
        )
        response = self.call(
            "PATCH",
            url,
            self.edit,
            {"fingerprint": entry.fingerprint, "fields": {"port": 70000}},
        )
        self.assertEqual(
            response.json()["detail"],
            [
                {
                    "type": "value_error",
                    "loc": ["body", "fields", "port"],
                    "msg": "Port must be 1–65535",
                }
            ],
        )
        # Values JSON can carry but a registry file cannot hold: a clear 422 per
        # field, nothing written (json.dumps keeps the lone surrogate escaped).
        before = (self.registry_dir / "model_registry.curated.json").read_bytes()
        for fields, field, words in (
            ({"display_name": "Qwen \ud800"}, "display_name", "lone UTF-16 surrogate"),
            ({"metadata": '{"n": 1e400}'}, "metadata", "too large for a float"),
            ({"metadata": '{"n": 99999999999999999999}'}, "metadata", "64 bits"),
        ):
            response = self.call(
                "PATCH",
                url,
                self.edit,
                {"fingerprint": entry.fingerprint, "fields": fields},
            )
            self.assertEqual(response.status_code, 422, response.content)
            detail = response.json()["detail"][0]
            self.assertEqual(detail["loc"], ["body", "fields", field])
            self.assertIn(words, detail["msg"])
        after = (self.registry_dir / "model_registry.curated.json").read_bytes()
        self.assertEqual(after, before)
        missing = self.call("PATCH", url, self.edit, {"fields": {}})
        self.assertEqual(missing.json()["detail"][0]["loc"], ["body", "fingerprint"])
        operate = self.call(
            "PATCH", url, self.operate, {"fingerprint": "x", "fields": {}}
        )
        self.assertEqual(operate.status_code, 403)

    # --- import ------------------------------------------------------------------------

    def test_import_plans_then_writes_an_overlay_with_capabilities(self):
        item = {
            "name": SIGLIP,
            "roles": ["embedding"],
            "backend": "vllm",
            "served_model_id": "google/siglip-large-patch16-384",
        }
        listed = self.call("GET", "/api/v1/importable", self.edit).json()
        self.assertEqual([i["name"] for i in listed["items"]], [SIGLIP])
        dry = self.call(
            "POST", "/api/v1/import", self.edit, {"items": [item], "dry_run": True}
        )
        planned = dry.json()["planned"][0]["curated"]
        self.assertTrue(planned["capabilities"]["embedding"])
        self.assertIn("+++ b/model_registry.curated.json", dry.json()["diff"])
        done = self.call("POST", "/api/v1/import", self.edit, {"items": [item]}).json()
        self.assertEqual(done["imported"], [SIGLIP])
        again = self.call("POST", "/api/v1/import", self.edit, {"items": [item]}).json()
        self.assertEqual(
            again["refused"][0]["reason"], "already curated (by erin (token edit-erin))"
        )
        bad = self.call(
            "POST", "/api/v1/import", self.edit, {"items": [{**item, "roles": []}]}
        )
        self.assertEqual(bad.status_code, 422)
        self.assertEqual(
            bad.json()["detail"][0]["loc"], ["body", "items", "0", "roles"]
        )

    def test_reload_reports_what_changed(self):
        body = self.call("POST", "/api/v1/registry/reload", self.operate).json()
        self.assertIn("detail", body)
        self.assertEqual(body["added"], [])

    # --- vLLM ------------------------------------------------------------------------

    def test_activation_is_refused_before_any_process_for_a_non_vllm_entry(self):
        response = self.call(
            "POST", f"/api/v1/entries/{self.pk(OLLAMA)}/activate", self.operate
        )
        self.assertEqual(response.status_code, 422)
        self.assertEqual(
            response.json()["detail"], "Only vLLM models can be activated."
        )
        slot = self.call("GET", "/api/v1/vllm", self.read).json()
        self.assertEqual((slot["state"], slot["endpoint"]), ("idle", ""))
        refused = self.call(
            "POST", f"/api/v1/entries/{self.pk(QWEN)}/activate", self.edit
        )
        self.assertEqual(refused.status_code, 403)

    def test_stop_queues_a_job_and_a_second_stop_is_a_conflict(self):
        first = self.call("POST", "/api/v1/vllm/stop", self.operate)
        self.assertEqual(first.status_code, 202)
        self.assertEqual(first.json()["job"]["kind"], "stop")
        second = self.call("POST", "/api/v1/vllm/stop", self.operate)
        self.assertEqual(second.status_code, 409)

    # --- jobs, health, audit, me -----------------------------------------------------

    def test_cancel_needs_the_job_kind_s_permission(self):
        job = Job.objects.create(kind="verify", entry_name=QWEN, status="running")
        self.assertEqual(
            self.call("POST", f"/api/v1/jobs/{job.pk}/cancel", self.edit).status_code,
            403,
        )
        self.assertEqual(
            self.call(
                "POST", f"/api/v1/jobs/{job.pk}/cancel", self.operate
            ).status_code,
            200,
        )
        self.assertEqual(
            self.call(
                "POST", f"/api/v1/jobs/{job.pk}/cancel", self.operate
            ).status_code,
            409,
        )

    def test_health_lists_and_checks_backends(self):
        self.assertEqual(self.call("GET", "/api/v1/health", self.read).json(), [])
        with mock.patch("backends.health.check.check_all") as check:
            response = self.call("POST", "/api/v1/health/check?kind=ollama", self.read)
        self.assertEqual(response.status_code, 200)
        check.assert_called_once_with(["ollama"])

    def test_audit_log_filters_like_the_actions_page(self):
        self.call("POST", f"/api/v1/entries/{self.pk(SIGLIP)}/unlock", self.operate)
        rows = self.call("GET", "/api/v1/audit?action=unlock", self.read).json()
        self.assertEqual(rows["count"], 1)
        self.assertEqual(rows["items"][0]["user_name"], "alice (token operate-alice)")
        self.assertEqual(
            self.call("GET", "/api/v1/audit?action=nope", self.read).status_code, 422
        )

    def test_me_says_who_and_what(self):
        me = self.call("GET", "/api/v1/me", self.operate).json()
        self.assertEqual(
            (me["username"], me["role"], me["token_scope"]),
            ("alice", "operator", "operate"),
        )
        self.assertIn("registry.verify_entry", me["permissions"])
        self.assertNotIn("registry.edit_entry", me["permissions"])
