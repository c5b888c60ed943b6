from django.conf import settings
from django.utils.functional import SimpleLazyObject

from .roles import role_label


def site(request):
    user = getattr(request, "user", None)
    return {
        # Lazy: only the navigation bar shows it, not the partials (saves a query).
        "site_role": SimpleLazyObject(lambda: role_label(user))
        if user is not None
        else "",
        "registry_dir": settings.IMAGEWORKS_REGISTRY_DIR,
        # How often open pages ask /live/ what changed (imageworks_site/live.py).
        "live_poll_ms": int(
            float(getattr(settings, "IMAGEWORKS_LIVE_POLL_SECONDS", 2.0)) * 1000
        ),
    }
