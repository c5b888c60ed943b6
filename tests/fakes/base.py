"""A small threaded HTTP server base for the backend fakes (stdlib only).

Each fake binds port 0 (the OS picks a free port), runs in a daemon thread and
can be stopped and restarted on the same port. Behaviour switches, settable from
Python, the command line or ``POST /_control`` (JSON):

* ``mode``: ``ok`` | ``slow`` (sleep ``delay`` seconds before answering) |
  ``error`` (HTTP 500 everywhere) | ``malformed`` (200 with a broken JSON body);
* ``delay``: seconds for ``slow`` (default 30).
Subclasses add their own state keys (e.g. Ollama's ``loaded`` models).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Handler(BaseHTTPRequestHandler):
    server_version = "FakeBackend/1.0"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # keep test output quiet
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except (ConnectionResetError, BrokenPipeError):  # the client gave up (timeout)
            pass

    def _send(self, code: int, body: Any, content_type="application/json") -> None:
        if isinstance(body, (dict, list)):
            data = json.dumps(body).encode()
        elif isinstance(body, bytes):
            data = body
        else:
            data = str(body).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _handle(self, method: str) -> None:
        fake: FakeServer = self.server.fake  # type: ignore[attr-defined]
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        fake.requests.append((method, path))
        if path == "/_control" and method == "POST":
            try:
                fake.configure(**json.loads(raw or b"{}"))
            except (ValueError, TypeError) as exc:
                return self._send(400, {"error": str(exc)})
            return self._send(200, fake.state())
        mode = fake.mode
        if mode == "slow":
            fake.slow_event.wait(fake.delay)
        elif mode == "error":
            return self._send(500, {"error": "internal server error (fake)"})
        elif mode == "malformed":
            return self._send(200, b'{"models": [ this is not json')
        code, body = fake.route(method, path, raw)
        self._send(
            code, body, "text/plain" if isinstance(body, str) else "application/json"
        )

    def do_GET(self):  # noqa: N802
        self._handle("GET")

    def do_POST(self):  # noqa: N802
        self._handle("POST")


class FakeServer:
    """Base fake: subclass and implement :meth:`route`."""

    def __init__(self, *, mode: str = "ok", delay: float = 30.0, port: int = 0):
        self.mode = mode
        self.delay = delay
        self.port = port
        self.requests: list[tuple[str, str]] = []
        self.slow_event = threading.Event()  # set() releases slow handlers early
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- behaviour -----------------------------------------------------------
    def route(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        raise NotImplementedError

    def configure(self, **changes: Any) -> None:
        for key, value in changes.items():
            if key not in self.state():
                raise TypeError(f"unknown setting {key!r}")
            setattr(self, key, value)

    def state(self) -> dict[str, Any]:
        return {"mode": self.mode, "delay": self.delay}

    # --- lifecycle -----------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    def start(self) -> FakeServer:
        """Start serving (port 0 on first start; the same port on a restart)."""
        self.slow_event.clear()
        httpd = None
        for _ in range(50):  # the old socket may linger briefly after a stop
            try:
                httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
                break
            except OSError:
                if not self.port:
                    raise
                time.sleep(0.1)
        if httpd is None:
            raise OSError(f"cannot bind 127.0.0.1:{self.port}")
        httpd.daemon_threads = True
        httpd.fake = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (connections are then refused)."""
        self.slow_event.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeServer:
        return self.start() if not self.running else self

    def __exit__(self, *exc) -> None:
        self.stop()


def main(factory, description: str, argv=None) -> None:
    """Run a fake as a process: prints ``PORT <n>`` then serves until killed."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--mode", default="ok", choices=["ok", "slow", "error", "malformed"]
    )
    parser.add_argument("--delay", type=float, default=30.0)
    parser.add_argument("--state", default="", help="JSON object of extra settings")
    args = parser.parse_args(argv)
    fake = factory(mode=args.mode, delay=args.delay, port=args.port)
    if args.state:
        fake.configure(**json.loads(args.state))
    fake.start()
    print(f"PORT {fake.port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
