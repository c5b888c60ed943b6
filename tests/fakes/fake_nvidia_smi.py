#!/usr/bin/env -S python3 -I -S
"""A stand-in for ``nvidia-smi`` (the query interface only), driven by a JSON file.

Point ``IMAGEWORKS_NVIDIA_SMI`` at this script and ``FAKE_NVIDIA_SMI_STATE`` at a
JSON file; tests rewrite the file to change what the "GPUs" hold::

    {"gpus": [{"index": 0, "uuid": "GPU-0", "name": "NVIDIA GeForce RTX 4090",
               "memory.total": 24564, "memory.used": 412, "memory.free": 24152,
               "utilization.gpu": 3, "temperature.gpu": 41}],
     "processes": [{"pid": 1234, "gpu_uuid": "GPU-0", "process_name": "python",
                    "used_memory": 18000}],
     "fail": "",       # non-empty: print it and exit 9, like a driver that is gone
     "delay": 0}       # seconds to sleep first (timeout tests)

Speaks what the console uses: ``--query-gpu=F,...`` and
``--query-compute-apps=F,...`` with ``--format=csv[,noheader][,nounits]``; memory
in MiB. An unknown field is refused like the real tool (exit 2). Stdlib only.
"""

from __future__ import annotations

import json
import os
import sys
import time

UNITS = {
    "memory.total": " MiB",
    "memory.used": " MiB",
    "memory.free": " MiB",
    "used_memory": " MiB",
    "utilization.gpu": " %",
}
GPU_FIELDS = {
    "index",
    "uuid",
    "name",
    "memory.total",
    "memory.used",
    "memory.free",
    "utilization.gpu",
    "temperature.gpu",
    "pci.bus_id",
    "driver_version",
}
APP_FIELDS = {"pid", "gpu_uuid", "process_name", "used_memory", "gpu_name"}


def main(argv: list[str]) -> int:
    path = os.environ.get("FAKE_NVIDIA_SMI_STATE", "")
    try:
        with open(path, encoding="utf-8") as fh:
            state = json.load(fh)
    except (OSError, ValueError):
        state = {"fail": "NVIDIA-SMI has failed: no state file (FAKE_NVIDIA_SMI_STATE)"}
    time.sleep(float(state.get("delay") or 0))
    if state.get("fail"):
        print(state["fail"])
        return 9
    opts = dict(a[2:].split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    fmt = set((opts.get("format") or "").split(","))
    if "csv" not in fmt:
        print("This fake only speaks --format=csv.")
        return 2
    if "query-gpu" in opts:
        fields, allowed, rows = opts["query-gpu"].split(","), GPU_FIELDS, state["gpus"]
    elif "query-compute-apps" in opts:
        fields, allowed = opts["query-compute-apps"].split(","), APP_FIELDS
        rows = state.get("processes", [])
    else:
        print("Fake nvidia-smi: use --query-gpu or --query-compute-apps.")
        return 2
    for f in fields:
        if f not in allowed:
            print(f'Field "{f}" is not a valid field to query.')
            return 2
    if "noheader" not in fmt:
        print(
            ", ".join(
                f + ("" if "nounits" in fmt else UNITS.get(f, "")) for f in fields
            )
        )
    for row in rows:
        cells = []
        for f in fields:
            value = row.get(f, "[N/A]")
            text = str(value)
            if "nounits" not in fmt and f in UNITS and value != "[N/A]":
                text += UNITS[f]
            cells.append(text)
        print(", ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
