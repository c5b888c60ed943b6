"""REST: registry entries (list/detail, verify/lock/unlock, edit, import, reload).

Thin: every operation checks the caller's permission (token scope AND role), then
calls one service through ``api.services``; the services write the audit rows.
"""

from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.shortcuts import get_object_or_404
from ninja import Router
from ninja.errors import HttpError
from ninja.pagination import LimitOffsetPagination, paginate
from ninja.responses import Status

from registry.choices import Action, LockRequestStatus

from .. import services
from ..auth import TokenAuth, actor_of
from ..schemas import (
    Accepted,
    ConflictError,
    EditIn,
    EditOut,
    EntryDetail,
    EntryOut,
    Error,
    ImportableOut,
    ImportIn,
    ImportOut,
    Message,
    SyncOut,
)
from .common import Invalid, accepted, entry_out, form_errors, job_out

router = Router(tags=["entries"], auth=TokenAuth())

VIEW = "registry.view_modelentry"
VERIFY = "registry.verify_entry"
LOCK = "registry.lock_entry"
EDIT = "registry.edit_entry"
IMPORT = "registry.import_entry"
SYNC = "registry.sync_registry"

LIST_DEFER = ("curated_raw", "discovered_raw", "capabilities", "backend_config")


@router.get(
    "/entries",
    auth=TokenAuth(VIEW, what="reading the registry"),
    response={200: list[EntryOut], 422: Error},
    url_name="entry_list",
    summary="Entries, with the Models page's filters and search",
)
@paginate(LimitOffsetPagination)
def entry_list(
    request,
    q: str = "",
    backend: str = "",
    role: list[str] | None = None,
    lock: str = "",
    installed: str = "",
    testing: bool = False,
    deprecated: bool = False,
    name: str = "",
):
    """``q`` is the page's fuzzy search (best match first); ``role`` may repeat.
    ``testing``/``deprecated`` include those entries (hidden by default, like the
    page). ``name`` picks one entry by its exact name."""
    who = actor_of(request)
    services.implicit_sync(who)
    queryset = services.ModelEntry.objects.defer(*LIST_DEFER)
    if name:
        queryset = queryset.filter(name=name)
    params = request.GET.copy()
    for key in ("limit", "offset", "name"):
        params.pop(key, None)
    filterset = services.filter_entries(params, queryset=queryset)
    if not filterset.is_valid():
        raise Invalid(form_errors(filterset.form, "query"))
    return filterset.qs


@router.get(
    "/entries/{int:pk}",
    auth=TokenAuth(VIEW, what="reading the registry"),
    response={200: EntryDetail},
    url_name="entry_detail",
    summary="One entry: merged, both raw layers, where each field comes from",
)
def entry_detail(request, pk: int):
    who = actor_of(request)
    services.implicit_sync(who)
    entry = get_object_or_404(services.ModelEntry, pk=pk)
    changes = [
        {
            "time": change.time.isoformat(),
            "layer": change.layer,
            "kind": change.kind,
            "user_name": change.user_name,
            "changes": change.changes,
        }
        for change in entry.changes.all()[:10]
    ]
    merged = entry.merged or {}
    return {
        **entry_out(entry),
        "endpoint": services.resolve_endpoint(merged),
        "download_path": entry.download_path,
        "last_verified_by": entry.last_verified_by,
        "field_sources": entry.field_sources or {},
        "merged": merged,
        "curated": entry.curated_raw,
        "discovered": entry.discovered_raw,
        "recent_changes": changes,
    }


@router.post(
    "/entries/{int:pk}/verify",
    auth=TokenAuth(VERIFY, action=Action.VERIFY, what="verify"),
    response={202: Accepted, 400: Error, 409: Error},
    url_name="entry_verify",
    summary="Queue a verify job (hash the model files)",
)
def entry_verify(request, pk: int):
    entry = get_object_or_404(services.ModelEntry, pk=pk)
    who = actor_of(request)
    if not entry.has_local_files:
        services.record_refusal(
            who, Action.VERIFY, entry.name, services.NOT_APPLICABLE_MESSAGE
        )
        raise HttpError(400, services.NOT_APPLICABLE_MESSAGE)
    try:
        job = services.enqueue_verify(entry, who)
    except services.JobConflict as exc:
        raise HttpError(409, str(exc))
    return accepted(job, f"Verifying {entry.name}")


