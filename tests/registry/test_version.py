"""The registry version: one row that moves with every change to the mirror, read
without touching the big table; and what is cached on it (choices, search, ETags)."""

from __future__ import annotations

from unittest import mock

from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from registry import layers
from registry.choices import Action
from registry.models import ModelEntry
from registry.services.writeback import change_entry
from registry.version import (
    BY_KEY_MAX,
    bump,
    listing_version,
    per_registry_version,
    per_version,
    registry_version,
)
from tests.base import PersonaMixin
from tests.registry.test_writeback import SpliceFastPathTests, WritebackTestBase, _entry

LIST = reverse("registry:modelentry_list")
HX = {"HTTP_HX_REQUEST": "true"}


class VersionTests(TestCase):
    def test_reading_it_is_one_query_that_never_touches_the_entries(self):
        with CaptureQueriesContext(connection) as ctx:
            registry_version()
        self.assertEqual(len(ctx.captured_queries), 1)
        self.assertIn("registry_registryversion", ctx.captured_queries[0]["sql"])
        self.assertNotIn("registry_modelentry", ctx.captured_queries[0]["sql"])

    def test_a_bump_moves_it_and_a_rolled_back_bump_is_never_seen_again(self):
        before = registry_version()
        bump()
        after = registry_version()
        self.assertNotEqual(before, after)
        from django.db import transaction

        with self.assertRaises(RuntimeError), transaction.atomic():
            bump()
            rolled_back = registry_version()
            raise RuntimeError
        self.assertEqual(registry_version(), after)
        bump()
        self.assertNotIn(registry_version(), (before, after, rolled_back))

    def test_per_version_builds_once_per_version(self):
        build = mock.Mock(side_effect=lambda: build.call_count)
        self.assertEqual(per_version("t", build), 1)
        self.assertEqual(per_version("t", build), 1)
        bump()
        self.assertEqual(per_version("t", build), 2)

    def test_a_value_built_while_the_version_moved_is_not_kept(self):
        def build():
            bump()  # another process's sync committing mid-build
            return "mixed"

        self.assertEqual(per_version("u", build), "mixed")
        self.assertEqual(per_version("u", lambda: "clean"), "clean")

    def test_threads_asking_at_once_wait_for_one_build(self):
        """After a sync, the requests a threaded worker holds all want the new
        search index: one builds it, the others get that value."""
        import threading
        import time

        started = threading.Event()
        release = threading.Event()
        calls = []

        def build():
            calls.append(threading.current_thread().name)
            started.set()
            release.wait(5)
            return "index"

        results = []
        with mock.patch("registry.version.listing_version", return_value="v-test"):
            threads = [
                threading.Thread(
                    target=lambda: results.append(per_version("one-flight", build))
                )
                for _ in range(4)
            ]
            threads[0].start()
            started.wait(5)
            for thread in threads[1:]:
                thread.start()
            time.sleep(0.2)  # let them reach the build (or the wait for it)
            release.set()
            for thread in threads:
                thread.join(5)
        self.assertEqual(len(calls), 1)
        self.assertEqual(results, ["index"] * 4)

    def test_per_registry_version_builds_once_per_key_and_any_bump_starts_afresh(self):
        build = mock.Mock(side_effect=lambda: build.call_count)
        self.assertEqual(per_registry_version("a", build), 1)
        self.assertEqual(per_registry_version("a", build), 1)
        self.assertEqual(per_registry_version("b", build), 2)
        bump(listing=False)  # e.g. a verify recording a hash: counts may move too
        self.assertEqual(per_registry_version("a", build), 3)

    def test_per_registry_version_keeps_a_bounded_number_of_keys(self):
        for i in range(BY_KEY_MAX + 10):
            per_registry_version(("k", i), lambda i=i: i)
        build = mock.Mock(return_value="rebuilt")
        self.assertEqual(per_registry_version(("k", 0), build), "rebuilt")  # evicted
        self.assertEqual(
            per_registry_version(("k", BY_KEY_MAX + 9), build), BY_KEY_MAX + 9
        )


