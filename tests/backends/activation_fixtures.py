"""Shared setup for the Django-level activation tests."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from django.test import override_settings

from backends.vllm import server
from registry.models import ModelEntry
from tests.backends.model_files import write_model
from tests.backends.vllm_helpers import FAKE_ENV, FAKE_LAUNCHER, free_port, kill_fakes


def make_entry(
    name: str,
    weights_root: Path,
    *,
    backend: str = "vllm",
    files: bool = True,
    shards: int = 1,
    **merged_extra,
) -> ModelEntry:
    """A registry entry whose folder holds a small real model (safetensors shards,
    config, tokenizer), so it passes preflight; ``files=False``: an empty folder."""
    path = weights_root / name.replace("/", "_")
    path.mkdir(parents=True, exist_ok=True)
    if files:
        write_model(path, shards=shards)
    bc = {
        "port": 24002,
        "model_path": str(path),
        "extra_args": merged_extra.pop("extra_args", []),
    }
    merged = {
        "name": name,
        "backend": backend,
        "backend_config": bc,
        "served_model_id": "None",
        **merged_extra,
    }
    served = merged.get("served_model_id")
    return ModelEntry.objects.create(
        name=name,
        backend=backend,
        served_model_id="" if served in (None, "None") else served,
        backend_config=bc,
        curated_raw=merged,
        provenance="curated",
        fingerprint=hashlib.sha256(name.encode()).hexdigest(),
    )


class FakeVllmMixin:
    """override_settings for the fake launcher on a free port, temp dirs, cleanup."""

    start_timeout = 10.0
    stop_grace = 1.0

    def setUp(self):
        super().setUp()
        self.tmp = Path(tempfile.mkdtemp(prefix="iw-activation-"))
        self.port = free_port()
        self._env_backup = {k: os.environ.get(k) for k in FAKE_ENV}
        self.settings_override = override_settings(
            IMAGEWORKS_VLLM_LAUNCHER=FAKE_LAUNCHER,
            IMAGEWORKS_VLLM_PORT=self.port,
            IMAGEWORKS_VLLM_HOST="127.0.0.1",
            IMAGEWORKS_VLLM_ADMIN_URL="",
            IMAGEWORKS_VLLM_START_TIMEOUT=self.start_timeout,
            IMAGEWORKS_VLLM_STOP_GRACE=self.stop_grace,
            IMAGEWORKS_STAGING_DIR=self.tmp / "_staging",
            IMAGEWORKS_LOG_DIR=self.tmp / "logs",
            # The fake's knobs pass through the allow-list in tests only.
            IMAGEWORKS_VLLM_ENV_ALLOWLIST=["PATH", *FAKE_ENV],
        )
        self.settings_override.enable()
        # A cleanup, not tearDown: overrides a subclass enables later are undone first
        # (last in, first out). Undone in the other order, Django restores the later
        # override's snapshot, i.e. this one's settings, for every later test.
        self.addCleanup(self.settings_override.disable)
        self.weights = self.tmp / "weights"

    def tearDown(self):
        kill_fakes()
        for k, v in self._env_backup.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        server._POPENS.clear()
        shutil.rmtree(self.tmp, ignore_errors=True)
        super().tearDown()

    def fake_env(self, **values):
        for k, v in values.items():
            os.environ[f"FAKE_VLLM_{k.upper()}"] = str(v)

    @property
    def state_path(self) -> Path:
        return self.tmp / "_staging" / "active_vllm.json"
