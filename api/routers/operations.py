"""REST: jobs and their progress, vLLM activation, backend health, the audit log, me."""

from datetime import date

from django.shortcuts import get_object_or_404
from ninja import Field, Router, Schema
from ninja.errors import HttpError
from ninja.pagination import LimitOffsetPagination, paginate
from ninja.responses import Status

from imageworks_site.roles import role_label
from registry.choices import Action

from .. import services
from ..auth import TokenAuth, actor_of, principal_of, require
from ..schemas import (
    Accepted,
    ActionOut,
    ActivationOut,
    Error,
    HealthOut,
    JobDetail,
    JobOut,
    MeOut,
    Message,
    SlotOut,
)
from .common import Invalid, accepted, form_errors, job_out

router = Router(auth=TokenAuth())

VIEW_JOB = "registry.view_job"
VIEW_ACTIONS = "registry.view_actionlog"
VIEW_ACTIVATION = "backends.view_activation"
VIEW_HEALTH = "backends.view_backendendpoint"
CONTROL = "backends.control_backend"


# --------------------------------------------------------------------------- jobs


@router.get(
    "/jobs",
    auth=TokenAuth(VIEW_JOB, what="reading jobs"),
    response={200: list[JobOut]},
    tags=["jobs"],
    url_name="job_list",
    summary="Background jobs, newest first",
)
@paginate(LimitOffsetPagination)
def job_list(request, kind: str = "", status: str = "", entry: str = ""):
    jobs = services.Job.objects.all()
    if kind:
        jobs = jobs.filter(kind=kind)
    if status:
        jobs = jobs.filter(status=status)
    if entry:
        jobs = jobs.filter(entry_name=entry)
    return jobs.defer("log", "params")


@router.get(
    "/jobs/{int:pk}",
    auth=TokenAuth(VIEW_JOB, what="reading jobs"),
    response={200: JobDetail},
    tags=["jobs"],
    url_name="job_detail",
    summary="One job: status, progress (bytes done/total), log, result",
)
def job_detail(request, pk: int):
    job = get_object_or_404(services.Job, pk=pk)
    return {**job_out(job), "log": job.log or [], "params": job.params or {}}


@router.post(
    "/jobs/{int:pk}/cancel",
    response={200: Message, 409: Error},
    tags=["jobs"],
    url_name="job_cancel",
    summary="Ask a queued or running job to stop",
)
def job_cancel(request, pk: int):
    job = get_object_or_404(services.Job, pk=pk)
    require(
        request,
        services.job_control_permission(job),
        what=f"cancelling {job.kind} jobs",
    )
    if not services.cancel_job(job):
        raise HttpError(409, f"Job {job.pk} has already ended ({job.status}).")
    return Status(200, {"detail": f"Job {job.pk} cancelled."})


# --------------------------------------------------------------------------- vLLM


class StopIn(Schema):
    """What to do with requests the running model is answering (optional body)."""

    drain_seconds: float = Field(
        0,
        ge=0,
        le=3600,
        description="Wait up to this many seconds for in-flight requests, then stop.",
    )
    force: bool = Field(
        False, description="Stop now, cutting in-flight requests (needs a reason)."
    )
    reason: str = Field(
        "", max_length=500, description="Why; recorded in the audit log."
    )


class ActivateIn(StopIn):
    """Preflight override and what to do with the replaced model's requests."""

    override_preflight: bool = Field(
        False, description="Activate although preflight checks failed (needs a reason)."
    )


def _activation_out(act) -> dict:
    return {
        "id": act.pk,
        "logical_name": act.logical_name,
        "served_model_id": act.served_model_id,
        "state": act.state,
        "mode": act.mode,
        "user_name": act.user_name,
        "host_name": act.host_name,
        "base_url": act.base_url,
        "port": act.port,
        "pid": act.pid,
        "command": act.command or [],
        "requested_at": act.requested_at,
        "ready_at": act.ready_at,
        "stopped_at": act.stopped_at,
        "time_to_ready_s": act.time_to_ready_s,
        "exit_code": act.exit_code,
        "error": act.error,
    }


@router.get(
    "/vllm",
    auth=TokenAuth(VIEW_ACTIVATION, what="reading activations"),
    response={200: SlotOut},
    tags=["vLLM"],
    url_name="vllm_current",
    summary="The vLLM slot: what is active, starting or stopping, and where",
)
def vllm_current(request):
    slot = services.slot_status()
    act = slot.activation
    live = act is not None and act.is_live
    return {
        "state": slot.state,
        "label": slot.label,
        "logical_name": slot.logical_name,
        "user_name": slot.user_name,
        "port": slot.port,
        "pid": slot.pid,
        "error": slot.error,
        "endpoint": services.activation_url(act).rstrip("/") + "/v1" if live else "",
        "activation": _activation_out(act) if act is not None else None,
        "job": job_out(slot.job) if slot.job is not None else None,
    }


@router.get(
    "/vllm/activations",
    auth=TokenAuth(VIEW_ACTIVATION, what="reading activations"),
    response={200: list[ActivationOut]},
    tags=["vLLM"],
    url_name="vllm_activations",
    summary="Every activation, newest first",
)
@paginate(LimitOffsetPagination)
def vllm_activations(request):
    return services.activations()


