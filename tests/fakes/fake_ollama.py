"""A fake Ollama server speaking the real JSON shapes of /api/version, /api/tags, /api/ps.

``installed`` and ``loaded`` are lists of tag names; change them at runtime with
``fake.configure(loaded=[...])`` or ``POST /_control {"loaded": [...]}``.
Run standalone: ``python -m tests.fakes.fake_ollama --state '{"loaded": ["qwen3:8b"]}'``.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes.base import FakeServer, main


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _size(name: str) -> int:
    return 1_000_000_000 + int(_digest(name)[:6], 16) * 1000


class FakeOllama(FakeServer):
    def __init__(self, *, installed=None, loaded=None, version="0.12.6", **kwargs):
        super().__init__(**kwargs)
        self.version = version
        self.installed = list(
            installed
            if installed is not None
            else ["qwen3:8b", "llama3.1-local:latest"]
        )
        self.loaded = list(loaded or [])

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "version": self.version,
            "installed": self.installed,
            "loaded": self.loaded,
        }

    def _details(self) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": "qwen3",
            "families": ["qwen3"],
            "parameter_size": "8.2B",
            "quantization_level": "Q4_K_M",
        }

    def route(self, method: str, path: str, body: bytes):
        if path == "/" and method == "GET":
            return 200, "Ollama is running"
        if path == "/api/version" and method == "GET":
            return 200, {"version": self.version}
        if path == "/api/tags" and method == "GET":
            return 200, {
                "models": [
                    {
                        "name": name,
                        "model": name,
                        "modified_at": "2025-10-22T17:59:25.123456789+01:00",
                        "size": _size(name),
                        "digest": _digest(name),
                        "details": self._details(),
                    }
                    for name in self.installed
                ]
            }
        if path == "/api/ps" and method == "GET":
            expires = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
            return 200, {
                "models": [
                    {
                        "name": name,
                        "model": name,
                        "size": _size(name),
                        "digest": _digest(name),
                        "details": self._details(),
                        "expires_at": expires,
                        "size_vram": _size(name) - 1000,
                        "context_length": 4096,
                    }
                    for name in self.loaded
                ]
            }
        return 404, "404 page not found"


if __name__ == "__main__":
    main(FakeOllama, "Fake Ollama server")
