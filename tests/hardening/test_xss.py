"""Stored XSS: hostile text in every field of an entry, written into the registry
FILES and synced, renders as text on every page that shows it, and is neutralised
in CSV exports. (tests/browser/test_xss_browser.py checks that no script runs.)"""

from __future__ import annotations

import csv
import io

from django.test import Client, TestCase
from django.urls import reverse

from tests.base import PersonaMixin
from tests.hardening import xss_payloads as xp
from tests.hardening.common import TempRegistryMixin, edit_post_data


class StoredXssTests(TempRegistryMixin, PersonaMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.make_personas()
        objs = xp.seed(cls.registry_dir, cls.models_dir)
        cls.entry = objs["entry"]
        cls.job = objs["job"]
        cls.activation = objs["activation"]

    def setUp(self):
        self.client = Client()
        self.client.force_login(self.admin)

    def get(self, url: str, htmx: bool = False, **params):
        headers = {"HX-Request": "true"} if htmx else {}
        response = self.client.get(url, params, headers=headers)
        self.assertEqual(response.status_code, 200, f"{url}: {response.status_code}")
        return response

    def assert_inert(self, url: str, htmx: bool = False, *, expect_text=True, **params):
        body = self.get(url, htmx=htmx, **params).content.decode()
        for raw in xp.FORBIDDEN:
            self.assertNotIn(
                raw, body, f"{url} (htmx={htmx}) renders {raw!r} as markup"
            )
        if expect_text:
            # ...and the payload is shown as text, not dropped
            self.assertIn("&lt;", body, f"{url}: payload not shown as text")
        return body

    def test_the_entry_really_carries_the_payloads(self):
        self.assertEqual(self.entry.name, xp.HOSTILE_NAME)
        self.assertIn(xp.IMG2, self.entry.display_name)
        self.assertIn(xp.IMG, self.entry.roles)
        self.assertIn(xp.SCRIPT, self.entry.aliases)

    def test_models_table(self):
        body = self.assert_inert(reverse("registry:modelentry_list"))
        self.assertIn("&lt;svg onload=&quot;window.__xss=2", body)
        self.assert_inert(reverse("registry:modelentry_list"), htmx=True)

    def test_search_terms_are_not_reflected_as_markup(self):
        for q in (xp.IMG, xp.ATTR, xp.SCRIPT):
            self.assert_inert(
                reverse("registry:modelentry_list"), q=q, expect_text=False
            )
            self.assert_inert(
                reverse("registry:actionlog_list"), q=q, expect_text=False
            )

    def test_drawer_full_page_and_htmx(self):
        url = reverse("registry:modelentry_detail", args=[self.entry.pk])
        body = self.assert_inert(url)
        self.assertIn("window.__xss=4", body.replace("\\u003C", "<"))
        self.assert_inert(url, htmx=True)

    def test_edit_form_and_verify_panel(self):
        self.assert_inert(reverse("registry:entry_edit", args=[self.entry.pk]))
        self.assert_inert(
            reverse("registry:entry_edit", args=[self.entry.pk]), htmx=True
        )
        self.assert_inert(
            reverse("registry:entry_verify_panel", args=[self.entry.pk]),
            expect_text=False,
        )

    def test_edit_preview_of_a_hostile_change(self):
        url = reverse("registry:entry_edit_preview", args=[self.entry.pk])
        data = edit_post_data(self.entry)
        data["display_name"] = xp.SCRIPT
        response = self.client.post(url, data, headers={"HX-Request": "true"})
        self.assertLess(response.status_code, 500)
        body = response.content.decode()
        for raw in xp.FORBIDDEN:
            self.assertNotIn(raw, body)

    def test_diff_viewer(self):
        body = self.assert_inert(reverse("registry:registry_diff"))
        self.assertIn("display_name", body)
        self.assertIn("&lt;svg", body)

    def test_action_log_and_recent_actions(self):
        self.assert_inert(reverse("registry:actionlog_list"))
        self.assert_inert(reverse("registry:actionlog_list"), htmx=True)
        self.assert_inert(reverse("registry:recent_actions"))
        self.assert_inert(reverse("dashboard"))

    def test_jobs_and_activations(self):
        self.assert_inert(reverse("registry:job_detail", args=[self.job.pk]))
        self.assert_inert(reverse("registry:job_status", args=[self.job.pk]))
        self.assert_inert(reverse("backends:history"))
        self.assert_inert(reverse("backends:status"), expect_text=False)

    def test_json_view_is_json_not_html(self):
        response = self.get(reverse("registry:modelentry_json", args=[self.entry.pk]))
        self.assertEqual(response["Content-Type"], "application/json")
        self.assertEqual(response["X-Content-Type-Options"], "nosniff")
        self.assertEqual(response.json()["name"], xp.HOSTILE_NAME)

    def _csv_rows(self, url: str) -> list[list[str]]:
        response = self.get(url, _export="csv")
        self.assertIn("text/csv", response["Content-Type"])
        content = (
            b"".join(response.streaming_content)
            if response.streaming
            else response.content
        )
        return list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))

    def _assert_no_formulas(self, rows):
        self.assertGreater(len(rows), 1)
        for row in rows[1:]:
            for cell in row:
                self.assertFalse(
                    cell.startswith(xp.FORMULA_STARTS), f"formula cell {cell!r}"
                )

    def test_models_csv_neutralises_formulas(self):
        rows = self._csv_rows(reverse("registry:modelentry_list"))
        self._assert_no_formulas(rows)
        flat = [c for row in rows for c in row]
        self.assertIn("'" + xp.CSV_NAME, flat)
        self.assertIn("'+1+cmd|' /C calc'!A0", flat)

    def test_actions_csv_neutralises_formulas(self):
        from registry.audit import Actor, record
        from registry.choices import Action

        record(
            Actor.system("tests"), Action.SYNC, entry_name=xp.CSV_NAME, message="=1+1"
        )
        self._assert_no_formulas(self._csv_rows(reverse("registry:actionlog_list")))

    def test_neutralise_covers_every_formula_start(self):
        from registry.export import neutralise

        for value in ("=1", "+1", "-1", "@1", "\t=1", "\r=1"):
            self.assertTrue(neutralise(value).startswith("'"), value)
        self.assertEqual(neutralise("plain"), "plain")
        self.assertEqual(neutralise(3), 3)
