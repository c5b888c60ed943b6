"""The ``imageworks-models`` console script with a fault injected at an exact moment.

``python -m tests.hardening.hooked_cli ARGS...`` runs ``imageworks_site.cli.main``
with a Python audit hook (``sys.addaudithook``) that watches the file system calls
every atomic write makes, whatever module does them:

* ``HOOK_KILL_BEFORE_RENAME_TO=<file name>``: SIGKILL this process when it is about
  to rename a temp file onto that name (e.g. ``model_registry.json``: the layer is
  written, the snapshot is not). Nothing runs after: no cleanup, no audit row.
* ``HOOK_OUTSIDE_WRITE_AT_TEMP=<layer file name>`` with ``HOOK_OUTSIDE_ENTRY`` and
  ``HOOK_OUTSIDE_VALUE``: the first time a temp file for that layer is created
  (our writer has read the layer and is about to write its new version), another
  tool that does not take the registry lock rewrites the layer: it sets
  ``metadata.outside_tool = VALUE`` on ``ENTRY`` (temp file + rename, like
  download tools do).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

_busy = False
_done = False


def _outside_write(layer: Path) -> None:
    items = json.loads(layer.read_text())
    for item in items:
        if (
            isinstance(item, dict)
            and item.get("name") == os.environ["HOOK_OUTSIDE_ENTRY"]
        ):
            item.setdefault("metadata", {})["outside_tool"] = os.environ[
                "HOOK_OUTSIDE_VALUE"
            ]
    tmp = layer.with_name("download-tool.partial")
    tmp.write_text(json.dumps(items, indent=2) + "\n")
    os.replace(tmp, layer)


def _hook(event: str, args: tuple) -> None:
    global _busy, _done
    if _busy or _done:
        return
    kill_at = os.environ.get("HOOK_KILL_BEFORE_RENAME_TO")
    if kill_at and event == "os.rename" and Path(os.fsdecode(args[1])).name == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    layer_name = os.environ.get("HOOK_OUTSIDE_WRITE_AT_TEMP")
    if layer_name and event == "open" and isinstance(args[0], str | bytes):
        name = Path(os.fsdecode(args[0])).name
        if name.startswith(f".{layer_name}.") and name.endswith(".tmp"):
            _busy = True
            try:
                registry = Path(os.environ["IMAGEWORKS_REGISTRY_DIR"])
                _outside_write(registry / layer_name)
            finally:
                _busy = False
                _done = True


def main() -> int:
    sys.addaudithook(_hook)
    from imageworks_site.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
