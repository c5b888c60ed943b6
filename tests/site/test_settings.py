"""Settings behave: production refuses to start without a secret, deploy checks pass,
and a database that cannot be reached gives a clear 503 instead of a traceback."""

import os
import subprocess
import sys
from pathlib import Path

from django.db import OperationalError
from django.test import RequestFactory, TestCase

from imageworks_site.middleware import DatabaseUnavailableMiddleware

REPO = Path(__file__).resolve().parents[2]


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    # DJANGO_ALLOW_ASYNC_UNSAFE is set by the browser fixtures in the same worker.
    dropped = {
        "SECRET_KEY",
        "DATABASE_URL",
        "DJANGO_SETTINGS_MODULE",
        "DJANGO_ALLOW_ASYNC_UNSAFE",
    }
    clean = {k: v for k, v in os.environ.items() if k not in dropped}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_refuses_to_start_without_a_secret_key():
    result = run_manage(
        "check", IMAGEWORKS_ENV="production", ALLOWED_HOSTS="example.org"
    )
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_production_settings_pass_check_deploy(tmp_path):
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        IMAGEWORKS_ENV="production",
        SECRET_KEY="x" * 20 + "a-long-and-random-enough-secret-key-value-0123456789",
        ALLOWED_HOSTS="registry.example.org",
        IMAGEWORKS_VAR_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_development_keeps_a_generated_secret_key_in_var(tmp_path):
    code = "from django.conf import settings; print(settings.SECRET_KEY)"
    env = {"IMAGEWORKS_VAR_DIR": str(tmp_path)}
    first = run_manage("shell", "-c", code, **env)
    second = run_manage("shell", "-c", code, **env)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "secret_key").exists()
    assert (
        first.stdout.strip().splitlines()[-1] == second.stdout.strip().splitlines()[-1]
    )


def test_an_unreachable_database_is_a_clear_error_at_start(tmp_path):
    result = run_manage(
        "migrate",
        "--check",
        DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
        IMAGEWORKS_VAR_DIR=str(tmp_path),
    )
    assert result.returncode == 1
    assert result.stderr.startswith("Database unavailable:")
    assert "Traceback" not in result.stderr


class DatabaseDownPageTests(TestCase):
    def test_it_answers_503_with_an_explanation(self):
        request = RequestFactory().get("/models/")
        middleware = DatabaseUnavailableMiddleware(lambda r: None)
        response = middleware.process_exception(
            request, OperationalError("connection refused")
        )
        self.assertEqual(response.status_code, 503)
        self.assertIn(b"Database unavailable", response.content)
        self.assertIn(b"connection refused", response.content)
        self.assertEqual(response["Retry-After"], "5")

    def test_it_leaves_other_errors_alone(self):
        request = RequestFactory().get("/models/")
        middleware = DatabaseUnavailableMiddleware(lambda r: None)
        self.assertIsNone(middleware.process_exception(request, ValueError("boom")))
