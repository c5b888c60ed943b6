"""A real model library in a temporary folder: model root, registry files, Ollama store.

``LibraryMixin`` (for Django test cases) points the settings at a fresh temp dir per
test; ``Library`` builds folders and registry entries in it. Everything lives under
``self.tmp`` and is removed after the test.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from django.test import override_settings

from registry import layers
from registry.audit import Actor
from registry.services.sync import sync_registry


def weights(seed: str, size: int) -> bytes:
    out = bytearray()
    block = hashlib.sha256(seed.encode()).digest()
    while len(out) < size:
        block = hashlib.sha256(block).digest()
        out.extend(block)
    return bytes(out[:size])


class Library:
    """Folders under ``root`` and entries in the registry files of ``registry_dir``."""

    def __init__(self, base: Path):
        self.base = base
        self.root = base / "models"
        self.registry_dir = base / "configs"
        self.ollama_dir = base / "ollama-store"
        self.root.mkdir(parents=True, exist_ok=True)
        self.registry_dir.mkdir(parents=True, exist_ok=True)
        self.curated: list[dict] = []
        self.discovered: list[dict] = []

    # --- folders -------------------------------------------------------------------

    def folder(self, rel: str, files: dict[str, bytes | int | str]) -> Path:
        """A folder with files (an int is a size of pseudo-random bytes)."""
        folder = self.root / rel
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, int):
                data = weights(f"{rel}/{name}", content)
            elif isinstance(content, str):
                data = content.encode()
            else:
                data = content
            path.write_bytes(data)
        return folder

    def model(self, rel: str, size: int = 10_000) -> Path:
        return self.folder(
            rel,
            {"config.json": "{}", "model.safetensors": size, "tokenizer.json": "{}"},
        )

    # --- registry entries ----------------------------------------------------------------

    def vllm(self, name: str, path: Path | str | None, *, artifacts=False, **extra):
        entry = {
            "name": name,
            "display_name": name,
            "backend": "vllm",
            "backend_config": {
                "port": 24001,
                "model_path": str(path) if path else "",
                "extra_args": [],
            },
            "served_model_id": extra.pop("served_model_id", "None"),
            "roles": ["chat"],
            "metadata": {"registry_layer": "curated"},
            **extra,
        }
        self.curated.append(entry)
        disc = {"name": name, "backend": "vllm"}
        if path:
            disc["download_path"] = str(path)
        if artifacts and path:
            from registry import hashing

            result = hashing.hash_directory(path)
            disc["artifacts"] = {
                "aggregate_sha256": result.aggregate_sha256,
                "files": result.files_as_artifacts(),
            }
        self.discovered.append(disc)
        return entry

    def ollama(self, name: str, tag: str, *, base_url: str = "", **extra):
        config = {"port": 11434, "model_path": f"ollama:/{tag}"}
        if base_url:
            config["base_url"] = base_url
        entry = {
            "name": name,
            "display_name": name,
            "backend": "ollama",
            "backend_config": config,
            "served_model_id": tag,
            "roles": ["chat"],
            "metadata": {"registry_layer": "curated", **extra.pop("metadata", {})},
            **extra,
        }
        self.curated.append(entry)
        return entry

    def save(self, sync: bool = True):
        (self.registry_dir / layers.CURATED_FILE).write_bytes(
            layers.dumps(self.curated)
        )
        (self.registry_dir / layers.DISCOVERED_FILE).write_bytes(
            layers.dumps(self.discovered)
        )
        if sync:
            result = sync_registry(Actor.system("tests"), force=True)
            assert result.ok, result.summary()

    # --- the Ollama store ------------------------------------------------------------------

    def ollama_blob(self, seed: str, size: int) -> str:
        data = weights(seed, size)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs = self.ollama_dir / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        (blobs / digest.replace(":", "-")).write_bytes(data)
        return digest

    def ollama_manifest(self, tag: str, layers_: list[str]) -> str:
        """Write a manifest for ``tag`` using these blob digests; returns its digest."""
        name, _, version = tag.partition(":")
        parts = name.split("/")
        if len(parts) == 1:
            parts = ["registry.ollama.ai", "library", *parts]
        elif "." not in parts[0]:
            parts = ["registry.ollama.ai", *parts]
        folder = self.ollama_dir / "manifests" / Path(*parts)
        folder.mkdir(parents=True, exist_ok=True)
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"digest": layers_[0], "size": 10},
            "layers": [{"digest": d, "size": 1} for d in layers_[1:]],
        }
        raw = json.dumps(manifest).encode()
        (folder / (version or "latest")).write_bytes(raw)
        return hashlib.sha256(raw).hexdigest()


class LibraryMixin:
    """A fresh library per test, with the settings pointing at it."""

    ollama_store = False

    def setUp(self):
        super().setUp()
        self.tmp = Path(tempfile.mkdtemp(prefix="iw-inventory-"))
        self.lib = Library(self.tmp)
        self._override = override_settings(
            IMAGEWORKS_REGISTRY_DIR=self.lib.registry_dir,
            IMAGEWORKS_STAGING_DIR=self.tmp / "_staging",
            IMAGEWORKS_LOG_DIR=self.tmp / "logs",
            IMAGEWORKS_MODEL_ROOTS=[self.lib.root],
            IMAGEWORKS_OLLAMA_MODELS_DIR=str(self.lib.ollama_dir)
            if self.ollama_store
            else "",
            IMAGEWORKS_OLLAMA_URL="",
            IMAGEWORKS_TRASH_DIR="",
        )
        self._override.enable()

    def tearDown(self):
        self._override.disable()
        for path in [self.tmp, *self.tmp.rglob("*")]:
            try:
                if path.is_dir() and not path.is_symlink():
                    os.chmod(path, 0o755)
            except OSError:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)
        super().tearDown()
