"""The search index shared through a file: a reload that renames an entry writes
the new index before any page can see the new version, so every worker's next
search loads it instead of reading every row; a file that is broken, missing or
unwritable only costs a build, never a wrong result."""

from __future__ import annotations

import tempfile
from pathlib import Path
from unittest import mock

from django.conf import settings
from django.db import connection
from django.test import TestCase, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from registry import layers, search, search_share
from registry.models import ModelEntry
from registry.version import bump, forget, listing_version, registry_version
from tests.base import PersonaMixin
from tests.registry.test_sync import RegistryDirMixin, _entry

LIST = reverse("registry:modelentry_list")
HX = {"HTTP_HX_REQUEST": "true"}
#: What a worker without the index runs: every row's search text.
WHOLE_TABLE = '"search_text" FROM "registry_modelentry"'


def search_spying_on_rankings(test: TestCase, text: str):
    """Search as ``test.client``: the matching names, and the index each ranking
    computed meanwhile was computed on (none when a remembered one served)."""
    with mock.patch.object(
        search, "rank_prepared", wraps=search.rank_prepared
    ) as ranked:
        response = test.client.get(LIST, {"q": text}, **HX)
    test.assertEqual(response.status_code, 200)
    names = [row.record.name for row in response.context["table"].paginated_rows]
    return names, [call.args[1] for call in ranked.call_args_list]


