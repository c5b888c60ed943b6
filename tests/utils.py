"""Shared test helpers: paths to the shared fixtures, entry builders."""

from __future__ import annotations

from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
SHARED_DIR = REPO_DIR.parent / "shared"
FIXTURES_DIR = SHARED_DIR / "fixtures" / "imageworks-registry"


def shared_fixtures_available() -> bool:
    return (FIXTURES_DIR / "model_registry.curated.json").exists()


def create_model_entry(name: str, **attrs):
    """Create a ``ModelEntry`` row directly (no files), with realistic defaults.

    For tests of pages and filters; tests of file behaviour go through sync.
    """
    import hashlib
    import json

    from registry.models import ModelEntry
    from registry.version import bump

    backend = attrs.pop("backend", "vllm")
    roles = attrs.pop("roles", [])
    aliases = attrs.pop("aliases", [])
    display_name = attrs.pop("display_name", name)
    merged = attrs.pop("merged", None) or {
        "name": name,
        "display_name": display_name,
        "backend": backend,
        "roles": roles,
        "model_aliases": aliases,
    }
    defaults = {
        "display_name": display_name,
        "backend": backend,
        "roles": roles,
        "roles_key": "|" + "|".join(roles) + "|" if roles else "",
        "aliases": aliases,
        "search_text": "\n".join(
            [name.lower(), display_name.lower(), *[a.lower() for a in aliases]]
        ),
        "provenance": "curated",
        "in_curated": True,
        "curated_raw": merged,
        "fingerprint": hashlib.sha256(
            json.dumps(merged, sort_keys=True).encode()
        ).hexdigest(),
        "cap_text": True,
    }
    defaults.update(attrs)
    entry = ModelEntry.objects.create(name=name, **defaults)
    bump()  # what sync does with every row change: caches see the new row
    return entry
