"""The Models page and the Actions/Results page (NetBox-style declarative views).

One template per page; htmx requests (not boosted) get a named partial of it
(django-template-partials), so every link and form also works without JavaScript.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import timedelta
from importlib import metadata

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import (
    BooleanField,
    Case,
    Count,
    Exists,
    F,
    OuterRef,
    Q,
    Value,
    When,
)
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.utils.decorators import method_decorator
from django.utils.functional import cached_property
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import condition, require_GET, require_POST
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin

from imageworks_site.permissions import RolePermissionRequiredMixin

from ..audit import Actor
from ..choices import Action, BulkAction, Layer
from ..export import CsvExportMixin
from ..filtersets import ActionLogFilterSet, ModelEntryFilterSet
from ..models import ActionLog, EntryChange, LayerFile, ModelEntry
from ..services import columns
from ..tables import (
    DEFAULT_PAGE_SIZE,
    PAGE_SIZES,
    ActionLogTable,
    ModelEntryTable,
    PageSizePaginator,
)
from ..tasks import request_sync

CARD_BACKENDS = ("vllm", "ollama", "lmdeploy")
#: Backends whose configured server URL gives them a card on the Models page.
CONFIGURED_URL_SETTINGS = {
    "lmdeploy": "IMAGEWORKS_LMDEPLOY_URL",
    "triton": "IMAGEWORKS_TRITON_URL",
}
#: Top-level keys whose layer of origin the drawer shows.
PROVENANCE_FIELDS = (
    "display_name",
    "backend",
    "roles",
    "capabilities",
    "served_model_id",
    "backend_config",
    "download_path",
    "model_aliases",
    "version_lock",
    "generation_defaults",
    "metadata",
)
logger = logging.getLogger(__name__)
try:  # part of every ETag: a new release's markup is never answered with a 304
    RELEASE = metadata.version("imageworks-models-console")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a checkout
    RELEASE = "unreleased"

RECENT_ACTIONS = 12
DIFF_VALUE_CHARS = 300


def _diff_value(value) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= DIFF_VALUE_CHARS else text[:DIFF_VALUE_CHARS] + "…"


def with_diff_lines(changes):
    """Attach ``.lines`` (git-style: sign, path, value, css class) to EntryChange rows."""
    for change in changes:
        lines = []
        for item in change.changes or []:
            op, path = item.get("op"), item.get("path", "")
            if op in ("removed", "changed"):
                lines.append(
                    {
                        "cls": "diff-del",
                        "sign": "-",
                        "path": path,
                        "value": _diff_value(item.get("before")),
                    }
                )
            if op in ("added", "changed"):
                lines.append(
                    {
                        "cls": "diff-add",
                        "sign": "+",
                        "path": path,
                        "value": _diff_value(item.get("after")),
                    }
                )
        change.lines = lines
    return changes


# The backends app is always installed. Its imports stay inside the functions that
# use them, so registry's modules load without it; a broken import fails the page.


def active_model_name() -> str:
    """The logical name of the live vLLM activation, or ""."""
    from backends.choices import ActivationState
    from backends.models import Activation

    return (
        Activation.objects.filter(state__in=ActivationState.live())
        .values_list("logical_name", flat=True)
        .first()
        or ""
    )


def request_runtime_flags(request) -> dict:
    """``runtime_flags()`` once per request (the ETag and the table both need it)."""
    flags = getattr(request, "_runtime_flags", None)
    if flags is None:
        flags = request._runtime_flags = runtime_flags()
    return flags


def request_table_columns(request) -> list[str] | None:
    """The user's saved Models columns (``services.columns``), once per request."""
    if not hasattr(request, "_table_columns"):
        from ..services.columns import saved_columns

        request._table_columns = saved_columns(request.user)
    return request._table_columns


def _violations():
    """Verify rows of the outer entry that were lock violations since its last good verify."""
    return ActionLog.objects.filter(
        entry=OuterRef("pk"),
        action=Action.VERIFY,
        details__violation=True,
    ).filter(
        Q(time__gt=OuterRef("last_verified_at"))
        | Q(time__isnull=False, entry__last_verified_at__isnull=True)
    )


def lock_violated_annotation():
    """Per row, in the page's one query: a locked entry's verify that found other files
    (a lock violation writes nothing but its audit row) since its last good verify."""
    return Case(
        When(locked=True, then=Exists(_violations())),
        default=Value(False),
        output_field=BooleanField(),
    )