class SharedIndexTests(RegistryDirMixin, PersonaMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.make_personas()
        self.folder = Path(tempfile.mkdtemp(prefix="search-index-"))
        override = override_settings(SEARCH_INDEX_DIR=self.folder)
        override.enable()
        self.addCleanup(override.disable)
        self.client = self.client_for(self.viewer)
        entries = [
            _entry(f"model-{i:03d}", display_name=f"Model {i}") for i in range(40)
        ]
        self.write(layers.CURATED_FILE, entries)
        self.write(layers.DISCOVERED_FILE, [])
        self.assertTrue(self.sync().ok)

    def files(self) -> list[str]:
        return sorted(p.name for p in self.folder.iterdir())

    def current_file(self) -> Path:
        """The file of the listing version pages see now."""
        return self.folder / f"registry-modelentry-{listing_version(fresh=True)}.json"

    def search(self, text: str):
        """A search from a worker that has no index of its own yet: the matching
        names, and whether it read every row to build one."""
        forget()
        with CaptureQueriesContext(connection) as ctx:
            response = self.client.get(LIST, {"q": text}, **HX)
        self.assertEqual(response.status_code, 200)
        names = [row.record.name for row in response.context["table"].paginated_rows]
        built = any(WHOLE_TABLE in q["sql"] for q in ctx.captured_queries)
        return names, built

    def rename(self, name: str, display_name: str) -> None:
        entries = [
            _entry(f"model-{i:03d}", display_name=f"Model {i}") for i in range(40)
        ]
        for entry in entries:
            if entry["name"] == name:
                entry["display_name"] = display_name
        self.write(layers.CURATED_FILE, entries)
        result = self.sync()
        self.assertEqual(result.changed, [name])

    def test_a_reload_that_renames_writes_the_index_every_worker_then_loads(self):
        self.rename("model-007", "Heron captioner")
        self.assertEqual(self.files(), [self.current_file().name])
        names, built = self.search("heron captoner")
        self.assertEqual(names, ["model-007"])
        self.assertFalse(built)
        # The old name no longer finds it: the file is the new version's.
        names, _ = self.search("model 7")
        self.assertNotIn("model-007", names[:1])

    def test_a_reload_that_changes_no_listing_field_keeps_the_listing(self):
        before = (registry_version(fresh=True), listing_version(fresh=True))
        entries = [
            _entry(f"model-{i:03d}", display_name=f"Model {i}") for i in range(40)
        ]
        entries[3]["metadata"] = {"notes": "re-quantised"}
        self.write(layers.CURATED_FILE, entries)
        self.assertEqual(self.sync().changed, ["model-003"])
        self.assertNotEqual(registry_version(fresh=True), before[0])
        self.assertEqual(listing_version(fresh=True), before[1])

    def test_without_a_file_the_first_worker_builds_and_shares_it(self):
        row = ModelEntry.objects.get(name="model-012")
        row.search_text = "model-012\nkestrel detector"
        row.save()
        bump()  # a write that bypassed sync: no file for this version
        self.assertFalse(self.current_file().exists())
        names, built = self.search("kestrel")
        self.assertEqual((names, built), (["model-012"], True))
        self.assertEqual(self.files(), [self.current_file().name])
        names, built = self.search("kestrel")
        self.assertEqual((names, built), (["model-012"], False))

    def test_a_broken_file_is_ignored_and_replaced(self):
        self.rename("model-021", "Osprey segmenter")
        (path,) = self.folder.iterdir()
        path.write_bytes(b'{"texts": ["osprey"], "owners": []')
        with self.assertLogs("registry.search_share", "WARNING") as logs:
            names, built = self.search("osprey")
        self.assertIn("ignoring the shared search index", logs.output[0])
        self.assertEqual((names, built), (["model-021"], True))
        names, built = self.search("osprey")
        self.assertEqual((names, built), (["model-021"], False))

    def test_an_unwritable_folder_costs_a_build_not_a_result(self):
        blocker = self.folder / "not-a-folder"
        blocker.write_text("")
        with (
            override_settings(SEARCH_INDEX_DIR=blocker),
            self.assertLogs("registry.search_share", "WARNING") as logs,
        ):
            self.rename("model-030", "Falcon tagger")
            names, built = self.search("falcon")
        self.assertIn("could not share the search index", logs.output[0])
        self.assertEqual((names, built), (["model-030"], True))

    def test_no_file_is_written_when_a_sync_commits_during_the_build(self):
        bump()
        started_at = self.current_file()
        real = search_share.from_rows

        def racing(model):
            index = real(model)
            bump()  # another writer committed while the rows were read
            return index

        forget()
        with mock.patch.object(search_share, "from_rows", racing):
            names, _ = self.search("model 5")
        self.assertIn("model-005", names)
        self.assertFalse(started_at.exists())
        self.assertFalse(self.current_file().exists())

    def test_older_versions_files_are_removed(self):
        self.rename("model-001", "First rename")
        self.rename("model-001", "Second rename")
        self.assertEqual(self.files(), [self.current_file().name])


class SharedRankingsTests(RegistryDirMixin, PersonaMixin, TestCase):
    """With a shared cache (Redis in production, and in the PostgreSQL + Redis test
    lane; a local-memory stand-in otherwise), a query one worker ranked is not
    ranked again by another."""

    def setUp(self):
        super().setUp()
        shared = {"SHARED_CACHE": True}
        if not settings.SHARED_CACHE:
            shared["CACHES"] = {
                "default": {
                    "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                    "LOCATION": f"shared-rankings-{id(self)}",
                }
            }
        override = override_settings(
            SEARCH_INDEX_DIR=Path(tempfile.mkdtemp(prefix="search-index-")), **shared
        )
        override.enable()
        self.addCleanup(override.disable)
        self.make_personas()
        self.client = self.client_for(self.viewer)
        self.write(layers.CURATED_FILE, [_entry(f"egret-{i:02d}") for i in range(20)])
        self.write(layers.DISCOVERED_FILE, [])
        self.assertTrue(self.sync().ok)

    def search_in_a_new_process(self, text: str):
        """The matching names, and how many times a ranking was computed."""
        forget()
        names, ranked_on = search_spying_on_rankings(self, text)
        return names, len(ranked_on)

    def test_a_query_is_ranked_once_for_every_process(self):
        first = self.search_in_a_new_process("egret 07")
        self.assertEqual(first[0][0], "egret-07")
        self.assertEqual(first[1], 1)
        self.assertEqual(self.search_in_a_new_process("egret 07"), (first[0], 0))
        # Another query, or the same one after a reload, is ranked again.
        self.assertEqual(self.search_in_a_new_process("egret 12")[1], 1)
        self.write(layers.CURATED_FILE, [_entry(f"egret-{i:02d}") for i in range(21)])
        self.assertTrue(self.sync().ok)
        names, computed = self.search_in_a_new_process("egret 07")
        self.assertEqual((names[0], computed), ("egret-07", 1))

    def test_the_cache_being_down_costs_only_the_ranking(self):
        with (
            mock.patch.object(
                search_share.cache, "get", side_effect=ConnectionError("redis down")
            ),
            mock.patch.object(
                search_share.cache, "set", side_effect=ConnectionError("redis down")
            ),
            self.assertLogs("registry.search_share", "WARNING") as logs,
        ):
            names, computed = self.search_in_a_new_process("egret 03")
        self.assertEqual((names[0], computed), ("egret-03", 1))
        self.assertIn("shared search rankings unavailable: redis down", logs.output[0])

    def test_without_a_shared_cache_each_process_ranks(self):
        with override_settings(SHARED_CACHE=False):
            self.assertEqual(self.search_in_a_new_process("egret 05")[1], 1)
            self.assertEqual(self.search_in_a_new_process("egret 05")[1], 1)


class CarriedRankingsTests(RegistryDirMixin, PersonaMixin, TestCase):
    """A reload that renames one entry keeps this worker's rankings of the other
    queries: they are carried to the new index, not ranked again."""

    def setUp(self):
        super().setUp()
        override = override_settings(
            SEARCH_INDEX_DIR=Path(tempfile.mkdtemp(prefix="search-index-")),
            SHARED_CACHE=False,
        )
        override.enable()
        self.addCleanup(override.disable)
        self.make_personas()
        self.client = self.client_for(self.viewer)
        self.entries = [
            _entry(f"heron-{i:02d}", display_name=f"Heron {i}") for i in range(30)
        ]
        self.write(layers.CURATED_FILE, self.entries)
        self.write(layers.DISCOVERED_FILE, [])
        self.assertTrue(self.sync().ok)

    def test_a_rename_rescores_only_the_renamed_entry(self):
        forget()
        before, _ = search_spying_on_rankings(self, "heron 2")
        self.assertEqual(before[0], "heron-02")
        self.entries[2]["display_name"] = "Egret 2"
        self.write(layers.CURATED_FILE, self.entries)
        self.assertEqual(self.sync().changed, ["heron-02"])
        after, ranked_afresh = search_spying_on_rankings(self, "heron 2")
        # Only the one renamed entry was scored, on an index of its own lines.
        self.assertEqual([len(index.order) for index in ranked_afresh], [1])
        self.assertNotEqual(after[0], "heron-02")
        forget()
        self.assertEqual(search_spying_on_rankings(self, "heron 2")[0], after)
