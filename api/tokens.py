"""API token service: create, revoke, authenticate (views, the CLI and the API call it).

A token is ``iwk_`` + 43 URL-safe characters (256 random bits). Only its SHA-256 is
stored (see ``ApiToken``); the secret is returned once, by :func:`create_token`.

Scope ceiling: a token's scope is one of read / operate / edit, each the permission
set of a role (viewer / operator / editor). A user may create a scope only if their
role grants every permission of it, and at *use* time a request may only use a
permission that both the scope and the user's current role grant
(:meth:`Principal.allows`), so a demoted user's old tokens lose the extra rights at
once, and a deactivated user's tokens stop working.

Failed token attempts are throttled like logins: they are recorded by django-axes
under the pseudo-username ``API_TOKEN_USERNAME`` + the client IP, with the login
limit and cool-off (``IMAGEWORKS_LOGIN_FAILURE_LIMIT`` / ``..._COOLOFF_HOURS``);
a locked-out address gets 429 for every wrong token until the cool-off ends
(``manage.py axes_reset_ip IP`` lifts it); see :func:`authenticate` for valid ones.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from registry.audit import Actor, record
from registry.choices import Action

from .choices import SCOPE_PERMISSIONS, TokenScope
from .models import ApiToken

logger = logging.getLogger("api.audit")

TOKEN_PREFIX = "iwk_"
PREFIX_SHOWN = 12  # "iwk_" + 8 characters of the secret, for lists
API_TOKEN_USERNAME = "<api-token>"
MAX_LABEL = 100
OPEN_READ_PERMISSION = "registry.view_modelentry"
#: Seconds between two writes of a token's usage (requests in between are counted
#: in this process and added with the next write).
USAGE_WRITE_INTERVAL = 60

_pending_lock = threading.Lock()
_pending_uses: dict[str, int] = {}


class TokenError(Exception):
    """A token could not be created or revoked; the message is for the user."""


class TokenRejected(Exception):
    """The presented token is not valid now (401)."""


class TokenThrottled(Exception):
    """Too many failed token attempts from this client (429)."""


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- scopes


def scope_allowed(user, scope: str) -> bool:
    """May ``user`` hold a token of ``scope``? (Their role grants all of its permissions.)"""
    if not getattr(user, "is_active", False):
        return False
    return all(user.has_perm(p) for p in SCOPE_PERMISSIONS[TokenScope(scope)])


def allowed_scopes(user) -> list[TokenScope]:
    return [scope for scope in TokenScope if scope_allowed(user, scope)]


@dataclass(frozen=True)
class Principal:
    """Who is calling the API: a user through a token, or nobody (open loader reads)."""

    user: Any
    token: ApiToken | None
    # IMAGEWORKS_LOADER_OPEN_READ: no token, may only read the registry.
    open_read: bool = False

    @property
    def scope(self) -> str:
        return self.token.scope if self.token is not None else ""

    @property
    def token_permissions(self) -> frozenset[str]:
        return SCOPE_PERMISSIONS[self.token.scope] if self.token else frozenset()

    @property
    def name(self) -> str:
        """The audit name: ``alice (token ci-bot)``."""
        if self.user is None:
            return "anonymous (open loader read)"
        name = self.user.get_username()
        if self.token is not None:
            name = f"{name} (token {self.token.label})"
        return name[:150]

    def allows(self, perm: str) -> bool:
        """Both the token's scope and the user's current role grant ``perm``."""
        if self.open_read:
            return perm == OPEN_READ_PERMISSION
        if self.user is None or not self.user.is_active:
            return False
        if self.token is not None and perm not in SCOPE_PERMISSIONS[self.token.scope]:
            return False
        return self.user.has_perm(perm)


# --------------------------------------------------------------------------- create / revoke


def _checked(user, label: str, scope: str, expires_in_days: int | None):
    """``(label, scope, expires_at)`` for a new token, or :class:`TokenError`."""
    label = (label or "").strip()
    if not label:
        raise TokenError(
            "Give the token a label (what uses it, e.g. 'tagger on gpu1')."
        )
    if len(label) > MAX_LABEL:
        raise TokenError(f"The label is longer than {MAX_LABEL} characters.")
    try:
        scope = TokenScope(scope)
    except ValueError:
        choices = ", ".join(TokenScope.values)
        raise TokenError(f"Unknown scope {scope!r} (choose one of: {choices}).")
    if not scope_allowed(user, scope):
        raise TokenError(
            f"Your role does not allow '{scope}' tokens (it needs the {scope.role} role)."
        )
    expires_at = None
    if expires_in_days is not None:
        if expires_in_days < 1:
            raise TokenError("The expiry must be at least 1 day.")
        expires_at = timezone.now() + timedelta(days=expires_in_days)
    return label, scope, expires_at


def create_token(
    user,
    label: str,
    scope: str = TokenScope.READ,
    *,
    expires_in_days: int | None = None,
    created_by: str = "",
    actor: Actor | None = None,
) -> tuple[ApiToken, str]:
    """Create a token for ``user``; returns ``(token, secret)``. The secret is not kept.

    The audit log records who created it (``actor``, by default ``user`` on the
    site), for whom, its label, scope and expiry; never the secret.

    Raises :class:`TokenError` for an empty or duplicate label, an unknown scope,
    a scope above the user's role or a non-positive expiry.
    """
    label, scope, expires_at = _checked(user, label, scope, expires_in_days)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            token = ApiToken.objects.create(
                user=user,
                label=label,
                prefix=secret[:PREFIX_SHOWN],
                key_hash=hash_secret(secret),
                scope=scope,
                expires_at=expires_at,
                created_by=created_by or user.get_username(),
            )
    except IntegrityError:
        raise TokenError(f"You already have a token labelled '{label}'.")
    _audit(
        actor or Actor.from_user(user),
        token,
        f"Created API token '{label}' ({scope}) for {user.get_username()}.",
        op="create",
    )
    logger.info(
        "token created user=%s label=%s scope=%s expires=%s by=%s",
        user.get_username(),
        label,
        scope,
        expires_at.isoformat() if expires_at else "never",
        token.created_by,
    )
    return token, secret


def revoke_token(token: ApiToken, *, by: str, actor: Actor | None = None) -> bool:
    """Revoke ``token`` now (idempotent); returns False if it was already revoked.

    A revocation is audited as ``actor`` (by default the token's own user)."""
    changed = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_by=by[:150]
    )
    if changed:
        token.refresh_from_db()
        _audit(
            actor or Actor.from_user(token.user),
            token,
            f"Revoked API token '{token.label}' of {token.user.get_username()}.",
            op="revoke",
        )
        logger.info("token revoked user=%s label=%s by=%s", token.user, token.label, by)
    return bool(changed)