def table_etag(request, *args, **kwargs) -> str | None:
    """ETag of a Models table partial: changes when anything it shows can change.

    The registry version (rows, counts, choices), the vLLM slot (Active? badges),
    the last health check's flags (Ollama's installed/active), the user and the
    release. None (no conditional GET) for full pages, exports and in DEBUG, where
    templates change under a running server.
    """
    if settings.DEBUG or not request.htmx or request.htmx.boosted:
        return None
    if request.GET.get(CsvExportMixin.export_trigger_param):
        return None
    from ..version import registry_version

    flags = json.dumps(request_runtime_flags(request), sort_keys=True, default=str)
    slot = _request_slot(request)
    parts = (
        RELEASE,
        registry_version(),
        getattr(slot, "token", ""),
        hashlib.sha256(flags.encode()).hexdigest(),
        str(request.user.pk),
        json.dumps(request_table_columns(request)),  # the user's column choice
        # The bulk form's CSRF token: a new login (new session, new token) must
        # never be answered with a cached partial holding the old one.
        hashlib.sha256((request.session.session_key or "").encode()).hexdigest(),
    )
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]


def runtime_flags() -> dict:
    """Entry name -> {installed, active, autostart} from the last health check (1 query)."""
    from backends.health import runtime_flags as flags

    try:
        return flags()
    except Exception:  # a broken health row must never break the Models page
        logger.exception("runtime_flags() failed")
        return {}


def autostart_command(name: str) -> list[str] | None:
    """The chat proxy's autostart argv for an entry (no database, no network)."""
    from backends.health import autostart_for

    try:
        return autostart_for(name)
    except Exception:
        logger.exception("autostart_for(%r) failed", name)
        return None


def implicit_sync(request):
    """The cheap page-load sync: 3 stats + 1 query when no layer file changed.

    Never raises: a missing folder or a broken file comes back as ``result.error``
    (rows untouched, no audit row); anything else is logged and the page renders the
    last good mirror.
    """
    try:
        result, job = request_sync(Actor.from_request(request), explicit=False)
    except Exception:
        logger.exception("implicit registry sync on page load failed")
        return None
    if job is not None:
        request.registry_sync_job = job
    return result


def _request_slot(request):
    """The vLLM slot status the activation badges use, cached on the request."""
    from backends.templatetags.activation import vllm_slot

    return vllm_slot({"request": request})


def _request_live_activation(request):
    """The live vLLM activation from the request's cached slot status, or None."""
    activation = getattr(_request_slot(request), "activation", None)
    return activation if activation is not None and activation.is_live else None


def request_active_name(request) -> str:
    """The live activation's logical name from the request's cached slot status.

    The activation badge template tag (``vllm_slot``) caches ``service.status()`` on
    the request; reading the active name from the same object saves a query per page.
    """
    if _request_live_activation(request) is None:
        return ""
    return _request_slot(request).logical_name


class HtmxPartialMixin:
    """htmx (not boosted) requests get ``<template>#<partial_name>``."""

    partial_name = "table"

    def get_template_names(self):
        names = super().get_template_names()
        if self.request.htmx and not self.request.htmx.boosted:
            return [f"{names[0]}#{self.partial_name}"]
        return names


class PagedTableMixin:
    table_pagination = {
        "paginator_class": PageSizePaginator,
        "per_page": DEFAULT_PAGE_SIZE,
    }

    def get_table_pagination(self, table):
        # Exports take every row: no pagination, no count query.
        if self.request.GET.get(self.export_trigger_param):
            return False
        return super().get_table_pagination(table)

    def get_table(self, **kwargs):
        table = super().get_table(**kwargs)
        table.base_url = (
            self.request.path if not hasattr(self, "base_url") else self.base_url
        )
        return table

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["page_sizes"] = PAGE_SIZES
        return context


