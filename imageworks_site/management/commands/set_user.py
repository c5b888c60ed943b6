"""Create or update a user with a role, without prompts.

manage.py set_user alice --role operator --password 's3cret-pass'
manage.py set_user root --superuser --password-env ADMIN_PASSWORD
"""

from __future__ import annotations

import os

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

from imageworks_site.roles import ROLES, ensure_groups


class Command(BaseCommand):
    help = "Create or update a user and give it a role (viewer, operator, editor) or superuser."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--role", action="append", choices=ROLES, default=[], help="repeatable"
        )
        parser.add_argument("--superuser", action="store_true")
        parser.add_argument(
            "--password", help="set this password (visible in the process list)"
        )
        parser.add_argument(
            "--password-env", help="read the password from this environment variable"
        )
        parser.add_argument("--email", default="")

    def handle(
        self, *args, username, role, superuser, password, password_env, email, **opts
    ):
        if password_env:
            password = os.environ.get(password_env)
            if not password:
                raise CommandError(
                    f"environment variable {password_env} is empty or unset"
                )
        if not role and not superuser:
            raise CommandError("give --role (viewer, operator, editor) or --superuser")
        ensure_groups()
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username=username, defaults={"email": email}
        )
        if email:
            user.email = email
        if password:
            user.set_password(password)
        elif created:
            user.set_unusable_password()
        user.is_superuser = user.is_staff = bool(superuser) or (
            user.is_superuser and not role
        )
        user.save()
        user.groups.set(Group.objects.filter(name__in=role))
        what = "Created" if created else "Updated"
        roles = ", ".join(role + (["superuser"] if user.is_superuser else []))
        self.stdout.write(self.style.SUCCESS(f"{what} user {username} ({roles})"))
