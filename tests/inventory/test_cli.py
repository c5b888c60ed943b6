"""``imageworks-models reconcile [--json]`` in-process (the same scan as the site)."""

from __future__ import annotations

import json

import pytest
from django.test import TestCase

from imageworks_site.cli import main
from inventory.models import ScanRun
from registry.choices import Action, Source
from registry.models import ActionLog
from tests.inventory.helpers import LibraryMixin


class ReconcileCliTests(LibraryMixin, TestCase):
    @pytest.fixture(autouse=True)
    def _capsys(self, capsys):
        self.capsys = capsys

    def setUp(self):
        super().setUp()
        self.lib.vllm("gone", self.lib.root / "nope")
        self.lib.model("stray/orphan", size=2000)
        self.lib.save()

    def test_json_output_and_the_scan_is_stored(self):
        self.assertEqual(main(["reconcile", "--json", "--no-refresh"]), 0)
        out = json.loads(self.capsys.readouterr().out)
        kinds = sorted(f["kind"] for f in out["findings"])
        self.assertEqual(kinds, ["orphan_folder", "path_missing"])
        missing = next(f for f in out["findings"] if f["kind"] == "path_missing")
        self.assertEqual(missing["entry"], "gone")
        self.assertEqual(missing["fixes"], ["edit", "mark_deprecated"])
        self.assertEqual(out["scan"]["roots"], [str(self.lib.root)])
        self.assertEqual(ScanRun.objects.count(), 1)
        row = ActionLog.objects.get(action=Action.RECONCILE)
        self.assertEqual(row.source, Source.CLI)

    def test_table_output_kind_filter_and_cached(self):
        self.assertEqual(
            main(["reconcile", "--no-refresh", "--kind", "orphan_folder"]), 0
        )
        out = self.capsys.readouterr().out
        self.assertIn("Orphan folder", out)
        self.assertIn("stray/orphan", out)
        self.assertNotIn("gone", out)
        self.assertEqual(main(["reconcile", "--cached", "--json"]), 0)
        cached = json.loads(self.capsys.readouterr().out)
        self.assertEqual(len(cached["findings"]), 2)
        self.assertEqual(ScanRun.objects.count(), 1)  # --cached did not scan

    def test_cached_without_a_scan_is_an_error(self):
        self.assertEqual(main(["reconcile", "--cached"]), 1)
        self.assertIn("No scan stored yet", self.capsys.readouterr().err)

    def test_unknown_kind_is_a_usage_error(self):
        self.assertEqual(main(["reconcile", "--kind", "nope"]), 2)
