"""Shared setup for the editor and import tests: a sample registry per test."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from django.test import override_settings

from registry import layers
from registry.audit import Actor
from registry.sample import write_sample_registry
from registry.services.sync import sync_registry

QWEN = "qwen2.5-vl-7b-instruct_(AWQ)"
FLORENCE = "florence-2-large_(FP16)"
QWEN3VL = "qwen3-vl-8b-instruct_(FP8)"
GPTOSS = "gpt-oss-20b_(MXFP4)"


class SampleRegistryMixin:
    """``self.registry_dir`` holds the sample registry, synced into the mirror."""

    def setUp(self):
        super().setUp()
        self._tmp = Path(tempfile.mkdtemp(prefix="iw-edit-"))
        self.registry_dir = self._tmp / "configs"
        self._override = override_settings(
            IMAGEWORKS_REGISTRY_DIR=self.registry_dir,
            IMAGEWORKS_STAGING_DIR=self._tmp / "_staging",
        )
        self._override.enable()
        write_sample_registry(self.registry_dir, self._tmp / "models", force=True)
        sync_registry(Actor.system("test"), force=True)

    def tearDown(self):
        self._override.disable()
        for path in self._tmp.rglob("*"):
            try:
                path.chmod(0o755 if path.is_dir() else 0o644)
            except OSError:
                pass
        self._tmp.chmod(0o755)
        shutil.rmtree(self._tmp, ignore_errors=True)
        super().tearDown()

    @property
    def curated_path(self) -> Path:
        return self.registry_dir / layers.CURATED_FILE

    def curated_items(self) -> list[dict]:
        return json.loads(self.curated_path.read_text())

    def curated(self, name: str) -> dict | None:
        for item in self.curated_items():
            if item.get("name") == name:
                return item
        return None

    def outside_edit(self, name: str, **changes) -> None:
        """Change the curated file like a text editor would (no lock, no sync)."""
        items = self.curated_items()
        for item in items:
            if item.get("name") == name:
                item.update(changes)
        self.curated_path.write_bytes(layers.dumps(items))