class ModelEntryListView(
    RolePermissionRequiredMixin,
    HtmxPartialMixin,
    CsvExportMixin,
    PagedTableMixin,
    SingleTableMixin,
    FilterView,
):
    permission_required = "registry.view_modelentry"
    # Only what the table shows: no JSON or dates decoded for 50 rows per page.
    # Size on disk: the inventory's last scan (issue 19), joined in the same query.
    queryset = ModelEntry.objects.only(*ModelEntryTable.row_fields).annotate(
        lock_violated=lock_violated_annotation(),
        disk_size=F("usage__size_bytes"),
    )
    filterset_class = ModelEntryFilterSet
    table_class = ModelEntryTable
    template_name = "registry/modelentry_list.html"
    export_prefix = "models"
    exclude_columns = ("select",)  # the bulk-action checkboxes
    selected = None
    sync_result = None

    @method_decorator(condition(etag_func=table_etag))
    def get(self, request, *args, **kwargs):
        # Full page loads pick up outside edits of the layer files; htmx partials
        # (filters, sorting, refreshes) and exports do not pay for it.
        is_partial = request.htmx and not request.htmx.boosted
        if not is_partial and not request.GET.get(self.export_trigger_param):
            self.sync_result = implicit_sync(request)
        response = super().get(request, *args, **kwargs)
        if is_partial:
            # Revalidate every time: the browser sends If-None-Match, a 304 is free.
            patch_cache_control(response, private=True, no_cache=True)
        return response

    @property
    def base_url(self) -> str:
        return reverse("registry:modelentry_list")

    @cached_property
    def active_name(self) -> str:
        return request_active_name(self.request)

    def get_table_pagination(self, table):
        pagination = super().get_table_pagination(table)
        if pagination is not False:
            pagination = {**pagination, "known_count": self.shown_count}
        return pagination

    def shown_count(self) -> int | None:
        """The pager's row count from the query that also counts the hidden testing
        rows for the footer (None: the pager counts)."""
        counts = self.filterset.counts
        return counts[0] if counts is not None else None

    def get_table_kwargs(self):
        query = self.request.GET.copy()
        query.pop("page", None)
        return {
            "detail_query": query.urlencode(),
            "selected_pk": self.selected.pk if self.selected else None,
            **columns.table_kwargs(
                ModelEntryTable, request_table_columns(self.request)
            ),
        }

    def get_table(self, **kwargs):
        table = super().get_table(**kwargs)
        table.active_name = self.active_name
        table.slot_name = getattr(_request_slot(self.request), "logical_name", "")
        table.runtime_flags = request_runtime_flags(self.request)
        return table

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        if self.request.GET.get(self.export_trigger_param):
            return context  # the export builds its own table and needs no more
        is_partial = self.request.htmx and not self.request.htmx.boosted
        # The banner and "loaded at" are outside the table partial: full pages only.
        layer_files = [] if is_partial else self.layer_files()
        sync_error = self.sync_result.error if self.sync_result else ""
        context.update(
            sync_job=getattr(self.request, "registry_sync_job", None),
            active_name=self.active_name,
            layer_files=layer_files,
            layer_errors=[lf for lf in layer_files if lf.error or lf.problems],
            sync_error=sync_error,
            loaded_at=max(
                (lf.synced_at for lf in layer_files if lf.synced_at), default=None
            ),
            registry_dir=settings.IMAGEWORKS_REGISTRY_DIR,
            card_backends=self.card_backends(),
            list_url=self.base_url,
            bulk_actions=BulkAction.choices,
            column_choices=columns.choices(
                ModelEntryTable, request_table_columns(self.request)
            ),
            current_query=self.request.GET.urlencode(),
            selected=self.selected,
            # Called by the template only when the table is empty.
            registry_is_empty=lambda: not ModelEntry.objects.exists(),
        )
        if self.selected:
            context.update(
                drawer_context(self.request, self.selected, self.active_name)
            )
        return context

    def layer_files(self) -> list[LayerFile]:
        """The rows the page-load sync read when it found nothing changed, else fresh."""
        rows = self.sync_result.layer_files if self.sync_result else None
        return rows if rows is not None else list(LayerFile.objects.all())

    def card_backends(self) -> list[str]:
        present = [
            b for b, _label in self.filterset.filters["backend"].extra["choices"]
        ]
        cards = list(CARD_BACKENDS)
        # A backend with a configured server gets its card even with no entry using it.
        for backend, name in CONFIGURED_URL_SETTINGS.items():
            if backend not in cards and getattr(settings, name, ""):
                cards.append(backend)
        return cards + [b for b in present if b not in cards]


