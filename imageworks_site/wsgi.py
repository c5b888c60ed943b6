"""WSGI entry point. Refuses to start (clear message, no traceback spam on every
page) when the database cannot be reached, then warms the process up before it
serves (``imageworks_site.warmup``; ``IMAGEWORKS_WARM_UP=0`` turns that off)."""

import os
import sys

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imageworks_site.settings")
application = get_wsgi_application()


def _check_database() -> None:
    from django.db import OperationalError, connection

    try:
        connection.ensure_connection()
    except OperationalError as exc:
        sys.stderr.write(f"Database unavailable at start: {exc}\nCheck DATABASE_URL.\n")
        raise SystemExit(1) from None
    finally:
        connection.close()


def _warm_up() -> None:
    from django.conf import settings

    if settings.IMAGEWORKS_WARM_UP:
        from .warmup import warm

        warm()


if os.environ.get("IMAGEWORKS_SKIP_DB_CHECK") != "1":
    _check_database()
    _warm_up()
