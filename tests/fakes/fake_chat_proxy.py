"""A stand-in for the original ImageWorks chat proxy's local vLLM launcher.

Like ``LocalProcessController.spawn`` (reference §3.4) it starts vLLM with a plain
``Popen`` and **no** ``start_new_session``, so the server runs inside this
process's own process group. Once the server answers ``/health`` it writes the
original's five-field state file, then stays alive polling its child (as the
proxy does), until killed. ``--sibling`` also starts an unrelated helper child in
the same group, which a correct stop must leave alone as well.

Run: ``python tests/fakes/fake_chat_proxy.py --state PATH --name N --port P
[--sibling] [--workers N]``; prints ``SERVER <pid>`` (and ``SIBLING <pid>``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

FAKE_VLLM = Path(__file__).resolve().parent / "fake_vllm.py"


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=0.5):
            return True
    except OSError:
        return False


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--state", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--model", default="/models/x")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--sibling", action="store_true")
    args = p.parse_args()
    argv = [
        sys.executable,
        str(FAKE_VLLM),
        "--model",
        args.model,
        "--served-model-name",
        args.name,
        "--port",
        str(args.port),
        "--fake-workers",
        str(args.workers),
    ]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL)  # same group as us
    print(f"SERVER {server.pid}", flush=True)
    if args.sibling:
        sibling = subprocess.Popen(
            [sys.executable, "-c", "import time\nwhile True: time.sleep(1)"]
        )
        print(f"SIBLING {sibling.pid}", flush=True)
    started = time.time()
    while not _ready(args.port):
        if server.poll() is not None:
            print(f"server exited {server.returncode}", flush=True)
            return 1
        time.sleep(0.05)
    state = {
        "logical_name": args.name,
        "served_model_id": args.name,
        "port": args.port,
        "pid": server.pid,
        "started_at": started,
    }
    tmp = Path(args.state).with_suffix(".tmp")
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps(state, indent=2))
    os.replace(tmp, args.state)
    print("READY", flush=True)
    while True:  # the proxy lives on, and notices when its server is gone
        if server.poll() is not None:
            print(f"server exited {server.returncode}", flush=True)
        time.sleep(0.1)


if __name__ == "__main__":
    sys.exit(main())