class SyncAndWritebackBumpTests(WritebackTestBase):
    def test_a_sync_that_changes_rows_moves_it_and_a_no_change_sync_does_not(self):
        self.small_registry()
        synced = registry_version()
        from registry.services.sync import sync_registry

        self.assertTrue(sync_registry(self.actor).no_change)
        self.assertEqual(registry_version(), synced)
        self.write(layers.CURATED_FILE, [_entry("alpha"), _entry("gamma")])
        sync_registry(self.actor)
        self.assertNotEqual(registry_version(), synced)

    def test_a_one_entry_write_back_moves_it(self):
        SpliceFastPathTests.registry(self)
        before, listing = registry_version(), listing_version()
        row = ModelEntry.objects.get(name="m2")
        with mock.patch.object(
            layers, "write_layer_entries", side_effect=AssertionError("full path")
        ):
            self.set_display("m2", "Edited", expected_fingerprint=row.fingerprint)
        self.assertNotEqual(registry_version(), before)
        self.assertNotEqual(listing_version(), listing)  # the search text changed

    def test_a_write_back_that_changes_no_listed_field_keeps_the_listing(self):
        """A verify recording a hash leaves the search index and choices valid."""
        SpliceFastPathTests.registry(self)
        before, listing = registry_version(), listing_version()
        with mock.patch.object(
            layers, "write_layer_entries", side_effect=AssertionError("full path")
        ):
            change_entry(
                self.actor,
                Action.VERIFY,
                "m2",
                layers.CURATED,
                lambda raw: {
                    **raw,
                    "version_lock": {"last_verified": "2026-01-01T00:00:00Z"},
                },
            )
        self.assertNotEqual(registry_version(), before)
        self.assertEqual(listing_version(), listing)


class CachedOnTheVersionTests(PersonaMixin, WritebackTestBase):
    """Through the page: what a sync changes shows at once, without a restart."""

    def setUp(self):
        super().setUp()
        self.make_personas()
        self.small_registry()
        self.client = self.client_for(self.viewer)

    def test_filter_choices_and_search_follow_a_sync(self):
        page = self.client.get(LIST + "?q=gamma", **HX).content.decode()
        self.assertIn('data-testid="match-count">0<', page)
        self.write(
            layers.CURATED_FILE,
            [_entry("alpha"), _entry("beta"), _entry("gamma", backend="ollama")],
        )
        self.client.get(LIST)  # the full page runs the implicit sync
        page = self.client.get(LIST + "?q=gamma", **HX).content.decode()
        self.assertIn('data-name="gamma"', page)
        self.assertIn('<option value="ollama"', self.client.get(LIST).content.decode())

    def test_the_counts_follow_a_write_that_changes_no_listed_field(self):
        """Counts are kept per registry version: a change to the testing flag only
        (no listing change) still shows at once."""
        page = self.client.get(LIST, **HX).content.decode()
        self.assertIn('data-testid="match-count">2<', page)
        self.assertNotIn('data-testid="testing-hidden"', page)
        ModelEntry.objects.filter(name="beta").update(testing=True)
        bump(listing=False)
        page = self.client.get(LIST, **HX).content.decode()
        self.assertIn('data-testid="match-count">1<', page)
        self.assertIn("1 testing model hidden", page)

    def test_a_partial_answers_304_until_the_registry_or_the_slot_changes(self):
        url = LIST + "?q=alpha"
        first = self.client.get(url, **HX)
        self.assertEqual(first.status_code, 200)
        etag = first["ETag"]
        self.assertIn("no-cache", first["Cache-Control"])
        again = self.client.get(url, HTTP_IF_NONE_MATCH=etag, **HX)
        self.assertEqual(again.status_code, 304)
        self.assertEqual(again.content, b"")
        # Another user's view of the same URL is not theirs to reuse.
        other = self.client_for(self.operator).get(url, HTTP_IF_NONE_MATCH=etag, **HX)
        self.assertEqual(other.status_code, 200)
        # An edit through the site moves the registry version.
        self.set_display("alpha", "Alpha edited")
        edited = self.client.get(url, HTTP_IF_NONE_MATCH=etag, **HX)
        self.assertEqual(edited.status_code, 200)
        self.assertIn("Alpha edited", edited.content.decode())
        # The vLLM slot changing (a queued activation) changes the badges: new ETag.
        from registry.choices import JobKind
        from registry.jobs import enqueue

        etag = edited["ETag"]
        with mock.patch("django_q.tasks.async_task"):
            enqueue(
                JobKind.ACTIVATE,
                actor=self.actor,
                entry=ModelEntry.objects.get(name="alpha"),
            )
        queued = self.client.get(url, HTTP_IF_NONE_MATCH=etag, **HX)
        self.assertEqual(queued.status_code, 200)

    def test_full_pages_and_exports_are_never_conditional(self):
        page = self.client.get(LIST)
        self.assertFalse(page.has_header("ETag"))
        export = self.client.get(LIST + "?_export=csv", **HX)
        self.assertFalse(export.has_header("ETag"))

    def test_a_304_costs_a_constant_handful_of_queries(self):
        url = LIST + "?backend=vllm"
        etag = self.client.get(url, **HX)["ETag"]
        with CaptureQueriesContext(connection) as ctx:
            response = self.client.get(url, HTTP_IF_NONE_MATCH=etag, **HX)
        self.assertEqual(response.status_code, 304)
        tables = " ".join(q["sql"] for q in ctx.captured_queries)
        self.assertNotIn('FROM "registry_modelentry"', tables)
        self.assertLessEqual(len(ctx.captured_queries), 10)
