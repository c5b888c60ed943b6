"""A tiny stand-in for ``python -m vllm.entrypoints.openai.api_server``.

A real process with a real socket: it parses the same argv the launcher builds
(unknown flags are tolerated), binds ``--host``/``--port`` at once (vLLM binds
early too), answers ``GET /health`` with 503 until "loaded" and then 200 with an
empty body, and ``GET /v1/models`` with the served id. Behaviour is chosen by
environment variables (pass them through the allow-list in tests only):

FAKE_VLLM_READY_DELAY         seconds until ready (default 0.3)
FAKE_VLLM_CRASH_DURING_START  exit with this code before becoming ready
FAKE_VLLM_CRASH_DELAY         ... after this many seconds (default 0.2)
FAKE_VLLM_CRASH_AFTER_READY   exit (code 3) this many seconds after ready
FAKE_VLLM_IGNORE_SIGTERM      "1": ignore SIGTERM (only SIGKILL stops it)
FAKE_VLLM_SERVE_NAME          serve this id instead of --served-model-name
FAKE_VLLM_WORKERS             start N child processes in the same group (like vLLM's engine workers)
FAKE_VLLM_WORKER_SESSION      "1": the workers start their own session (leave our group)
FAKE_VLLM_COMPLETION_DELAY    seconds a /v1/completions or /v1/chat/completions request
                              takes (default 1.0); it counts as running meanwhile
FAKE_VLLM_RUNNING / _WAITING  extra requests /metrics reports (default 0)

``GET /metrics`` answers in Prometheus text format, like vLLM's:
``vllm:num_requests_running`` (real in-flight completion requests plus the extra
count) and ``vllm:num_requests_waiting``. ``POST /_control`` with JSON
``{"running": n, "waiting": m, "idle_after": s}`` sets the extra counts (and
drops them to 0 after ``s`` seconds), so tests can stage a busy server.

The same knobs are accepted as flags (``--fake-ready-delay 2``...) so a registry
entry's extra_args can choose per model.

Run: ``python tests/fakes/fake_vllm.py --model M --served-model-name S --host H --port P``
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="fake_vllm", allow_abbrev=False)
    p.add_argument("--model", required=True)
    p.add_argument("--served-model-name", default=None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-model-len", type=int, default=4096)
    env = os.environ.get
    p.add_argument(
        "--fake-ready-delay",
        type=float,
        default=float(env("FAKE_VLLM_READY_DELAY") or 0.3),
    )
    p.add_argument(
        "--fake-crash-during-start",
        type=int,
        default=_int(env("FAKE_VLLM_CRASH_DURING_START")),
    )
    p.add_argument(
        "--fake-crash-delay",
        type=float,
        default=float(env("FAKE_VLLM_CRASH_DELAY") or 0.2),
    )
    p.add_argument(
        "--fake-crash-after-ready",
        type=float,
        default=_float(env("FAKE_VLLM_CRASH_AFTER_READY")),
    )
    p.add_argument(
        "--fake-ignore-sigterm",
        action="store_true",
        default=env("FAKE_VLLM_IGNORE_SIGTERM") == "1",
    )
    p.add_argument("--fake-serve-name", default=env("FAKE_VLLM_SERVE_NAME") or None)
    p.add_argument(
        "--fake-workers", type=int, default=int(env("FAKE_VLLM_WORKERS") or 0)
    )
    p.add_argument(
        "--fake-completion-delay",
        type=float,
        default=float(env("FAKE_VLLM_COMPLETION_DELAY") or 1.0),
    )
    p.add_argument(
        "--fake-running", type=int, default=int(env("FAKE_VLLM_RUNNING") or 0)
    )
    p.add_argument(
        "--fake-waiting", type=int, default=int(env("FAKE_VLLM_WAITING") or 0)
    )
    p.add_argument(
        "--fake-worker-session",
        action="store_true",
        default=env("FAKE_VLLM_WORKER_SESSION") == "1",
    )
    args, unknown = p.parse_known_args(argv)
    args.unknown = unknown
    return args


class Counts:
    """In-flight requests as /metrics reports them (real ones + staged extras)."""

    def __init__(self, running: int, waiting: int):
        self.lock = threading.Lock()
        self.live = 0
        self.running, self.waiting = running, waiting
        self.timer: threading.Timer | None = None

    def configure(self, running=None, waiting=None, idle_after=None):
        with self.lock:
            if running is not None:
                self.running = int(running)
            if waiting is not None:
                self.waiting = int(waiting)
            if self.timer is not None:
                self.timer.cancel()
            if idle_after is not None:
                self.timer = threading.Timer(float(idle_after), self.configure, (0, 0))
                self.timer.daemon = True
                self.timer.start()

    def snapshot(self) -> dict:
        with self.lock:
            return {"running": self.running + self.live, "waiting": self.waiting}

    def request(self):
        counts = self

        class _InFlight:
            def __enter__(self):
                with counts.lock:
                    counts.live += 1

            def __exit__(self, *exc):
                with counts.lock:
                    counts.live -= 1

        return _InFlight()

    def prometheus(self, served: str) -> str:
        snap = self.snapshot()
        labels = f'engine="0",model_name="{served}"'
        lines = []
        for name, help_text in (
            ("running", "Number of requests in model execution batches."),
            ("waiting", "Number of requests waiting to be processed."),
        ):
            metric = f"vllm:num_requests_{name}"
            lines += [
                f"# HELP {metric} {help_text}",
                f"# TYPE {metric} gauge",
                f"{metric}{{{labels}}} {float(snap[name])}",
            ]
        lines += [
            "# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.",
            "# TYPE vllm:gpu_cache_usage_perc gauge",
            f"vllm:gpu_cache_usage_perc{{{labels}}} 0.0",
        ]
        return "\n".join(lines) + "\n"


def _int(value):
    return int(value) if value not in (None, "") else None


def _float(value):
    return float(value) if value not in (None, "") else None


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    served = args.fake_serve_name or args.served_model_name or args.model
    ready = threading.Event()
    log = lambda msg: print(f"INFO {time.strftime('%H:%M:%S')} {msg}", flush=True)  # noqa: E731

    if args.fake_ignore_sigterm:
        signal.signal(signal.SIGTERM, lambda *_: log("SIGTERM ignored"))
    else:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))

    counts = Counts(args.fake_running, args.fake_waiting)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, fmt, *a):
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            if self.path == "/_control":
                try:
                    counts.configure(**json.loads(raw or b"{}"))
                except (ValueError, TypeError) as exc:
                    return self._send(400, json.dumps({"error": str(exc)}).encode())
                return self._send(200, json.dumps(counts.snapshot()).encode())
            if self.path in ("/v1/completions", "/v1/chat/completions"):
                if not ready.is_set():
                    return self._send(503, b'{"error":"loading"}')
                with counts.request():
                    time.sleep(args.fake_completion_delay)
                body = {
                    "object": "text_completion",
                    "model": served,
                    "choices": [{"index": 0, "text": "ok"}],
                }
                return self._send(200, json.dumps(body).encode())
            self._send(404, b'{"detail":"Not Found"}')

        def _send(self, code: int, body: bytes = b"", ctype: str = "application/json"):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/health":
                self._send(200 if ready.is_set() else 503)
            elif self.path == "/v1/models":
                if not ready.is_set():
                    return self._send(503, b'{"error":"loading"}')
                card = {
                    "id": served,
                    "object": "model",
                    "root": args.model,
                    "max_model_len": args.max_model_len,
                }
                self._send(200, json.dumps({"object": "list", "data": [card]}).encode())
            elif self.path == "/metrics":
                self._send(
                    200, counts.prometheus(served).encode(), "text/plain; version=0.0.4"
                )
            else:
                self._send(404, b'{"detail":"Not Found"}')

    try:
        server = ThreadingHTTPServer((args.host, args.port), Handler)
    except OSError as exc:
        print(
            f"ERROR [Errno {exc.errno}] error while attempting to bind on address "
            f"({args.host!r}, {args.port}): {exc.strerror}",
            flush=True,
        )
        print(f"OSError: [Errno {exc.errno}] Address already in use", flush=True)
        return 1
    server.daemon_threads = True
    log(
        f"fake vLLM model={args.model} served={served} port={args.port} unknown={args.unknown}"
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", "import time\nwhile True: time.sleep(1)"],
            start_new_session=args.fake_worker_session,
        )
        for _ in range(args.fake_workers)
    ]
    if workers:
        log(f"workers: {[w.pid for w in workers]}")

    def lifecycle():
        if args.fake_crash_during_start is not None:
            time.sleep(args.fake_crash_delay)
            print("Traceback (most recent call last):", flush=True)
            print("RuntimeError: CUDA error: out of memory (fake)", flush=True)
            os._exit(args.fake_crash_during_start)
        time.sleep(args.fake_ready_delay)
        ready.set()
        log("Application startup complete.")
        if args.fake_crash_after_ready is not None:
            time.sleep(args.fake_crash_after_ready)
            print("RuntimeError: engine died (fake)", flush=True)
            os._exit(3)

    threading.Thread(target=lifecycle, daemon=True).start()
    server.serve_forever(poll_interval=0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
