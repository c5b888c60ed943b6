"""Another tool that read-modify-writes the discovered layer, like a download tool.

``python -m tests.hardening.outside_writer REGISTRY ENTRY COUNT [--lock] [--pause S]
[--seconds S] [--add-every K]`` increments ``metadata.outside_counter`` of ENTRY COUNT
times (or until S seconds have passed, whichever comes first): read the file, add one,
write a temp file and rename it over the layer. With ``--lock`` it holds the
registry's lock file (``.model_registry.lock``, the one docs/compatibility.md tells
outside tools to take) around each read-modify-write. With ``--add-every K`` every K-th
write also appends a new entry (a copy of ENTRY named ``ENTRY-download-N``), as a
download tool does. Prints one JSON line at the end:
``{"writes": N, "start": <counter before>, "final": <counter in the file>, "torn":
<unreadable reads>, "added": [names], "added_lost": [names missing at the end]}``.
Every write a concurrent writer reverted shows as ``final - start < writes``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

LAYER = "model_registry.discovered.json"


def _counter(items: list, entry: str) -> int:
    for item in items:
        if isinstance(item, dict) and item.get("name") == entry:
            return int((item.get("metadata") or {}).get("outside_counter") or 0)
    raise SystemExit(f"{entry} not in {LAYER}")


def main(argv: list[str]) -> int:
    registry, entry, count = Path(argv[0]), argv[1], int(argv[2])
    use_lock = "--lock" in argv
    pause = float(argv[argv.index("--pause") + 1]) if "--pause" in argv else 0.02
    seconds = float(argv[argv.index("--seconds") + 1]) if "--seconds" in argv else 0
    add_every = int(argv[argv.index("--add-every") + 1]) if "--add-every" in argv else 0
    added: list[str] = []
    deadline = time.monotonic() + seconds if seconds else None
    path = registry / LAYER
    start = _counter(json.loads(path.read_bytes()), entry)
    torn = writes = 0
    if use_lock:
        import filelock

        lock = filelock.FileLock(str(registry / ".model_registry.lock"))
    for i in range(count):
        if deadline is not None and time.monotonic() > deadline:
            break
        guard = lock if use_lock else contextlib.nullcontext()
        with guard:
            while True:
                try:
                    items = json.loads(path.read_bytes())
                    break
                except ValueError:
                    torn += 1  # never expected: our writes are atomic
                    time.sleep(0.001)
            for item in items:
                if isinstance(item, dict) and item.get("name") == entry:
                    meta = item.setdefault("metadata", {})
                    meta["outside_counter"] = int(meta.get("outside_counter") or 0) + 1
                    if add_every and (i + 1) % add_every == 0:
                        new = json.loads(json.dumps(item))
                        new["name"] = f"{entry}-download-{os.getpid()}-{i}"
                        new["metadata"].pop("outside_counter", None)
                        items.append(new)
                        added.append(new["name"])
                    break
            tmp = path.with_name(f".download-tool.{os.getpid()}.{i}.partial")
            tmp.write_text(json.dumps(items, indent=2) + "\n")
            os.replace(tmp, path)
        writes += 1
        time.sleep(pause)
    items = json.loads(path.read_bytes())
    final = _counter(items, entry)
    present = {i.get("name") for i in items if isinstance(i, dict)}
    result = {
        "writes": writes,
        "start": start,
        "final": final,
        "torn": torn,
        "added": added,
        "added_lost": [name for name in added if name not in present],
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