@router.post(
    "/entries/{int:pk}/activate",
    auth=TokenAuth(CONTROL, action=Action.ACTIVATE, what="activate"),
    response={202: Accepted, 409: Error, 422: Error},
    tags=["vLLM"],
    url_name="vllm_activate",
    summary="Serve this vLLM entry (replacing the active model): 202 + job",
)
def vllm_activate(request, pk: int, body: ActivateIn | None = None):
    """Preflight runs first: a failed check is a 422 listing the checks, unless
    ``override_preflight`` with a ``reason``. When another model runs and is
    answering requests, choose ``drain_seconds`` (wait up to N s for them, inside
    the job) or ``force`` with a ``reason`` (cut them off); else 422."""
    entry = get_object_or_404(services.ModelEntry, pk=pk)
    who = actor_of(request)
    body = body or ActivateIn()
    try:
        job = services.request_activation(
            entry,
            who,
            services.slot_options(
                override_preflight=body.override_preflight,
                drain_seconds=body.drain_seconds,
                force=body.force,
                reason=body.reason,
            ),
        )
    except services.ActivationRefused as exc:
        services.record_refusal(who, Action.ACTIVATE, entry.name, str(exc))
        raise HttpError(422, str(exc))
    except services.JobConflict as exc:
        raise HttpError(409, str(exc))
    return accepted(job, f"Activating {entry.name}")


@router.post(
    "/vllm/stop",
    auth=TokenAuth(CONTROL, action=Action.STOP, what="stop vLLM"),
    response={202: Accepted, 409: Error, 422: Error},
    tags=["vLLM"],
    url_name="vllm_stop",
    summary="Stop the served model (cancels a start in progress): 202 + job",
)
def vllm_stop(request, body: StopIn | None = None):
    """When the model is answering requests, choose ``drain_seconds`` (wait up to
    N s for them, inside the job) or ``force`` with a ``reason``; else 422."""
    who = actor_of(request)
    body = body or StopIn()
    try:
        job = services.request_stop(
            who,
            services.slot_options(
                drain_seconds=body.drain_seconds, force=body.force, reason=body.reason
            ),
        )
    except services.ActivationRefused as exc:
        services.record_refusal(who, Action.STOP, "", str(exc))
        raise HttpError(422, str(exc))
    except services.JobConflict as exc:
        raise HttpError(409, str(exc))
    return accepted(job, "Stopping the active vLLM model")


# --------------------------------------------------------------------------- health


def _health_out(ep) -> dict:
    return {
        "key": ep.key,
        "kind": ep.kind,
        "label": ep.label,
        "url": ep.url,
        "status": ep.status,
        "since": ep.since,
        "last_checked": ep.last_checked,
        "latency_ms": ep.latency_ms,
        "error": ep.last_error,
        "details": ep.details or {},
    }


@router.get(
    "/health",
    auth=TokenAuth(VIEW_HEALTH, what="reading backend health"),
    response={200: list[HealthOut]},
    tags=["health"],
    url_name="health_list",
    summary="Stored health of every configured backend endpoint (no probing)",
)
def health_list(request):
    return [_health_out(ep) for ep in services.health_endpoints()]


@router.post(
    "/health/check",
    auth=TokenAuth(VIEW_HEALTH, what="checking backends"),
    response={200: list[HealthOut]},
    tags=["health"],
    url_name="health_check",
    summary="Check every backend now (a few seconds at most), then list them",
)
def health_check(request, kind: str = ""):
    services.check_health(kind or None)
    return [_health_out(ep) for ep in services.health_endpoints()]


# --------------------------------------------------------------------------- audit


@router.get(
    "/audit",
    auth=TokenAuth(VIEW_ACTIONS, what="reading the audit log"),
    response={200: list[ActionOut], 422: Error},
    tags=["audit"],
    url_name="audit_list",
    summary="The audit log (who did what), newest first, with the page's filters",
)
@paginate(LimitOffsetPagination)
def audit_list(
    request,
    user_name: str = "",
    action: list[str] | None = None,
    outcome: str = "",
    entry: str = "",
    time_after: date | None = None,
    time_before: date | None = None,
):
    """``time_after``/``time_before`` are dates (YYYY-MM-DD); ``action`` may repeat."""
    filterset = services.filter_actions(
        request.GET, queryset=services.ActionLog.objects.all()
    )
    if not filterset.is_valid():
        raise Invalid(form_errors(filterset.form, "query"))
    return filterset.qs


# --------------------------------------------------------------------------- me


@router.get(
    "/me",
    response={200: MeOut},
    tags=["tokens"],
    url_name="me",
    summary="Who this token belongs to and what it may do",
)
def me(request):
    principal = principal_of(request)
    user, token = principal.user, principal.token
    perms = sorted(
        p
        for p in (token.user.get_all_permissions() if token else [])
        if principal.allows(p)
    )
    return {
        "username": user.get_username(),
        "role": role_label(user),
        "token_label": token.label if token else "",
        "token_scope": token.scope if token else "",
        "token_expires_at": token.expires_at if token else None,
        "permissions": perms,
    }
