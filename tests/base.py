"""Test personas and the permission-matrix helper every view test reuses."""

from __future__ import annotations

import logging
from contextlib import contextmanager

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client, TestCase

from imageworks_site.roles import ensure_groups

PASSWORD = "correct-horse-battery"


def make_user(username: str, *roles: str, superuser: bool = False):
    ensure_groups()
    User = get_user_model()
    user = User.objects.create_user(username=username, password=PASSWORD)
    if superuser:
        user.is_superuser = user.is_staff = True
        user.save()
    user.groups.set(Group.objects.filter(name__in=roles))
    return user


class PersonaMixin:
    """admin (superuser), operator, editor, viewer, outsider (no role)."""

    @classmethod
    def make_personas(cls) -> None:
        cls.admin = make_user("root", superuser=True)
        cls.operator = make_user("alice", "operator")
        cls.operator2 = make_user("bob", "operator")
        cls.editor = make_user("erin", "editor")
        cls.viewer = make_user("vera", "viewer")
        cls.outsider = make_user("olly")

    def client_for(self, user) -> Client:
        client = Client()
        client.force_login(user)
        return client


class BaseTestCase(PersonaMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.make_personas()


@contextmanager
def quiet_request_log():
    """4xx responses log warnings through django.request; keep test output clean."""
    logger = logging.getLogger("django.request")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


class PermissionMatrixMixin(PersonaMixin):
    """Assertions for one URL: anonymous -> login, wrong role -> 403,
    right role -> allowed, wrong method -> 405, POST without CSRF -> 403.

    Use from a TestCase that has called ``make_personas()``.
    """

    def assert_login_required(self, url: str, method: str = "get", data=None) -> None:
        response = getattr(Client(), method)(url, data or {})
        self.assertEqual(
            response.status_code, 302, f"{method.upper()} {url} as anonymous"
        )
        self.assertIn("/login/", response["Location"])

    def assert_forbidden(self, user, url: str, method: str = "get", data=None) -> None:
        with quiet_request_log():
            response = getattr(self.client_for(user), method)(url, data or {})
        self.assertEqual(response.status_code, 403, f"{method.upper()} {url} as {user}")

    def assert_allowed(
        self, user, url: str, method: str = "get", data=None, ok=(200, 302)
    ):
        response = getattr(self.client_for(user), method)(url, data or {})
        self.assertIn(
            response.status_code,
            ok,
            f"{method.upper()} {url} as {user}: {response.status_code}",
        )
        return response

    def assert_method_not_allowed(self, user, url: str, method: str = "get") -> None:
        with quiet_request_log():
            response = getattr(self.client_for(user), method)(url)
        self.assertEqual(
            response.status_code, 405, f"{method.upper()} {url} should be refused"
        )

    def assert_csrf_required(self, user, url: str, data=None) -> None:
        client = Client(enforce_csrf_checks=True)
        client.force_login(user)
        with quiet_request_log():
            response = client.post(url, data or {})
        self.assertEqual(response.status_code, 403, f"POST {url} without CSRF token")

    def assert_post_matrix(
        self, url: str, *, allowed, forbidden, data=None, ok=(200, 302)
    ) -> None:
        """The full matrix for a state-changing (POST-only) URL."""
        self.assert_login_required(url, "post", data)
        for user in forbidden:
            self.assert_forbidden(user, url, "post", data)
        self.assert_method_not_allowed(allowed[0], url, "get")
        self.assert_csrf_required(allowed[0], url, data)
        for user in allowed:
            self.assert_allowed(user, url, "post", data, ok=ok)

    def assert_get_matrix(self, url: str, *, allowed, forbidden, ok=(200,)) -> None:
        """The matrix for a read-only (GET) URL."""
        self.assert_login_required(url)
        for user in forbidden:
            self.assert_forbidden(user, url)
        for user in allowed:
            self.assert_allowed(user, url, ok=ok)
