"""Site middleware: Vary on HX-Request, and a clear page when the database is down."""

from __future__ import annotations

import logging

from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpResponse
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)


class VaryOnHtmxMiddleware:
    """Partial and full responses share URLs; caches must tell them apart."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        vary = response.get("Vary", "")
        if "HX-Request" not in vary:
            response["Vary"] = f"{vary}, HX-Request" if vary else "HX-Request"
        return response


class DatabaseUnavailableMiddleware:
    """Turn "cannot reach the database" into a 503 page instead of a traceback.

    Only connection-level failures are caught; the connection is closed so the
    next request reconnects (PostgreSQL restarts recover without a site restart).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        return self._unavailable(request, exception)

    def _unavailable(self, request, exception: DatabaseError):
        from django.db import connections

        logger.error("database unavailable: %s", exception)
        for conn in connections.all():
            try:
                conn.close()
            except DatabaseError:
                pass
        # No request context: context processors query the database (the user's
        # role), which is exactly what is down.
        reason = (
            str(exception).splitlines()[0] if str(exception) else "connection failed"
        )
        response = HttpResponse(
            render_to_string("503.html", {"reason": reason}), status=503
        )
        response["Retry-After"] = "5"
        return response
