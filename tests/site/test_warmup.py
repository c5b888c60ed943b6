"""The web process's warm-up: after it, the first search and filtered page of a
fresh worker build nothing from the whole table, and start-up's objects are frozen
out of the collector's full passes. A failing step never stops the process."""

from __future__ import annotations

import gc
from unittest import mock

from django.db import connection, connections
from django.test import TestCase
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from imageworks_site import warmup
from registry.version import forget
from tests.base import PersonaMixin
from tests.registry.page_fixtures import bulk_entries

LIST = reverse("registry:modelentry_list")
HX = {"HTTP_HX_REQUEST": "true"}


class WarmUpTests(PersonaMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.make_personas()
        bulk_entries(30)

    def setUp(self):
        self.client = self.client_for(self.viewer)
        forget()  # a fresh worker: nothing derived from the rows yet
        self.addCleanup(gc.unfreeze)

    def warm(self) -> dict[str, float]:
        # The test's transaction must stay open; a worker really closes it.
        with mock.patch.object(connections, "close_all") as close_all:
            took = warmup.warm()
        close_all.assert_called_once()
        return took

    def whole_table_reads(self) -> list[str]:
        """SQL of the first search request that read every row's search text or
        the distinct filter choices (what a cold worker builds)."""
        with CaptureQueriesContext(connection) as ctx:
            response = self.client.get(LIST, {"q": "bulk model 7"}, **HX)
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "bulk-model-00007")
        builds = ('"search_text" FROM "registry_modelentry"', "SELECT DISTINCT")
        return [
            q["sql"]
            for q in ctx.captured_queries
            if any(marker in q["sql"] for marker in builds)
        ]

    def test_a_cold_worker_builds_on_its_first_search(self):
        self.assertEqual(len(self.whole_table_reads()), 2)

    def test_after_the_warm_up_the_first_search_builds_nothing(self):
        took = self.warm()
        self.assertEqual(
            set(took), {"urls", "templates", "registry data", "http client"}
        )
        self.assertEqual(self.whole_table_reads(), [])

    def test_start_up_objects_are_frozen(self):
        gc.unfreeze()
        self.warm()
        self.assertGreater(gc.get_freeze_count(), 10_000)

    def test_a_failing_step_is_logged_and_the_rest_still_run(self):
        def broken():
            raise RuntimeError("templates folder unreadable")

        steps = (("broken", broken), *warmup.STEPS)
        with (
            mock.patch.object(warmup, "STEPS", steps),
            self.assertLogs("imageworks_site.warmup", "WARNING") as logs,
        ):
            took = self.warm()
        self.assertIn("warm-up step 'broken' failed", logs.output[0])
        self.assertIn("registry data", took)
        self.assertEqual(self.whole_table_reads(), [])
