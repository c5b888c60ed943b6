"""Settings + URLs for bench/bench_api.py: the site plus two bare baseline views.

The baseline answers the same rows as ``/v1/select`` and ``/v1/models`` with a plain
``JsonResponse`` (no auth, no ninja, no caching), so the bench shows what the API
layer costs on top of Django itself. Used only by the bench's gunicorn.
"""

from django.http import JsonResponse
from django.urls import path

from imageworks_site.urls import urlpatterns as site_urlpatterns


def baseline_select(request, name: str):
    from registry.models import ModelEntry

    row = (
        ModelEntry.objects.filter(name=name)
        .values("name", "backend", "served_model_id", "capabilities", "backend_config")
        .first()
    )
    return JsonResponse(row or {}, status=200 if row else 404)


def baseline_models(request):
    from registry.models import ModelEntry

    rows = list(
        ModelEntry.objects.order_by("name").values(
            "name", "backend", "capabilities", "locked", "display_name"
        )
    )
    return JsonResponse(rows, safe=False)


urlpatterns = [
    path("bench/select/<path:name>", baseline_select),
    path("bench/models", baseline_models),
    *site_urlpatterns,
]
