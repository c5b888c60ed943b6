"""A stand-in for the original's vLLM admin service (reference §6.2).

``GET /health`` -> ``{"status":"ok"}``; ``GET /admin/state``; ``POST /admin/activate``
(force-kills the current child, spawns ``command`` with ``start_new_session=True``,
env = os.environ ∪ body.env, cwd = body.cwd or its own cwd, log to body.log_file,
does not wait for health); ``POST /admin/deactivate`` (SIGTERM, wait, forget).
Like the original it signals only the pid, not the group, and never SIGKILLs on
deactivate. Optional bearer token: FAKE_ADMIN_TOKEN. It also reports
``exit_code`` in the state (an extension the client tolerates being absent).

Run: ``python tests/fakes/fake_admin.py --port P``
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

LOCK = threading.Lock()
STATE: dict = {
    "proc": None,
    "logical_name": None,
    "served_model_id": None,
    "started_at": None,
    "log_file": None,
}
STOP_WAIT = float(os.environ.get("FAKE_ADMIN_STOP_WAIT") or 10.0)
TOKEN = os.environ.get("FAKE_ADMIN_TOKEN") or ""


def _state() -> dict:
    proc = STATE["proc"]
    running = proc is not None and proc.poll() is None
    return {
        "status": "running" if running else "stopped",
        "logical_name": STATE["logical_name"],
        "served_model_id": STATE["served_model_id"],
        "pid": proc.pid if proc is not None else None,
        "started_at": STATE["started_at"],
        "log_file": STATE["log_file"],
        "exit_code": proc.returncode if proc is not None and not running else None,
    }


def _terminate(sig: int, wait: float) -> None:
    proc = STATE["proc"]
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + wait
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *a):
        pass

    def _send(self, code: int, payload) -> None:
        body = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorised(self) -> bool:
        if TOKEN and self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._send(401, {"detail": "unauthorised"})
            return False
        return True

    def do_GET(self):
        if self.path == "/health":
            return self._send(200, {"status": "ok"})
        if not self._authorised():
            return
        if self.path == "/admin/state":
            with LOCK:
                return self._send(200, _state())
        self._send(404, {"detail": "Not Found"})

    def do_POST(self):
        if not self._authorised():
            return
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self._send(422, {"detail": "invalid JSON"})
        if self.path == "/admin/activate":
            return self._activate(body)
        if self.path == "/admin/deactivate":
            with LOCK:
                _terminate(signal.SIGTERM, STOP_WAIT)
                STATE["proc"] = None
            return self._send(200, {"status": "stopped"})
        self._send(404, {"detail": "Not Found"})

    def _activate(self, body: dict) -> None:
        command = [c for c in (body.get("command") or []) if str(c).strip()]
        if (
            not command
            or not body.get("logical_name")
            or not body.get("served_model_id")
        ):
            return self._send(
                422,
                {"detail": "command, logical_name and served_model_id are required"},
            )
        with LOCK:
            _terminate(signal.SIGKILL, 5.0)
            env = {
                **os.environ,
                **{str(k): str(v) for k, v in (body.get("env") or {}).items()},
            }
            cwd = body.get("cwd") or os.getcwd()
            log_file = body.get("log_file") or "logs/vllm/admin.log"
            log_path = (
                log_file if os.path.isabs(log_file) else os.path.join(cwd, log_file)
            )
            os.makedirs(os.path.dirname(log_path), exist_ok=True)
            try:
                with open(log_path, "a") as log:
                    proc = subprocess.Popen(
                        command,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        env=env,
                        cwd=cwd,
                        start_new_session=True,
                    )
            except FileNotFoundError as exc:
                return self._send(404, {"detail": str(exc)})
            except Exception as exc:  # noqa: BLE001
                return self._send(500, {"detail": str(exc)})
            STATE.update(
                proc=proc,
                logical_name=body["logical_name"],
                served_model_id=body["served_model_id"],
                started_at=time.time(),
                log_file=log_file,
            )
            return self._send(
                200,
                {
                    "status": "running",
                    "pid": proc.pid,
                    "logical_name": body["logical_name"],
                    "served_model_id": body["served_model_id"],
                },
            )


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True

    def shutdown(*_):
        with LOCK:
            proc = STATE["proc"]
            if proc is not None and proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        os._exit(0)

    signal.signal(signal.SIGTERM, shutdown)
    print(f"fake admin on {args.host}:{args.port}", flush=True)
    server.serve_forever(poll_interval=0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
