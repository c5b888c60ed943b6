"""Pages of the api app: the user's own API tokens, and ``GET /`` for loader clients."""

from __future__ import annotations

import functools

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from . import tokens
from .choices import TokenScope
from .models import ApiToken
from .selection import ROOT_PAYLOAD

TEMPLATE = "api/token_list.html"
EXPIRY_CHOICES = [
    ("", "Never"),
    ("7", "7 days"),
    ("30", "30 days"),
    ("90", "90 days"),
    ("365", "1 year"),
]


# --------------------------------------------------------------------------- GET /


def wants_loader_json(request) -> bool:
    """A loader client, not a browser: an ``Accept`` header without ``text/html``.

    requests, httpx and curl send ``Accept: */*``; browsers always name text/html.
    A request with no Accept header at all is treated as a browser (the dashboard).
    """
    accept = request.headers.get("Accept", "")
    return bool(accept) and "text/html" not in accept


def loader_root(view):
    """Wrap the dashboard: loader clients get the original service's ``GET /``."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.method in ("GET", "HEAD") and wants_loader_json(request):
            response = JsonResponse(ROOT_PAYLOAD)
        else:
            response = view(request, *args, **kwargs)
        patch_vary_headers(response, ["Accept"])
        return response

    return wrapper


# --------------------------------------------------------------------------- tokens page


class TokenForm(forms.Form):
    label = forms.CharField(max_length=tokens.MAX_LABEL, help_text="What uses it.")
    scope = forms.ChoiceField(choices=TokenScope.choices)
    expires_in_days = forms.TypedChoiceField(
        choices=EXPIRY_CHOICES,
        coerce=int,
        empty_value=None,
        required=False,
        label="Expires",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        allowed = tokens.allowed_scopes(user)
        self.fields["scope"].choices = [(s.value, s.label) for s in allowed]


def _page(request, form=None, new_secret: str = "", new_token=None, status=200):
    user = request.user
    response = render(
        request,
        TEMPLATE,
        {
            "form": form or TokenForm(user=user),
            "tokens": ApiToken.objects.filter(user=user),
            "allowed_scopes": tokens.allowed_scopes(user),
            "new_secret": new_secret,
            "new_token": new_token,
        },
        status=status,
    )
    return response


@never_cache
@require_GET
@login_required
def token_list(request):
    return _page(request)


@never_cache
@require_POST
@login_required
def token_create(request):
    """Create a token and show its secret once (this response only, never stored)."""
    form = TokenForm(request.POST, user=request.user)
    if not form.is_valid():
        return _page(request, form=form)
    try:
        token, secret = tokens.create_token(
            request.user,
            form.cleaned_data["label"],
            form.cleaned_data["scope"],
            expires_in_days=form.cleaned_data["expires_in_days"],
        )
    except tokens.TokenError as exc:
        form.add_error(None, str(exc))
        return _page(request, form=form)
    return _page(request, new_secret=secret, new_token=token)


@require_POST
@login_required
def token_revoke(request, pk: int):
    """Revoke one of the user's own tokens (another user's token is a 404)."""
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    if tokens.revoke_token(token, by=request.user.get_username()):
        messages.success(request, f"Token '{token.label}' revoked.")
    else:
        messages.info(request, f"Token '{token.label}' was already revoked.")
    return redirect("tokens:token_list")
