from django.conf import settings

from .roles import role_label


def site(request):
    user = getattr(request, "user", None)
    return {
        "site_role": role_label(user) if user is not None else "",
        "registry_dir": settings.IMAGEWORKS_REGISTRY_DIR,
    }
