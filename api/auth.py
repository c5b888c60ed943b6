"""Authentication and permission checks of the API (django-ninja auth callables).

* :class:`TokenAuth`: ``Authorization: Bearer iwk_...`` -> a ``Principal``.
* :class:`LoaderReadAuth`: the same, and with ``IMAGEWORKS_LOADER_OPEN_READ=1`` a
  request without an ``Authorization`` header passes as an open read (the original
  loader service had no authentication; the operator opts in for a trusted network).
* :func:`require`: the permission check inside each operation (scope AND role);
  a refused state-changing call is audited.
"""

from __future__ import annotations

import logging

from django.conf import settings
from ninja.errors import HttpError
from ninja.security import HttpBearer

from . import services, tokens
from .tokens import Principal

audit_log = logging.getLogger("api.audit")


class TokenAuth(HttpBearer):
    def authenticate(self, request, token: str) -> Principal:
        principal = tokens.authenticate(request, token)
        request.api_principal = principal
        # The cheap audit of every token request (reads included); state-changing
        # calls also get their ActionLog row from the service they call.
        audit_log.info(
            "api request user=%s token=%s scope=%s ip=%s %s %s",
            principal.user.get_username(),
            principal.token.label,
            principal.scope,
            request.META.get("REMOTE_ADDR", ""),
            request.method,
            request.get_full_path(),
        )
        return principal


class LoaderReadAuth(TokenAuth):
    """Token auth, or no auth at all when the operator opened loader reads."""

    def __call__(self, request):
        if not request.headers.get(self.header) and open_read_enabled():
            principal = Principal(user=None, token=None, open_read=True)
            request.api_principal = principal
            return principal
        return super().__call__(request)


def open_read_enabled() -> bool:
    return bool(getattr(settings, "IMAGEWORKS_LOADER_OPEN_READ", False))


def principal_of(request) -> Principal:
    return request.auth


def actor_of(request) -> services.Actor:
    principal = principal_of(request)
    return services.actor(principal.name, principal.user)


def require(
    request,
    *perms: str,
    action: str = "",
    entry_name: str = "",
    what: str = "",
) -> services.Actor:
    """Refuse (403) unless the token's scope and the user's role grant every ``perms``.

    ``action`` (an ``Action`` value) marks a state-changing call: its refusal is
    written to the audit log. Returns the call's audit actor.
    """
    principal = principal_of(request)
    missing = [p for p in perms if not principal.allows(p)]
    if not missing:
        return actor_of(request)
    role_allows = principal.user is not None and all(
        principal.user.has_perm(p) for p in missing
    )
    if role_allows and principal.token is not None:
        why = f"this token's scope ({principal.scope}) does not allow {what or 'this'}"
    else:
        why = f"your role does not allow {what or 'this'}"
    message = f"Refused: {why}."
    if action:
        services.record_refusal(actor_of(request), action, entry_name, message)
    raise HttpError(403, message)