@router.post(
    "/entries/{int:pk}/lock",
    auth=TokenAuth(LOCK, action=Action.LOCK, what="lock"),
    response={200: Message, 202: Accepted, 400: Error, 409: Error},
    url_name="entry_lock",
    summary="Lock the entry's version (verifies first when needed: 202 + job)",
)
def entry_lock(request, pk: int):
    entry = get_object_or_404(services.ModelEntry, pk=pk)
    who = actor_of(request)
    try:
        outcome = services.request_lock(entry, who)
    except PermissionDenied:
        message = f"{entry.name} must be verified before it is locked, and this token may not verify."
        services.record_refusal(who, Action.LOCK, entry.name, message)
        raise HttpError(403, message)
    if outcome.status == LockRequestStatus.QUEUED:
        return accepted(outcome.job, outcome.message)
    if outcome.status == LockRequestStatus.BUSY:
        raise HttpError(409, outcome.message)
    if outcome.status in (LockRequestStatus.NOT_APPLICABLE, LockRequestStatus.FAILED):
        if outcome.status == LockRequestStatus.NOT_APPLICABLE:
            services.record_refusal(who, Action.LOCK, entry.name, outcome.message)
        raise HttpError(400, outcome.message)
    return Status(200, {"detail": outcome.message})


@router.post(
    "/entries/{int:pk}/unlock",
    auth=TokenAuth(LOCK, action=Action.UNLOCK, what="unlock"),
    response={200: Message, 400: Error},
    url_name="entry_unlock",
    summary="Unlock (the expected hash is kept)",
)
def entry_unlock(request, pk: int):
    entry = get_object_or_404(services.ModelEntry, pk=pk)
    who = actor_of(request)
    try:
        outcome = services.unlock(entry, who)
    except (
        services.VerifyError,
        services.EntryNotFound,
        services.RegistryError,
    ) as exc:
        raise HttpError(400, str(exc))
    return Status(200, {"detail": outcome.message})


@router.patch(
    "/entries/{int:pk}",
    auth=TokenAuth(EDIT, action=Action.EDIT, what="edit"),
    response={200: EditOut, 409: ConflictError, 422: Error, 503: Error},
    url_name="entry_edit",
    summary="Edit an entry (curated layer), guarded by its fingerprint",
)
def entry_edit(request, pk: int, payload: EditIn):
    """Send the ``fingerprint`` you read and the fields to change. A stale
    fingerprint gets 409 with what changed and a diff of the file against your edit;
    ``dry_run`` answers the diff without writing."""
    entry = get_object_or_404(services.ModelEntry, pk=pk)
    who = actor_of(request)
    from .editing import edit_entry

    return edit_entry(entry, who, payload)


@router.get(
    "/importable",
    auth=TokenAuth(IMPORT, what="importing"),
    response={200: list[ImportableOut]},
    url_name="entry_importable",
    summary="Discovered entries with no curated overlay, with suggested fields",
)
@paginate(LimitOffsetPagination)
def entry_importable(request, q: str = ""):
    return [
        {
            "id": entry.pk,
            "name": entry.name,
            **services.import_summary(entry),
            "suggested": services.import_suggestion(entry),
        }
        for entry in services.importable_entries(q)
    ]


@router.post(
    "/import",
    auth=TokenAuth(IMPORT, action=Action.IMPORT, what="import"),
    response={200: ImportOut, 422: Error, 503: Error},
    url_name="entry_import",
    summary="Import discovered entries into the curated layer",
)
def entry_import(request, payload: ImportIn):
    who = actor_of(request)
    from .editing import import_entries

    return import_entries(who, payload)


@router.post(
    "/registry/reload",
    auth=TokenAuth(SYNC, action=Action.SYNC, what="reloading the registry"),
    response={200: SyncOut, 202: SyncOut, 503: Error},
    url_name="registry_reload",
    summary="Re-read the registry files now",
)
def registry_reload(request):
    who = actor_of(request)
    result, job = services.reload_registry(who)
    if job is not None:
        return Status(
            202,
            {
                "detail": "The registry is large: reloading in a background job.",
                "job": job_out(job),
            },
        )
    if result.error:
        return JsonResponse({"detail": result.summary()}, status=503)
    return Status(
        200,
        {
            "detail": result.summary(),
            "added": result.added,
            "changed": result.changed,
            "removed": result.removed,
            "problems": result.problems,
        },
    )
