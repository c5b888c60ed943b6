"""Models page glue: page-load sync, the slot watch, health cards that never fail a GET."""

from __future__ import annotations

import json
from unittest import mock

from django.db import OperationalError
from django.test import TestCase, override_settings
from django.urls import reverse

from registry.models import ActionLog, ModelEntry
from registry.services.sync import SyncResult
from tests.base import PersonaMixin
from tests.registry.page_fixtures import seed_scenario

LIST = reverse("registry:modelentry_list")
HX = {"HTTP_HX_REQUEST": "true"}


class PageLoadSyncTests(PersonaMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.make_personas()
        seed_scenario()

    def test_a_missing_registry_folder_keeps_the_rows_and_writes_no_audit_row(self):
        before = ModelEntry.objects.count()
        with override_settings(IMAGEWORKS_REGISTRY_DIR="/nonexistent/iw-registry"):
            response = self.client_for(self.viewer).get(LIST)
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, 'data-testid="sync-error"')
        self.assertContains(response, "Registry folder not found")
        self.assertEqual(ModelEntry.objects.count(), before)
        self.assertFalse(ActionLog.objects.filter(action="sync").exists())

    def test_htmx_partials_and_exports_do_not_sync(self):
        with mock.patch("registry.services.sync.sync_registry") as sync:
            self.client_for(self.viewer).get(LIST + "?backend=vllm", **HX)
            self.client_for(self.viewer).get(LIST + "?_export=csv")
        sync.assert_not_called()

    def test_the_full_page_runs_an_implicit_sync(self):
        with mock.patch("registry.services.sync.sync_registry") as sync:
            sync.return_value = SyncResult()
            self.client_for(self.viewer).get(LIST)
        self.assertIs(sync.call_args.kwargs["explicit"], False)


class SlotWatchTests(PersonaMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.make_personas()

    def test_204_while_unchanged_and_slot_changed_when_it_moved(self):
        client = self.client_for(self.viewer)
        url = reverse("backends:slot_watch")
        first = client.get(url, **HX)
        self.assertEqual(first.status_code, 200)
        self.assertNotIn("HX-Trigger", first)
        token = first.content.decode().split("since=")[1].split('"')[0]
        from urllib.parse import unquote

        same = client.get(url, {"since": unquote(token)}, **HX)
        self.assertEqual(same.status_code, 204)
        moved = client.get(url, {"since": "running|1:running|-"}, **HX)
        self.assertEqual(moved.status_code, 200)
        self.assertIn("slotChanged", json.loads(moved["HX-Trigger"]))


class HealthCardNeverFailsTests(PersonaMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.make_personas()

    def test_a_locked_database_during_the_refresh_shows_the_stored_status(self):
        with mock.patch(
            "backends.health.check.refresh_if_stale",
            side_effect=OperationalError("database table is locked"),
        ):
            response = self.client_for(self.viewer).get(
                reverse("health:card", args=["ollama"])
            )
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "Showing the last stored result")
