"""Session security: expiry, cookie flags, fixation, production cookie settings.
(Login throttling: tests/site/test_auth.py; check --deploy: tests/site/test_settings.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from django.test import Client, TestCase, override_settings
from django.urls import reverse

from tests.base import PASSWORD, PersonaMixin

REPO = Path(__file__).resolve().parents[2]


class SessionTests(PersonaMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.make_personas()

    def login(self, client: Client):
        return client.post(
            reverse("login"), {"username": self.viewer.username, "password": PASSWORD}
        )

    def test_the_session_expires_after_session_cookie_age(self):
        with override_settings(SESSION_COOKIE_AGE=1):
            client = Client()
            self.login(client)
            url = reverse("registry:modelentry_list")
            self.assertEqual(client.get(url).status_code, 200)
            time.sleep(2.1)
            response = client.get(url)
        self.assertEqual(response.status_code, 302)
        self.assertIn("/login/", response["Location"])

    def test_the_session_cookie_is_httponly_samesite_and_bounded(self):
        from django.conf import settings

        response = self.login(Client())
        cookie = response.cookies[settings.SESSION_COOKIE_NAME]
        self.assertTrue(cookie["httponly"])
        self.assertEqual(cookie["samesite"], "Lax")
        self.assertEqual(int(cookie["max-age"]), settings.SESSION_COOKIE_AGE)
        self.assertLessEqual(settings.SESSION_COOKIE_AGE, 24 * 3600)

    def test_login_rotates_the_session_key(self):
        client = Client()
        client.get(reverse("login"))
        session = client.session
        session["probe"] = 1
        session.save()
        before = session.session_key
        self.login(client)
        self.assertNotEqual(client.session.session_key, before)

    def test_logout_kills_the_server_side_session(self):
        client = Client()
        self.login(client)
        key = client.session.session_key
        client.post(reverse("logout"))
        stolen = Client()
        from django.conf import settings

        stolen.cookies[settings.SESSION_COOKIE_NAME] = key
        response = stolen.get(reverse("registry:modelentry_list"))
        self.assertEqual(response.status_code, 302)

    def test_pages_refuse_framing_and_sniffing(self):
        client = Client()
        self.login(client)
        response = client.get(reverse("registry:modelentry_list"))
        self.assertEqual(response["X-Frame-Options"], "DENY")
        self.assertEqual(response["X-Content-Type-Options"], "nosniff")


def test_production_settings_secure_the_cookies(tmp_path):
    code = (
        "import json; from django.conf import settings as s; print(json.dumps({k: "
        "getattr(s, k, None) for k in ['SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', "
        "'SECURE_HSTS_SECONDS', 'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_SSL_REDIRECT', "
        "'SESSION_COOKIE_HTTPONLY', 'SESSION_COOKIE_SAMESITE', 'CSRF_COOKIE_SAMESITE', "
        "'X_FRAME_OPTIONS', 'DEBUG', 'ALLOWED_HOSTS', 'SESSION_EXPIRE_AT_BROWSER_CLOSE']}))"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "DJANGO_SETTINGS_MODULE", "DEBUG", "SECRET_KEY"}
    }
    env.update(
        IMAGEWORKS_ENV="production",
        SECRET_KEY="prod-" + "k" * 60,
        ALLOWED_HOSTS="registry.example.org",
        IMAGEWORKS_VAR_DIR=str(tmp_path),
        DJANGO_SETTINGS_MODULE="imageworks_site.settings",
    )
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); " + code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["SECURE_HSTS_SECONDS"] >= 31536000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SESSION_COOKIE_HTTPONLY"] is True
    assert values["X_FRAME_OPTIONS"] == "DENY"
    assert values["DEBUG"] is False
    assert values["ALLOWED_HOSTS"] == ["registry.example.org"]
    assert values["SESSION_EXPIRE_AT_BROWSER_CLOSE"] is True
