"""Shared test helpers: paths to the shared fixtures, entry builders."""

from __future__ import annotations

from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
SHARED_DIR = REPO_DIR.parent / "shared"
FIXTURES_DIR = SHARED_DIR / "fixtures" / "imageworks-registry"


def shared_fixtures_available() -> bool:
    return (FIXTURES_DIR / "model_registry.curated.json").exists()
