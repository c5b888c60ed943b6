"""The original ImageWorks model-loader protocol, served at the site's base URL.

Same paths, payloads, status codes and ``{"detail": ...}`` error bodies as the
original FastAPI service (``imageworks.model_loader.api``); each difference is listed
in docs/compatibility.md. ``GET /`` is answered by ``api.views.loader_root``.
"""

from django.conf import settings
from django.http import HttpResponse, HttpResponseNotModified
from django.utils.cache import patch_vary_headers
from django.utils.http import parse_etags
from ninja import Router
from ninja.errors import HttpError

from registry.choices import Action, JobStatus

from .. import selection, services
from ..auth import LoaderReadAuth, TokenAuth, actor_of
from ..schemas import (
    Error,
    Metrics,
    ModelSummary,
    SelectRequest,
    SelectResponse,
    VerifyRequest,
    VerifyResponse,
    VisionProbeRequest,
)

router = Router(tags=["loader protocol (original)"], auth=TokenAuth())

VIEW = "registry.view_modelentry"
VERIFY = "registry.verify_entry"


@router.get(
    "/models",
    response={200: list[ModelSummary], 401: Error, 403: Error},
    auth=LoaderReadAuth(VIEW, what="reading the registry"),
    url_name="loader_models",
    summary="List every model (sorted by name)",
)
def loader_models(request):
    """The per-process copy of the body for the current registry version.

    ``ETag`` names that version (and the encoding); a client that sends it back in
    ``If-None-Match`` gets ``304 Not Modified`` without the 10 MB body while no
    entry changed (the original's clients do not, they simply get the body).
    """
    encoding = "gzip" if "gzip" in request.headers.get("Accept-Encoding", "") else ""
    etag, body = selection.models_response(encoding)
    if etag in parse_etags(request.headers.get("If-None-Match", "")):
        response = HttpResponseNotModified()
    else:
        response = HttpResponse(body, content_type="application/json")
        if encoding:
            response["Content-Encoding"] = encoding
    response["ETag"] = etag
    response["Cache-Control"] = "private, no-cache"
    patch_vary_headers(response, ["Accept-Encoding"])
    return response


@router.post(
    "/select",
    response={200: SelectResponse, 404: Error, 409: Error},
    auth=LoaderReadAuth(VIEW, what="reading the registry"),
    url_name="loader_select",
    summary="Where and under which id a model is served",
)
def loader_select(request, payload: SelectRequest):
    try:
        chosen = selection.select_model(payload.name, payload.require_capabilities)
    except selection.ModelNotFound as exc:
        raise HttpError(404, exc.detail)
    except selection.CapabilityError as exc:
        raise HttpError(409, str(exc))
    return chosen.as_dict()


@router.post(
    "/verify",
    auth=TokenAuth(VERIFY, action=Action.VERIFY, what="verify"),
    response={200: VerifyResponse, 400: Error, 404: Error, 409: Error, 504: Error},
    url_name="loader_verify",
    summary="Hash a model's files (a background job; answers when it is done)",
)
def loader_verify(request, payload: VerifyRequest):
    """Runs the site's verify job and waits for it (``IMAGEWORKS_LOADER_VERIFY_TIMEOUT``).

    409: the entry is locked and its files hash differently. 400: verify cannot run
    (an Ollama tag, model files missing, outside the model roots). 504: still hashing
    after the timeout; the job goes on (the message names it).
    """
    who = actor_of(request)
    entry = services.ModelEntry.objects.filter(name=payload.name).first()
    if entry is None:
        raise HttpError(404, selection.ModelNotFound(payload.name).detail)
    try:
        job = services.enqueue_verify(entry, who)
    except services.JobConflict as exc:
        if exc.existing is None:
            raise HttpError(409, str(exc))
        job = exc.existing  # a verify of this entry already runs: answer with its end
    timeout = float(getattr(settings, "IMAGEWORKS_LOADER_VERIFY_TIMEOUT", 60.0))
    job = services.wait_for_job(job, timeout)
    if not job.is_terminal:
        raise HttpError(
            504,
            f"Verify of {entry.name} is still running after {timeout:.0f} s "
            f"(job {job.pk}, /api/v1/jobs/{job.pk}); ask again later.",
        )
    if job.status == JobStatus.SUCCEEDED:
        return {
            "status": "ok",
            "aggregate_sha256": str((job.result or {}).get("aggregate_sha256") or ""),
        }
    message = job.error or job.message or "Verify failed"
    raise HttpError(409 if message.startswith("Lock violation") else 400, message)


@router.post(
    "/probe/vision",
    auth=TokenAuth(VERIFY, what="vision probes"),
    response={400: Error},
    url_name="loader_probe_vision",
    summary="Not run by the console (answers 400 with the reason)",
)
def loader_probe_vision(request, payload: VisionProbeRequest):
    """The original sent an image from the server's disk to the model. The console
    does not read files named by API clients; it answers the original's error shape."""
    try:
        entry = selection.get_entry(payload.name)
    except selection.ModelNotFound as exc:
        raise HttpError(400, exc.detail)
    if not (entry.capabilities or {}).get("vision"):
        raise HttpError(400, f"Model '{payload.name}' is not vision-capable")
    raise HttpError(
        400,
        "Vision probes are not run by the registry console (it does not read image "
        "files named by API clients); run the ImageWorks probe tool against "
        f"{selection.endpoint_for(entry)} instead.",
    )


@router.get(
    "/models/{name}/metrics",
    auth=TokenAuth(VIEW, what="reading the registry"),
    response={200: Metrics},
    url_name="loader_metrics",
    exclude_unset=True,
    summary="A model's rolling performance summary",
)
def loader_metrics(request, name: str):
    return selection.metrics(name)
