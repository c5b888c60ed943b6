"""The site's ModelBackend: Django's permissions, read in one query per request."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend as DjangoModelBackend
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext

from imageworks_site.auth import ModelBackend
from tests.base import make_user


def fresh(user):
    """The user as a new request loads it (no permission cache yet)."""
    return get_user_model().objects.get(pk=user.pk)


class OneQueryPermissionTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.operator = make_user("alice", "operator")
        # A permission of the user's own, beside the groups' ones.
        cls.operator.user_permissions.add(Permission.objects.get(codename="edit_entry"))
        cls.nobody = make_user("olly")
        cls.root = make_user("root", superuser=True)

    def test_the_same_permissions_as_djangos_backend_in_one_query(self):
        for user in (self.operator, self.nobody):
            with self.subTest(user=user.username):
                want = DjangoModelBackend().get_all_permissions(fresh(user))
                user = fresh(user)
                with CaptureQueriesContext(connection) as ctx:
                    got = ModelBackend().get_all_permissions(user)
                    ModelBackend().get_all_permissions(user)  # cached: no query
                self.assertEqual(got, want)
                self.assertEqual(len(ctx.captured_queries), 1)
        self.assertIn("registry.edit_entry", got_for(self.operator))
        self.assertIn("registry.verify_entry", got_for(self.operator))
        self.assertEqual(got_for(self.nobody), set())

    def test_has_perm_follows_a_role_change_at_the_next_request(self):
        user = fresh(self.nobody)
        self.assertFalse(user.has_perm("registry.lock_entry"))
        self.nobody.groups.add(Group.objects.get(name="operator"))
        self.assertTrue(fresh(self.nobody).has_perm("registry.lock_entry"))

    def test_inactive_users_have_none_and_superusers_all(self):
        inactive = fresh(self.operator)
        inactive.is_active = False
        self.assertEqual(ModelBackend().get_all_permissions(inactive), set())
        self.assertFalse(inactive.has_perm("registry.view_modelentry"))
        everything = {
            f"{app}.{code}"
            for app, code in Permission.objects.values_list(
                "content_type__app_label", "codename"
            )
        }
        self.assertEqual(
            ModelBackend().get_all_permissions(fresh(self.root)), everything
        )


def got_for(user) -> set[str]:
    return ModelBackend().get_all_permissions(fresh(user))
