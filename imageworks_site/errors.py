"""Error pages in the site's own look."""

from django.shortcuts import render


def permission_denied(request, exception=None):
    return render(request, "403.html", {"reason": str(exception or "")}, status=403)


def not_found(request, exception=None):
    return render(request, "404.html", status=404)


def server_error(request):
    # A database outage can surface outside the view (session save, auth, other
    # middleware), where DatabaseUnavailableMiddleware.process_exception never sees
    # it: answer the same 503 page instead of a 500.
    import sys

    from django.db import InterfaceError, OperationalError

    exc = sys.exc_info()[1]
    if isinstance(exc, (OperationalError, InterfaceError)):
        from .middleware import DatabaseUnavailableMiddleware

        return DatabaseUnavailableMiddleware(None)._unavailable(request, exc)
    return render(request, "500.html", status=500)
