"""Create, list and revoke API tokens from the command line.

manage.py api_token create alice --label "tagger on gpu1" --scope read [--expires-days 90]
manage.py api_token list [alice]
manage.py api_token revoke 12        # by id (see list)
"""

from __future__ import annotations

import getpass

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from api import tokens
from api.choices import TokenScope
from api.models import ApiToken
from registry.audit import Actor


def _operator() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


class Command(BaseCommand):
    help = "Create, list or revoke API tokens (the secret is printed once)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="command", required=True)
        create = sub.add_parser("create", help="create a token for a user")
        create.add_argument("username")
        create.add_argument("--label", required=True)
        create.add_argument("--scope", choices=TokenScope.values, default="read")
        create.add_argument("--expires-days", type=int, default=None)
        listing = sub.add_parser("list", help="list tokens (of one user)")
        listing.add_argument("username", nargs="?")
        revoke = sub.add_parser("revoke", help="revoke a token by id")
        revoke.add_argument("token_id", type=int)

    def handle(self, *args, command, **opts):
        return getattr(self, f"_{command}")(**opts)

    def _create(self, username, label, scope, expires_days, **_):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r} (create it with set_user).")
        try:
            token, secret = tokens.create_token(
                user,
                label,
                scope,
                expires_in_days=expires_days,
                created_by=_operator(),
                actor=Actor.cli(),
            )
        except tokens.TokenError as exc:
            raise CommandError(str(exc))
        self.stderr.write(
            f"Created token {token.pk} '{token.label}' ({token.scope}) for "
            f"{username}. It is shown once:"
        )
        self.stdout.write(secret)

    def _list(self, username=None, **_):
        rows = ApiToken.objects.select_related("user").order_by("user__username", "pk")
        if username:
            rows = rows.filter(user__username=username)
        for token in rows:
            expires = token.expires_at.isoformat() if token.expires_at else "never"
            used = token.last_used.isoformat() if token.last_used else "never"
            self.stdout.write(
                f"{token.pk}\t{token.user.username}\t{token.label}\t{token.scope}\t"
                f"{token.prefix}…\t{token.status}\texpires {expires}\tlast used {used}"
            )

    def _revoke(self, token_id, **_):
        token = ApiToken.objects.filter(pk=token_id).first()
        if token is None:
            raise CommandError(f"No token with id {token_id}.")
        if tokens.revoke_token(token, by=_operator(), actor=Actor.cli()):
            self.stdout.write(
                f"Revoked token {token.pk} '{token.label}' of {token.user}."
            )
        else:
            self.stdout.write(f"Token {token.pk} was already revoked.")
