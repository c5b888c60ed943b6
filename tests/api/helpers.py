"""Shared helpers of the API tests: the fixture registry, tokens, request headers."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from django.test import override_settings

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXCHANGES = json.loads((FIXTURES / "exchanges.json").read_text())
MODEL_FILES = {
    "qwen2.5-vl": {"config.json": "{}", "model.safetensors": "qwen-weights"},
    "siglip": {"config.json": '{"a": 1}', "model.safetensors": "siglip-weights"},
}


def write_fixture_registry(root: Path) -> tuple[Path, Path]:
    """The fixture layers in ``root/configs`` with model folders in ``root/models``."""
    registry_dir, models_dir = root / "configs", root / "models"
    registry_dir.mkdir(parents=True, exist_ok=True)
    for folder, files in MODEL_FILES.items():
        (models_dir / folder).mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            _write_if_changed(models_dir / folder / name, text)
    for layer in ("curated", "discovered"):
        name = f"model_registry.{layer}.json"
        text = (FIXTURES / "registry" / name).read_text()
        _write_if_changed(registry_dir / name, text.replace("$MODELS", str(models_dir)))
    return registry_dir, models_dir


def _write_if_changed(path: Path, text: str) -> None:
    """Unchanged files keep their mtime, so the cheap sync sees nothing new."""
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


class FixtureRegistryMixin:
    """A fresh copy of the fixture registry per test class, synced into the database."""

    @classmethod
    def setUpClass(cls):
        cls.tmp_root = Path(tempfile.mkdtemp(prefix="iw-api-"))
        cls.registry_dir, cls.models_dir = write_fixture_registry(cls.tmp_root)
        cls._dirs = override_settings(
            IMAGEWORKS_REGISTRY_DIR=cls.registry_dir,
            IMAGEWORKS_STAGING_DIR=cls.tmp_root / "_staging",
            IMAGEWORKS_LOG_DIR=cls.tmp_root / "logs",
            IMAGEWORKS_MODEL_ROOTS=[],
            IMAGEWORKS_VLLM_PORT=24001,
            IMAGEWORKS_VLLM_HOST="127.0.0.1",
            IMAGEWORKS_VLLM_ADMIN_URL="",
            IMAGEWORKS_VLLM_CONNECT_HOST="",
            IMAGEWORKS_LOADER_OPEN_READ=False,
        )
        cls._dirs.enable()
        super().setUpClass()

    def setUp(self):
        # The database rolls back after each test, the files do not: start each
        # test from the fixture files (same content, so no sync change is seen).
        write_fixture_registry(self.tmp_root)
        super().setUp()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls._dirs.disable()
            shutil.rmtree(cls.tmp_root, ignore_errors=True)

    @classmethod
    def sync(cls):
        from registry.audit import Actor
        from registry.services.sync import sync_registry

        result = sync_registry(Actor.system("tests"), force=True)
        assert result.ok, result.summary()
        return result


def make_token(user, scope: str = "read", label: str = "") -> str:
    from api.tokens import create_token

    _token, secret = create_token(user, label or f"{scope}-{user.username}", scope)
    return secret


def bearer(secret: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {secret}"}