class ModelEntryDetailView(ModelEntryListView):
    """``models/<pk>/``: the page with the drawer open; htmx gets the drawer alone."""

    partial_name = "drawer"

    def get(self, request, *args, **kwargs):
        # The drawer shows the size on disk of the last scan: joined here, not a query
        # of its own (its per-file sharing list is not shown, so not loaded).
        self.selected = get_object_or_404(
            ModelEntry.objects.select_related("usage").defer("usage__shared"),
            pk=kwargs["pk"],
        )
        if request.htmx and not request.htmx.boosted:
            return render(
                request,
                "registry/modelentry_list.html#drawer",
                {
                    "selected": self.selected,
                    # The vLLM slot can only be serving a vLLM entry: the drawer of
                    # any other asks nothing about it (its badge: health flags).
                    **drawer_context(
                        request,
                        self.selected,
                        request_active_name(request)
                        if self.selected.backend == "vllm"
                        else "",
                    ),
                },
            )
        return super().get(request, *args, **kwargs)


def provenance_groups(field_rows) -> list[tuple[str, list[str]]]:
    """``[(source, [keys])]``, "both" first: the drawer's one-line provenance summary
    (the per-field table sits behind it, so eleven rows of "both" push nothing down)."""
    groups: dict[str, list[str]] = {}
    for key, source in field_rows:
        groups.setdefault(source, []).append(key)
    return sorted(groups.items(), key=lambda item: item[0] != "both")


def drawer_context(request, entry: ModelEntry, active_name: str) -> dict:
    from backends.serving import served_endpoint

    merged = entry.merged or {}
    sources = entry.field_sources or {}
    changes = with_diff_lines(list(entry.changes.all()[:10]))
    last_change = {}
    for change in changes:
        last_change.setdefault(change.layer, change)
    served_at = (
        served_endpoint(entry, live=_request_live_activation(request))
        if entry.backend == "vllm"
        else served_endpoint(entry)
    )
    endpoint = served_at.url
    served = entry.served_model_id or entry.name
    runtime = request_runtime_flags(request).get(entry.name) or {}
    autostart = autostart_command(entry.name)
    field_rows = [
        (key, sources.get(key, entry.provenance))
        for key in PROVENANCE_FIELDS
        if key in merged
    ]
    return {
        "runtime": runtime,
        "autostart": autostart,
        "autostart_text": " ".join(autostart or []),
        "entry": entry,
        "active_name": active_name,
        "endpoint": endpoint,
        "served": served_at,
        "endpoint_info": served_at.info(served, entry.backend),
        "json_script_id": f"entry-json-{entry.pk}",
        "list_url": reverse("registry:modelentry_list"),
        "current_query": request.GET.urlencode(),
        "entry_json": json.dumps(merged, indent=2, sort_keys=True, default=str),
        "backend_config_json": json.dumps(
            entry.backend_config or {}, indent=2, sort_keys=True, default=str
        ),
        "field_rows": field_rows,
        "provenance_groups": provenance_groups(field_rows),
        "entry_actions": list(entry.actions.all()[:10]),
        "entry_changes": changes,
        "last_curated": last_change.get(Layer.CURATED),
        "last_discovered": last_change.get(Layer.DISCOVERED),
        "lock_violated": entry.locked
        and ModelEntry.objects.filter(pk=entry.pk)
        .filter(Exists(_violations()))
        .exists(),
        "can_lock": request.user.has_perm("registry.lock_entry"),
        "can_activate": request.user.has_perm("backends.control_backend"),
        "is_vllm": entry.backend == "vllm",
    }


def _safe_next(request) -> str:
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("registry:modelentry_list")
    return target


@require_POST
@login_required
@permission_required("registry.view_modelentry", raise_exception=True)
def table_columns(request):
    """Save the user's Models columns (shown, in order), move one, or reset them."""
    order = request.POST.getlist("order")
    shown = request.POST.getlist("show")
    try:
        if request.POST.get("reset"):
            columns.reset_columns(request.user)
            messages.success(request, "Columns reset to the default.")
        elif request.POST.get("move"):
            direction, _sep, name = request.POST["move"].partition(":")
            order = columns.move(order, name, -1 if direction == "up" else 1)
            columns.save_columns(request.user, ModelEntryTable, order, shown)
        else:
            columns.save_columns(request.user, ModelEntryTable, order, shown)
            messages.success(request, "Columns saved.")
    except columns.ColumnError as exc:
        messages.error(request, str(exc))
    return redirect(_safe_next(request))


