"""Authentication and permission checks of the API (django-ninja auth callables).

* :class:`TokenAuth`: ``Authorization: Bearer iwk_...`` -> a ``Principal``.
* :class:`LoaderReadAuth`: the same, and with ``IMAGEWORKS_LOADER_OPEN_READ=1`` a
  request without an ``Authorization`` header passes as an open read (the original
  loader service had no authentication; the operator opts in for a trusted network).
* Each operation names its permission in its auth (``TokenAuth(perm, action=...)``):
  scope AND role are checked before the body is parsed; a refused state-changing
  call is audited. :func:`require` does the same inside an operation.
"""

from __future__ import annotations

import json
import logging

from django.conf import settings
from ninja.errors import HttpError
from ninja.security import HttpBearer

from . import services, tokens
from .tokens import Principal

audit_log = logging.getLogger("api.audit")


class TokenAuth(HttpBearer):
    """``Authorization: Bearer <token>``, then (optionally) a permission check.

    The permission is checked here, before the body is parsed, so a caller without
    it gets 403 whatever it sent. ``action`` marks a state-changing operation: its
    refusals are written to the audit log.
    """

    def __init__(self, perm: str = "", *, action: str = "", what: str = ""):
        super().__init__()
        self.perm = perm
        self.action = action
        self.what = what

    def __call__(self, request):
        principal = super().__call__(request)
        if principal is not None and self.perm:
            check(
                request,
                principal,
                self.perm,
                action=self.action,
                entry_name=_entry_name(request) if self.action else "",
                what=self.what,
            )
        return principal

    def authenticate(self, request, token: str) -> Principal:
        principal = tokens.authenticate(request, token)
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
            return Principal(user=None, token=None, open_read=True)
        return super().__call__(request)


def _entry_name(request) -> str:
    """The entry a refused call was about: the path's ``pk`` or the body's ``name``."""
    kwargs = getattr(request.resolver_match, "kwargs", None) or {}
    if "pk" in kwargs and "/entries/" in request.path:
        entry = services.ModelEntry.objects.filter(pk=kwargs["pk"]).first()
        return entry.name if entry else ""
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        return ""
    name = body.get("name") if isinstance(body, dict) else None
    return str(name)[:500] if isinstance(name, str) else ""


def open_read_enabled() -> bool:
    return bool(getattr(settings, "IMAGEWORKS_LOADER_OPEN_READ", False))


def principal_of(request) -> Principal:
    return request.auth


def actor_of(request) -> services.Actor:
    principal = principal_of(request)
    scope = principal.token_permissions if principal.token is not None else None
    return services.actor(principal.name, principal.user, scope)


def require(
    request,
    *perms: str,
    action: str = "",
    entry_name: str = "",
    what: str = "",
) -> services.Actor:
    """Inside an operation: refuse (403) unless scope and role grant every ``perms``.

    For checks that depend on what the operation loaded (a job's kind). Returns the
    call's audit actor.
    """
    check(
        request,
        principal_of(request),
        *perms,
        action=action,
        entry_name=entry_name,
        what=what,
    )
    return actor_of(request)


def check(
    request,
    principal: Principal,
    *perms: str,
    action: str = "",
    entry_name: str = "",
    what: str = "",
) -> None:
    """403 unless the token's scope and the user's role grant every ``perms``."""
    missing = [p for p in perms if not principal.allows(p)]
    if not missing:
        return
    role_allows = principal.user is not None and all(
        principal.user.has_perm(p) for p in missing
    )
    if role_allows and principal.token is not None:
        why = f"this token's scope ({principal.scope}) does not allow {what or 'this'}"
    else:
        why = f"your role does not allow {what or 'this'}"
    message = f"Refused: {why}."
    if action:
        who = services.actor(principal.name, principal.user)
        services.record_refusal(who, action, entry_name, message)
    raise HttpError(403, message)