def _audit(actor: Actor, token: ApiToken, message: str, *, op: str) -> None:
    record(
        actor,
        Action.TOKEN,
        message=message,
        details={
            "op": op,
            "token_id": token.pk,
            "label": token.label,
            "user": token.user.get_username(),
            "scope": token.scope,
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        },
    )


# --------------------------------------------------------------------------- authenticate


def _axes_credentials() -> dict[str, str]:
    return {"username": API_TOKEN_USERNAME}


def _throttle_enabled() -> bool:
    return bool(getattr(settings, "AXES_ENABLED", True))


def check_throttle(request) -> None:
    """Raise :class:`TokenThrottled` while this client is locked out (axes)."""
    if not _throttle_enabled():
        return
    from axes.handlers.proxy import AxesProxyHandler

    if not AxesProxyHandler.is_allowed(request, _axes_credentials()):
        request.axes_locked_out = False  # our JSON 429, not axes' HTML page
        raise TokenThrottled(
            "Too many failed token attempts from this address; try again later."
        )


def record_failure(request, reason: str) -> None:
    logger.warning(
        "token rejected ip=%s path=%s reason=%s",
        request.META.get("REMOTE_ADDR", ""),
        request.path,
        reason,
    )
    if not _throttle_enabled():
        return
    from axes.handlers.proxy import AxesProxyHandler

    AxesProxyHandler.user_login_failed(
        sender=ApiToken, credentials=_axes_credentials(), request=request
    )
    request.axes_locked_out = False  # the next attempt gets the 429


def authenticate(request, secret: str) -> Principal:
    """The principal behind ``secret`` (a bearer token), or :class:`TokenRejected`.

    A rejected token is recorded for the throttle, and a client that is locked out
    gets :class:`TokenThrottled` instead. A valid token is not held up by the
    lockout: 256 random bits cannot be guessed, so presenting one proves the caller
    is not the one guessing (and a lockout check on every call would cost a query).
    Usage (``last_used``, address, ``request_count``) is written at most once per
    ``USAGE_WRITE_INTERVAL`` seconds per token, so reads stay read-only.
    """
    secret = (secret or "").strip()
    token = None
    if secret.startswith(TOKEN_PREFIX):
        token = (
            ApiToken.objects.select_related("user")
            .filter(key_hash=hash_secret(secret))
            .first()
        )
    reason = ""
    if token is None:
        reason = "Invalid token."
    elif token.revoked_at is not None:
        reason = "This token was revoked."
    elif token.is_expired:
        reason = "This token has expired."
    elif not token.user.is_active:
        reason = "Invalid token."
    if reason:
        check_throttle(request)
        record_failure(request, reason)
        raise TokenRejected(reason)
    _note_use(token, request)
    return Principal(user=token.user, token=token)


def _note_use(token: ApiToken, request) -> None:
    """Count the request; write the row only when it is due (or the address moved)."""
    ip = request.META.get("REMOTE_ADDR") or None
    now = timezone.now()
    with _pending_lock:
        # Keyed by the secret's hash, not the pk: a pk can come back (a test database
        # rolled back, a restored backup) and must not inherit another token's count.
        pending = _pending_uses.get(token.key_hash, 0) + 1
        due = (
            token.last_used is None
            or (now - token.last_used).total_seconds() >= USAGE_WRITE_INTERVAL
            or token.last_used_ip != ip
        )
        _pending_uses[token.key_hash] = 0 if due else pending
    if due:
        ApiToken.objects.filter(pk=token.pk).update(
            last_used=now,
            last_used_ip=ip,
            request_count=F("request_count") + pending,
        )