@require_GET
@login_required
@permission_required("registry.view_modelentry", raise_exception=True)
def modelentry_json(request, pk: int):
    entry = get_object_or_404(ModelEntry, pk=pk)
    layer = request.GET.get("layer")
    data = {"curated": entry.curated_raw, "discovered": entry.discovered_raw}.get(
        layer, entry.merged
    )
    return JsonResponse(
        data, safe=False, json_dumps_params={"indent": 2, "sort_keys": True}
    )


@require_GET
@login_required
@permission_required("registry.view_modelentry", raise_exception=True)
def registry_diff(request):
    """The last recorded change of each layer, and whether the last reload found any."""
    last_sync = (
        ActionLog.objects.filter(action=Action.SYNC).only("time", "message").first()
    )
    layers = []
    for layer in (Layer.CURATED, Layer.DISCOVERED):
        rows = with_diff_lines(list(EntryChange.objects.filter(layer=layer)[:5]))
        if rows:
            # Only the batch written at the latest time (one reload), at most five rows.
            latest = rows[0].time
            rows = [r for r in rows if (latest - r.time).total_seconds() < 2]
        layers.append(
            {
                "layer": layer,
                "label": layer.label,
                "changes": rows,
                "stale": bool(
                    rows
                    and last_sync
                    and last_sync.time - rows[0].time > timedelta(seconds=2)
                ),
            }
        )
    return render(
        request,
        "registry/_diff.html",
        {"layers": layers, "last_sync": last_sync},
    )


@require_GET
@login_required
@permission_required("registry.view_modelentry", raise_exception=True)
def backend_card(request, backend: str):
    """One backend's counts; each card loads on its own request."""
    rows = ModelEntry.objects.filter(backend=backend, deprecated=False)
    if not request.GET.get("testing"):
        rows = rows.filter(testing=False)
    counts = rows.aggregate(
        n_total=Count("pk"),
        n_installed=Count("pk", filter=Q(installed=True)),
        n_not_installed=Count("pk", filter=Q(installed=False)),
        n_unknown=Count("pk", filter=Q(installed__isnull=True)),
        n_locked=Count("pk", filter=Q(locked=True)),
    )
    counts = {key.removeprefix("n_"): value for key, value in counts.items()}
    return render(
        request,
        "registry/_cards.html",
        {
            "backend": backend,
            "counts": counts,
            "active_name": active_model_name() if backend == "vllm" else "",
            "filter_url": f"{reverse('registry:modelentry_list')}?backend={backend}",
        },
    )


@require_GET
@login_required
@permission_required("registry.view_actionlog", raise_exception=True)
def recent_actions(request):
    actions = ActionLog.objects.all()[:RECENT_ACTIONS]
    return render(request, "registry/_recent_actions.html", {"actions": actions})


@require_POST
@login_required
@permission_required("registry.sync_registry", raise_exception=True)
def registry_reload(request):
    """Re-read the layer files now (sync audits itself) and say what changed."""
    try:
        result, job = request_sync(Actor.from_request(request), force=True)
    except Exception as exc:  # reported to the operator; sync wrote the audit row
        messages.error(
            request,
            f"Reload failed: {exc}. Check that {settings.IMAGEWORKS_REGISTRY_DIR} "
            "is readable and holds valid JSON.",
        )
    else:
        _report_reload(request, result, job)
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("registry:modelentry_list")
    return redirect(target)


def _report_reload(request, result, job) -> None:
    if job is not None:
        messages.info(
            request,
            f"The registry is large: reloading in the background (job #{job.pk}"
            f", {job.get_status_display().lower()}); reload the page once it has"
            " finished.",
        )
    if result is None:
        return
    if result.error:
        level = messages.ERROR
    elif result.problems:
        level = messages.WARNING
    else:
        level = messages.SUCCESS
    messages.add_message(request, level, result.summary())


class ActionLogListView(
    RolePermissionRequiredMixin,
    HtmxPartialMixin,
    CsvExportMixin,
    PagedTableMixin,
    SingleTableMixin,
    FilterView,
):
    permission_required = "registry.view_actionlog"
    queryset = ActionLog.objects.all()
    filterset_class = ActionLogFilterSet
    table_class = ActionLogTable
    template_name = "registry/actionlog_list.html"
    export_prefix = "actions"

    @property
    def base_url(self) -> str:
        return reverse("registry:actionlog_list")


__all__ = [
    "ActionLogListView",
    "ModelEntryDetailView",
    "ModelEntryListView",
    "backend_card",
    "modelentry_json",
    "recent_actions",
    "registry_diff",
    "registry_reload",
    "table_columns",
]
