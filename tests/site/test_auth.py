"""Logins, roles, throttling and CSRF: the foundation every page relies on."""

from django.contrib.auth.models import Group
from django.test import Client, TestCase, override_settings
from django.urls import reverse

from imageworks_site.roles import ensure_groups
from tests.base import (
    PASSWORD,
    BaseTestCase,
    PermissionMatrixMixin,
    make_user,
    quiet_request_log,
)


class LoginTests(BaseTestCase):
    def test_it_logs_in_and_lands_on_models(self):
        response = self.client.post(
            reverse("login"), {"username": "alice", "password": PASSWORD}
        )
        self.assertRedirects(
            response, reverse("registry:modelentry_list"), fetch_redirect_response=False
        )

    def test_it_shows_a_plain_error_for_a_wrong_password(self):
        response = self.client.post(
            reverse("login"), {"username": "alice", "password": "nope"}
        )
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, "Unknown user or wrong password")

    def test_it_shows_the_same_error_for_an_unknown_user(self):
        response = self.client.post(
            reverse("login"), {"username": "nobody", "password": "nope"}
        )
        self.assertContains(response, "Unknown user or wrong password")

    def test_it_redirects_anonymous_users_to_login(self):
        response = self.client.get(reverse("registry:modelentry_list"))
        self.assertEqual(response.status_code, 302)
        self.assertTrue(response["Location"].startswith(reverse("login")))

    def test_logout_is_post_only(self):
        client = self.client_for(self.viewer)
        with quiet_request_log():
            self.assertEqual(client.get(reverse("logout")).status_code, 405)
        response = client.post(reverse("logout"))
        self.assertRedirects(response, reverse("login"), fetch_redirect_response=False)

    def test_the_navigation_shows_user_and_role(self):
        response = self.client_for(self.operator).get(reverse("dashboard"))
        self.assertContains(response, "alice")
        self.assertContains(response, 'data-testid="role">operator<')
        self.assertNotContains(response, reverse("admin:index"))

    def test_staff_see_the_admin_link(self):
        response = self.client_for(self.admin).get(reverse("dashboard"))
        self.assertContains(response, reverse("admin:index"))


@override_settings(AXES_ENABLED=True, AXES_FAILURE_LIMIT=3)
class ThrottlingTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        make_user("alice", "operator")

    def test_it_locks_out_after_repeated_failures(self):
        client = Client()
        with quiet_request_log():
            for _ in range(3):
                client.post(
                    reverse("login"), {"username": "alice", "password": "wrong"}
                )
            response = client.post(
                reverse("login"), {"username": "alice", "password": PASSWORD}
            )
        self.assertEqual(response.status_code, 429)
        self.assertContains(response, "Too many failed sign-ins", status_code=429)

    def test_a_correct_password_before_the_limit_still_works(self):
        client = Client()
        client.post(reverse("login"), {"username": "alice", "password": "wrong"})
        response = client.post(
            reverse("login"), {"username": "alice", "password": PASSWORD}
        )
        self.assertEqual(response.status_code, 302)


class CsrfTests(BaseTestCase):
    def test_a_post_without_csrf_token_is_refused(self):
        client = Client(enforce_csrf_checks=True)
        with quiet_request_log():
            response = client.post(
                reverse("login"), {"username": "alice", "password": PASSWORD}
            )
        self.assertEqual(response.status_code, 403)

    def test_pages_send_the_csrf_token_with_htmx_requests(self):
        response = self.client_for(self.viewer).get(reverse("dashboard"))
        self.assertContains(response, 'hx-headers=\'{"X-CSRFToken": "')


class RoleGroupTests(TestCase):
    def test_the_migration_creates_the_three_roles(self):
        # Browser tests (TransactionTestCase) flush tables in the same worker, so
        # re-run what the 0002_roles migration runs rather than trust leftover rows.
        ensure_groups()
        roles = {
            g.name: {p.codename for p in g.permissions.all()}
            for g in Group.objects.all()
        }
        self.assertIn("view_modelentry", roles["viewer"])
        self.assertNotIn("verify_entry", roles["viewer"])
        self.assertTrue(
            {"verify_entry", "lock_entry", "control_backend"} <= roles["operator"]
        )
        self.assertNotIn("edit_entry", roles["operator"])
        self.assertTrue({"edit_entry", "import_entry"} <= roles["editor"])
        self.assertNotIn("control_backend", roles["editor"])


class DashboardPermissionTests(PermissionMatrixMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.make_personas()

    def test_dashboard_needs_a_login(self):
        self.assert_login_required(reverse("dashboard"))
        self.assert_allowed(self.viewer, reverse("dashboard"))
