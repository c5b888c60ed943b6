"""Real deployments for the broken-file, crash and contention tests.

* :class:`CliSite`: a migrated file SQLite database and a synced sample registry in
  a temp folder, used through the installed ``imageworks-models`` console script.
* :class:`LiveSite`: the same served by gunicorn with production settings
  (``IMAGEWORKS_ENV=production``, secure cookies, SSL redirect, HSTS; nothing relaxed)
  on SQLite or on a PostgreSQL database of its own; :class:`Browser` plays the
  TLS-terminating proxy (``X-Forwarded-Proto: https``) and keeps the Secure cookies.

Both only use public interfaces (manage.py commands, the console script, HTTP), so
they survive restructuring of the registry's modules.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from http.cookies import SimpleCookie
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable
PG_URL = os.environ.get(
    "IMAGEWORKS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
PASSWORD = "site-" + secrets.token_urlsafe(12)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_command() -> list[str]:
    """The installed console script (``pip install -e .`` puts it beside python)."""
    script = Path(PY).with_name("imageworks-models")
    return [str(script)] if script.exists() else [PY, "-m", "imageworks_site.cli"]


def base_env(root: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IMAGEWORKS_", "DATABASE_URL", "DJANGO_", "PYTEST"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="imageworks_site.settings",
        SECRET_KEY="hardening-" + secrets.token_urlsafe(40),
        IMAGEWORKS_VAR_DIR=str(root / "var"),
        IMAGEWORKS_SQLITE_PATH=str(root / "db.sqlite3"),
        IMAGEWORKS_REGISTRY_DIR=str(root / "configs"),
        IMAGEWORKS_STAGING_DIR=str(root / "_staging"),
        IMAGEWORKS_LOG_DIR=str(root / "logs"),
        IMAGEWORKS_OLLAMA_URL="",
        IMAGEWORKS_HASH_WORKERS="1",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(REPO),
        PYTHONUNBUFFERED="1",
    )
    return env


def pg_available() -> bool:
    try:
        import psycopg

        psycopg.connect(PG_URL, connect_timeout=3).close()
    except Exception:  # noqa: BLE001 - any failure means "not here"
        return False
    return True


def grow_registry(registry: Path, count: int) -> None:
    """Add *count* realistic-sized copies of the sample entries to both layers (files
    of a lab's registry: ~8 KB per entry; model folders that do not exist here)."""
    for file_name in ("model_registry.curated.json", "model_registry.discovered.json"):
        path = registry / file_name
        items = json.loads(path.read_text())
        seeds = [i for i in items if isinstance(i, dict)]
        for n in range(count):
            item = json.loads(json.dumps(seeds[n % len(seeds)]))
            item["name"] = f"{item['name']}-copy-{n:05d}"
            if "display_name" in item:
                item["display_name"] = f"{item['display_name']} #{n}"
            if "download_path" in item:
                item["download_path"] = f"/nonexistent/{item['name']}"
            if "discovered" in file_name:
                item["download_files"] = [
                    f"model-{j:05d}-of-00060.safetensors" for j in range(60)
                ]
                item.setdefault("metadata", {})["notes"] = "x" * 2500
            items.append(item)
        path.write_text(json.dumps(items, indent=2) + "\n")
    (registry / "model_registry.json").unlink(missing_ok=True)


class CliSite:
    """A migrated database and a synced sample registry, for the console script.

    SQLite in the temp folder unless *extra_env* sets ``DATABASE_URL``; *entries*
    more entries make it a lab-sized registry (:func:`grow_registry`).
    """

    def __init__(
        self, root: Path, extra_env: dict[str, str] | None = None, entries: int = 0
    ):
        from registry.sample import write_sample_registry

        self.root = root
        self.env = {**base_env(root), **(extra_env or {})}
        self.registry = Path(self.env["IMAGEWORKS_REGISTRY_DIR"])
        if not any(self.registry.glob("model_registry*.json")):
            write_sample_registry(self.registry, root / "models", force=True)
            if entries:
                grow_registry(self.registry, entries)
        self.manage("migrate", "-v0")
        synced = self.run("sync", "--force")
        assert synced.returncode == 0, synced.stdout + synced.stderr

    def manage(self, *args: str, timeout: float = 300, **env: str) -> str:
        out = subprocess.run(
            [PY, "manage.py", *args],
            cwd=REPO,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert out.returncode == 0, f"manage.py {args}: {out.stdout}{out.stderr}"
        return out.stdout

    def run(
        self, *args: str, module: str = "", **env: str
    ) -> subprocess.CompletedProcess:
        """The console script (or ``python -m module`` with the same arguments)."""
        argv = [PY, "-m", module, *args] if module else [*cli_command(), *args]
        return subprocess.run(
            argv,
            cwd=REPO if module else self.root,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )


class LiveSite(CliSite):
    """gunicorn (production settings) over SQLite or a PostgreSQL database of its own."""

    def __init__(self, root: Path, db: str, workers: int = 3, entries: int = 0):
        self.db = db
        self.pg_name = ""
        self.proc: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.workers = workers
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        extra = {"IMAGEWORKS_ENV": "production", "ALLOWED_HOSTS": "127.0.0.1"}
        if db == "postgres":
            import psycopg

            self.pg_name = f"iw_hardening_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.pg_name}"')
            extra["DATABASE_URL"] = PG_URL.rsplit("/", 1)[0] + "/" + self.pg_name
        try:
            super().__init__(root, extra, entries)
        except BaseException:
            self.stop()
            raise

    def add_user(self, name: str, role: str) -> None:
        self.manage(
            "set_user",
            name,
            "--role",
            role,
            "--password-env",
            "SITE_PASSWORD",
            SITE_PASSWORD=PASSWORD,
        )

    def start(self) -> None:
        """gunicorn, and one ``qcluster`` (ORM broker) running the schedules, as
        ``./scripts/run`` deploys the embedded default."""
        self.manage("setup_schedules")
        self.worker = subprocess.Popen(
            [PY, "manage.py", "qcluster"],
            cwd=REPO,
            env=self.env,
            stdout=(self.root / "qcluster.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log = (self.root / "gunicorn.log").open("ab")
        self.proc = subprocess.Popen(
            [
                str(Path(PY).with_name("gunicorn")),
                "imageworks_site.wsgi",
                "-w",
                str(self.workers),
                "-b",
                f"127.0.0.1:{self.port}",
                "--timeout",
                "120",
                "--graceful-timeout",
                "10",
            ],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                r = httpx.get(
                    self.base + "/login/",
                    headers={"X-Forwarded-Proto": "https"},
                    timeout=2,
                )
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not start: {self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        path = self.root / "gunicorn.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def stop(self) -> None:
        for proc in (self.proc, self.worker):
            if proc is None or proc.poll() is not None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
            except ProcessLookupError:
                pass
        if self.pg_name:
            import psycopg

            with psycopg.connect(PG_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
            self.pg_name = ""


class Browser:
    """One signed-in user behind the TLS proxy: Secure cookies kept by hand, CSRF."""

    def __init__(self, site: LiveSite, username: str):
        self.site = site
        self.cookies: dict[str, str] = {}
        self.client = httpx.Client(
            base_url=site.base,
            timeout=httpx.Timeout(180.0),
            headers={"X-Forwarded-Proto": "https", "User-Agent": "hardening-test"},
        )
        self.origin = "https://" + site.base.split("://", 1)[1]
        page = self.request("GET", "/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        done = self.request(
            "POST",
            "/login/",
            data={
                "csrfmiddlewaretoken": token.group(1) if token else "",
                "username": username,
                "password": PASSWORD,
            },
        )
        assert done.status_code == 302, (done.status_code, done.text[:300])

    def close(self) -> None:
        self.client.close()

    def request(self, method: str, url: str, *, htmx=False, data=None):
        headers = {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if htmx:
            headers["HX-Request"] = "true"
        if method == "POST":
            headers["Origin"] = self.origin
            headers["X-CSRFToken"] = self.cookies.get("csrftoken", "")
        response = self.client.request(method, url, headers=headers, data=data)
        for header in response.headers.get_list("set-cookie"):
            jar = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or not morsel.value:
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response
