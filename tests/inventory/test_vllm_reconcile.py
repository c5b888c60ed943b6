"""A running vLLM (the fake server, a real process) whose served id or root differs
from its registry entry."""

from __future__ import annotations

import json

from django.test import TransactionTestCase

from backends.vllm import service
from inventory.choices import FindingKind
from inventory.models import Finding
from inventory.services import run_scan
from registry import layers
from registry.audit import Actor
from registry.models import ModelEntry
from registry.services.sync import sync_registry
from tests.backends.activation_fixtures import FakeVllmMixin
from tests.inventory.helpers import LibraryMixin

ACTOR = Actor.system("tests")


class VllmMismatchTests(FakeVllmMixin, LibraryMixin, TransactionTestCase):
    def edit_curated(self, name: str, **changes) -> None:
        path = self.lib.registry_dir / layers.CURATED_FILE
        items = json.loads(path.read_text())
        for item in items:
            if item["name"] == name:
                for key, value in changes.items():
                    if key == "model_path":
                        item["backend_config"]["model_path"] = value
                    else:
                        item[key] = value
        path.write_bytes(layers.dumps(items))
        assert sync_registry(ACTOR, force=True).ok

    def test_served_id_and_root_are_compared_with_the_registry(self):
        folder = self.lib.model("org/served")
        other = self.lib.model("org/other")
        self.lib.vllm("served", folder, served_model_id="served-v1")
        self.lib.save()
        act = service.activate(  # the scan fixtures are placeholder weights
            ModelEntry.objects.get(name="served"),
            ACTOR,
            options=service.SlotOptions(override_preflight=True, reason="fixture"),
        )
        self.assertEqual(act.state, "running")

        run = run_scan(ACTOR, refresh_backends=True)
        self.assertFalse(run.findings.filter(kind=FindingKind.VLLM_MISMATCH).exists())

        # Someone edits the entry while the old version keeps running.
        self.edit_curated("served", served_model_id="served-v2", model_path=str(other))
        run_scan(ACTOR, refresh_backends=True)
        finding = Finding.objects.get(kind=FindingKind.VLLM_MISMATCH)
        self.assertEqual(finding.entry_name, "served")
        self.assertIn(
            "serves served-v1, the registry's served id is served-v2", finding.message
        )
        self.assertIn(
            f"loaded {folder}, the registry's model path is {other}", finding.message
        )
        self.assertEqual(finding.fixes, ["command", "edit"])
        service.stop(ACTOR)
