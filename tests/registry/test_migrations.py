"""Upgrading a site keeps its mirror: migration 0004 drops the stored merged copy and
re-fingerprints rows, so the first sync after the upgrade sees nothing changed."""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import TransactionTestCase, override_settings

from registry import layers
from registry.audit import Actor
from registry.models import ModelEntry
from registry.services.sync import sync_registry

BEFORE = [("registry", "0003_ordered_json")]


class DropStoredMergedMigrationTests(TransactionTestCase):
    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp())
        self.curated = {"name": "alpha", "backend": "vllm", "display_name": "Alpha"}
        # 1e-05: the standard encoder writes "1e-05", orjson "0.00001", so the old
        # fingerprint differs from the new one for this entry.
        self.discovered = {"name": "alpha", "generation_defaults": {"min_p": 1e-05}}
        (self.tmp / layers.CURATED_FILE).write_text(json.dumps([self.curated]))
        (self.tmp / layers.DISCOVERED_FILE).write_text(json.dumps([self.discovered]))

    def tearDown(self):
        # Leave the database at the latest migration for the next test.
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())

    def test_rows_are_refingerprinted_and_the_next_sync_changes_nothing(self):
        executor = MigrationExecutor(connection)
        executor.migrate(BEFORE)
        old_apps = executor.loader.project_state(BEFORE).apps
        OldEntry = old_apps.get_model("registry", "ModelEntry")
        merged = layers.merge_entry_dicts(self.discovered, self.curated)
        # A row as the old code wrote it: stdlib-json fingerprint, merged stored.
        old_fp = hashlib.sha256(
            json.dumps(
                [self.curated, self.discovered],
                sort_keys=True,
                separators=(",", ":"),
                ensure_ascii=False,
            ).encode()
        ).hexdigest()
        OldEntry.objects.create(
            name="alpha",
            display_name="Alpha",
            backend="vllm",
            provenance="both",
            in_curated=True,
            in_discovered=True,
            curated_raw=self.curated,
            discovered_raw=self.discovered,
            merged=merged,
            fingerprint=old_fp,
        )

        # Up to the latest migration: the code below (sync) is today's.
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())

        row = ModelEntry.objects.get(name="alpha")
        new_fp = layers.entry_fingerprint(self.curated, self.discovered)
        self.assertNotEqual(new_fp, old_fp)
        self.assertEqual(row.fingerprint, new_fp)
        self.assertEqual(row.merged, merged)  # derived now, same content
        with override_settings(IMAGEWORKS_REGISTRY_DIR=str(self.tmp)):
            result = sync_registry(Actor.system("test"))
        self.assertEqual((result.added, result.changed, result.removed), ([], [], []))
