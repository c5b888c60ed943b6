"""The site's API (django-ninja): the original loader protocol at ``/v1/`` and the
REST API at ``/api/v1/``, one OpenAPI schema (``/api/v1/openapi.json``) and a
Swagger page (``/api/v1/docs``, assets served from the site's static files).

Errors are FastAPI's shape everywhere: ``{"detail": "message"}``, and 422
``{"detail": [{"type", "loc", "msg"}]}`` for invalid input.
"""

from __future__ import annotations

from django.conf import settings
from django.views.decorators.http import require_GET
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, ValidationError

from . import tokens
from .routers import entries, loader, operations
from .routers.common import Invalid

api = NinjaAPI(
    title="ImageWorks Registry Console API",
    version="1",
    description=(
        "Token-authenticated API of the registry console. `/v1/...` is the original "
        "ImageWorks model-loader protocol; `/api/v1/...` is the REST API. Send "
        "`Authorization: Bearer <token>` (create tokens on your API tokens page). "
        "See docs/api.md."
    ),
    urls_namespace="api",
    openapi_url="/api/v1/openapi.json",
    docs_url="/api/v1/docs",
    # The schema and the Swagger page hold no data: public, GET only.
    docs_decorator=require_GET,
)
api.add_router("/v1", loader.router)
api.add_router("/api/v1", entries.router)
api.add_router("/api/v1", operations.router)


def _error(request, status: int, detail, headers: dict | None = None):
    response = api.create_response(request, {"detail": detail}, status=status)
    for key, value in (headers or {}).items():
        response[key] = value
    return response


@api.exception_handler(AuthenticationError)
def _unauthenticated(request, exc):
    return _error(
        request,
        401,
        "Not authenticated: send 'Authorization: Bearer <token>' "
        "(create a token on your API tokens page).",
        {"WWW-Authenticate": "Bearer"},
    )


@api.exception_handler(tokens.TokenRejected)
def _rejected(request, exc):
    return _error(
        request, 401, str(exc), {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )


@api.exception_handler(tokens.TokenThrottled)
def _throttled(request, exc):
    cooloff = float(getattr(settings, "AXES_COOLOFF_TIME", 0.25) or 0.25)
    return _error(request, 429, str(exc), {"Retry-After": str(int(cooloff * 3600))})


@api.exception_handler(ValidationError)
def _invalid(request, exc):
    """Pydantic errors as FastAPI shows them: ``loc`` without ninja's parameter name."""
    items = []
    for error in exc.errors:
        item = dict(error)
        loc = list(item.get("loc") or [])
        if len(loc) >= 2 and loc[0] == "body" and loc[1] == "payload":
            loc = ["body", *loc[2:]]
        item["loc"] = loc
        item.pop("ctx", None)
        items.append(item)
    return _error(request, 422, items)


@api.exception_handler(Invalid)
def _form_invalid(request, exc):
    return _error(request, 422, exc.errors)
