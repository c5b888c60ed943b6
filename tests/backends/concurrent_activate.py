"""Helper process for the cross-process activation race test (not a test module).

``python concurrent_activate.py setup N WEIGHTS`` creates N vLLM entries;
``python concurrent_activate.py activate NAME`` waits for the start file, then
activates NAME and prints one JSON line with the outcome. Settings come from the
environment (a file SQLite database shared by every process).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imageworks_site.settings")

import django  # noqa: E402

django.setup()

from backends.vllm import service  # noqa: E402
from registry.audit import Actor  # noqa: E402
from registry.models import ModelEntry  # noqa: E402
from tests.backends.model_files import write_model  # noqa: E402


def setup(count: int, weights: Path) -> None:
    for i in range(count):
        name = f"model-{i}"
        path = weights / name
        write_model(path, shards=1)  # passes preflight
        bc = {"model_path": str(path), "extra_args": []}
        ModelEntry.objects.create(
            name=name,
            backend="vllm",
            backend_config=bc,
            curated_raw={"name": name, "backend": "vllm", "backend_config": bc},
            provenance="curated",
            fingerprint=hashlib.sha256(name.encode()).hexdigest(),
        )


def activate(name: str, go_file: Path) -> None:
    entry = ModelEntry.objects.get(name=name)
    (go_file.parent / f"ready-{name}").touch()
    while not go_file.exists():  # start together
        time.sleep(0.01)
    try:
        act = service.activate(entry, Actor.system(f"user-{name}"))
        out = {"name": name, "outcome": "ok", "pid": act.pid}
    except service.ActivationBusy as exc:
        out = {"name": name, "outcome": "busy", "message": str(exc)}
    except Exception as exc:  # noqa: BLE001 - reported to the test
        out = {
            "name": name,
            "outcome": "error",
            "message": f"{exc.__class__.__name__}: {exc}",
        }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "setup":
        setup(int(sys.argv[2]), Path(sys.argv[3]))
    else:
        activate(sys.argv[2], Path(sys.argv[3]))
