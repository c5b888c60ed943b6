"""Settings for the ``imageworks-models`` command line: the site's, minus web-only apps.

The CLI runs the same services on the same database, but it never renders a page and
runs its work inline (it never hands a job to the task queue), so it does not load
the apps that only serve HTTP or the queue: tables, filters, template partials, htmx,
login throttling, the admin, django-q2, django-ninja. Loading them (django-tables2 alone pulls in
``django.contrib.postgres`` and psycopg, even on SQLite; django-q2 psutil and ctypes)
was most of the CLI's start-up. A command that needs one of them must add it back.
"""

from imageworks_site.settings import *  # noqa: F403
from imageworks_site.settings import INSTALLED_APPS, MIDDLEWARE

WEB_ONLY_APPS = (
    "django.contrib.admin",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_tables2",
    "django_filters",
    "django_q",
    "template_partials",
    "axes",
    "ninja",  # the API's Swagger page; importing it loads pydantic (~0.1 s)
)
INSTALLED_APPS = [app for app in INSTALLED_APPS if app not in WEB_ONLY_APPS]
MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith(("axes.", "django_htmx."))]
AUTHENTICATION_BACKENDS = ["imageworks_site.auth.ModelBackend"]
