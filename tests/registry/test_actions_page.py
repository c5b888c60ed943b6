from __future__ import annotations

import csv
import io
from datetime import timedelta

from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from registry.choices import Action, Outcome
from registry.models import ActionLog
from tests.base import PermissionMatrixMixin

URL = reverse("registry:actionlog_list")


def log(user, action, outcome=Outcome.SUCCEEDED, entry="", days_ago=0, message=""):
    return ActionLog.objects.create(
        user_name=user,
        action=action,
        outcome=outcome,
        entry_name=entry,
        message=message,
        time=timezone.now() - timedelta(days=days_ago),
    )


class ActionsPageTests(PermissionMatrixMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.make_personas()
        log("alice", Action.LOCK, entry="florence-2-large_(FP16)", days_ago=0)
        log("alice", Action.UNLOCK, entry="florence-2-large_(FP16)", days_ago=1)
        log("bob", Action.VERIFY, Outcome.FAILED, entry="siglip", days_ago=2)
        log("bob", Action.ACTIVATE, entry="qwen2.5-vl", days_ago=10)
        log("vera", Action.EXPORT, days_ago=20, message="=cmd|' /C calc'!A0")

    def rows(self, query=""):
        response = self.client_for(self.viewer).get(URL + query)
        self.assertEqual(response.status_code, 200)
        return list(response.context["table"].page.object_list)

    def test_it_is_readable_by_viewers_only(self):
        self.assert_get_matrix(
            URL,
            allowed=[self.viewer, self.operator, self.admin],
            forbidden=[self.outsider],
        )
        self.assert_get_matrix(
            URL + "?_export=csv", allowed=[self.viewer], forbidden=[self.outsider]
        )

    def test_it_lists_newest_first(self):
        rows = self.rows()
        self.assertEqual([r.record.action for r in rows][:2], ["lock", "unlock"])

    def test_it_filters_by_operator(self):
        self.assertEqual(
            {r.record.user_name for r in self.rows("?user_name=bob")}, {"bob"}
        )

    def test_it_filters_by_action(self):
        rows = self.rows("?action=lock&action=unlock")
        self.assertEqual({r.record.action for r in rows}, {"lock", "unlock"})

    def test_it_filters_by_outcome(self):
        self.assertEqual(len(self.rows("?outcome=failed")), 1)

    def test_it_filters_by_entry(self):
        self.assertEqual(len(self.rows("?entry=florence")), 2)

    def test_it_filters_by_date_range(self):
        since = (timezone.localdate() - timedelta(days=3)).isoformat()
        self.assertEqual(len(self.rows(f"?time_after={since}")), 3)
        until = (timezone.localdate() - timedelta(days=5)).isoformat()
        self.assertEqual(len(self.rows(f"?time_before={until}")), 2)

    def test_it_returns_the_table_partial_for_htmx(self):
        response = self.client_for(self.viewer).get(
            URL + "?user_name=alice", HTTP_HX_REQUEST="true"
        )
        html = response.content.decode()
        self.assertNotIn("<html", html)
        self.assertIn('id="actions-table"', html)

    def test_it_refuses_export_formats_it_does_not_offer(self):
        response = self.client_for(self.viewer).get(URL + "?_export=xlsx")
        self.assertEqual(response.status_code, 400)

    def test_it_exports_csv_with_the_formula_guard(self):
        response = self.client_for(self.viewer).get(URL + "?_export=csv")
        self.assertRegex(response["Content-Disposition"], r"actions-\d{8}-\d{4}\.csv")
        rows = list(csv.reader(io.StringIO(response.content.decode())))
        self.assertEqual(rows[0][:3], ["Time", "Operator", "Source"])
        self.assertEqual(len(rows), 6)
        self.assertIn("'=cmd|' /C calc'!A0", [cell for row in rows for cell in row])

    def test_it_keeps_queries_constant(self):
        client = self.client_for(self.viewer)
        client.get(URL)
        with CaptureQueriesContext(connection) as small:
            client.get(URL + "?per_page=200")
        for i in range(150):
            log("carol", Action.VERIFY, entry=f"m{i}")
        with CaptureQueriesContext(connection) as large:
            client.get(URL + "?per_page=200")
        self.assertEqual(len(small.captured_queries), len(large.captured_queries))
