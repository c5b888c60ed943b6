"""The set_user command: create or update a user with a role, no prompts."""

from io import StringIO

from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import TestCase


class SetUserCommandTests(TestCase):
    def run_command(self, *args, **env):
        out = StringIO()
        call_command("set_user", *args, stdout=out)
        return out.getvalue()

    def test_it_creates_a_user_with_a_role_and_password(self):
        output = self.run_command(
            "alice", "--role", "operator", "--password", "pw-123-abc"
        )
        user = get_user_model().objects.get(username="alice")
        self.assertIn("Created user alice (operator)", output)
        self.assertTrue(user.check_password("pw-123-abc"))
        self.assertEqual([g.name for g in user.groups.all()], ["operator"])
        self.assertTrue(user.has_perm("registry.verify_entry"))
        self.assertFalse(user.has_perm("registry.edit_entry"))

    def test_it_updates_an_existing_users_role(self):
        self.run_command("alice", "--role", "operator")
        output = self.run_command("alice", "--role", "editor")
        user = get_user_model().objects.get(username="alice")
        self.assertIn("Updated user alice (editor)", output)
        self.assertEqual([g.name for g in user.groups.all()], ["editor"])

    def test_it_makes_superusers_from_an_environment_password(self):
        import os

        os.environ["TEST_PW"] = "from-env-pw-1"
        try:
            self.run_command("root", "--superuser", "--password-env", "TEST_PW")
        finally:
            del os.environ["TEST_PW"]
        user = get_user_model().objects.get(username="root")
        self.assertTrue(user.is_superuser and user.is_staff)
        self.assertTrue(user.check_password("from-env-pw-1"))

    def test_it_refuses_without_a_role(self):
        with self.assertRaisesMessage(CommandError, "give --role"):
            self.run_command("alice")

    def test_it_refuses_an_empty_password_variable(self):
        with self.assertRaisesMessage(CommandError, "NOPE_UNSET is empty or unset"):
            self.run_command(
                "alice", "--role", "viewer", "--password-env", "NOPE_UNSET"
            )
