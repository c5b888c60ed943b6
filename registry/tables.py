from __future__ import annotations

import functools
import html

import django_tables2 as tables
import orjson
from django.core.paginator import Paginator
from django.template.defaultfilters import filesizeformat
from django.template.loader import get_template
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from .choices import Outcome
from .export import SafeExportTableMixin
from .models import ActionLog, ModelEntry
from .table_plan import PlannedRowsMixin

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50

# (flag, glyph) in display order; the glyph is a visual shorthand, the title says it.
CAPABILITY_GLYPHS = (
    ("vision", "V"),
    ("embedding", "E"),
    ("audio", "A"),
    ("thinking", "R"),
    ("tools", "T"),
)
CAPABILITY_NAMES = tuple(cap for cap, _glyph in CAPABILITY_GLYPHS)


# Inline SVG padlocks: emoji glyphs render as boxes on machines without an emoji font.
LOCK_ICONS = {
    True: mark_safe(
        '<svg class="lock-icon" viewBox="0 0 16 16" aria-hidden="true">'
        '<rect x="3" y="7" width="10" height="8" rx="1.5" fill="currentColor"/>'
        '<path d="M5 7V5a3 3 0 0 1 6 0v2" fill="none" stroke="currentColor" '
        'stroke-width="1.7"/></svg>'
    ),
    False: mark_safe(
        '<svg class="lock-icon" viewBox="0 0 16 16" aria-hidden="true">'
        '<rect x="3" y="7" width="10" height="8" rx="1.5" fill="currentColor"/>'
        '<path d="M11 7V4.5a3 3 0 0 0-6 0" fill="none" stroke="currentColor" '
        'stroke-width="1.7"/></svg>'
    ),
}


def cell_html(template: str, *args) -> SafeString:
    """``format_html`` for per-row cells: the same escaping (``__html__`` for safe
    strings, else ``html.escape(str(arg))``, which is Django's ``escape``) without
    its lazy-string wrappers, which cost more than the formatting itself."""
    return mark_safe(  # noqa: S308 - every argument is escaped here
        template.format(
            *(
                arg.__html__() if hasattr(arg, "__html__") else html.escape(str(arg))
                for arg in args
            )
        )
    )


@functools.cache
def _backend_cell(value: str) -> SafeString:
    return format_html('<span class="be be-{}">{}</span>', value, value)


@functools.cache
def _capabilities_cell(flags: tuple[bool, ...]) -> SafeString:
    return format_html(
        '<span class="caps">{}</span>',
        format_html_join(
            "",
            '<abbr class="cap {}" title="{}" aria-label="{}">{}</abbr>',
            (
                (
                    "on" if on else "off",
                    cap if on else f"no {cap}",
                    cap if on else f"no {cap}",
                    glyph,
                )
                for (cap, glyph), on in zip(CAPABILITY_GLYPHS, flags, strict=True)
            ),
        ),
    )


@functools.cache
def _violated_lock_cell() -> SafeString:
    """A locked entry whose last verify found other files: red, and says why."""
    why = (
        "Lock violated: the last verify found files that differ from the locked version"
    )
    return format_html(
        '<span class="lock is-violated" title="{}" data-testid="lock-violated">{}'
        '<span class="sr-only">{}</span></span>',
        why,
        LOCK_ICONS[True],
        why,
    )


@functools.cache
def _lock_cell(locked: bool) -> SafeString:
    state = "Locked" if locked else "Unlocked"
    return format_html(
        '<span class="lock is-{}" title="{}">{}<span class="sr-only">{}</span></span>',
        state.lower(),
        state,
        LOCK_ICONS[locked],
        state,
    )


@functools.cache
def _installed_cell(value: bool | None) -> SafeString:
    label = _installed_word(value)
    return format_html('<span class="yn {}">{}</span>', label, label)


class PageSizePaginator(Paginator):
    """Only the page sizes the UI offers; anything else falls back to the default."""

    def __init__(self, object_list, per_page, *args, known_count=None, **kwargs):
        try:
            per_page = int(per_page)
        except (TypeError, ValueError):
            per_page = DEFAULT_PAGE_SIZE
        if per_page not in PAGE_SIZES:
            per_page = DEFAULT_PAGE_SIZE
        #: a callable giving the row count when the view already counts the rows
        self.known_count = known_count
        super().__init__(object_list, per_page, *args, **kwargs)

    @cached_property
    def count(self) -> int:
        if self.known_count is not None:
            known = self.known_count()
            if known is not None:
                return known
        return super().count


class SelectColumn(tables.Column):
    """A checkbox per row for the bulk actions and Compare (``form="bulk-form"``), and
    a select-all-on-this-page box in the header (``static/imageworks/models.js``)."""

    header = mark_safe(
        '<input type="checkbox" data-select-all form="bulk-form" '
        'aria-label="Select every row on this page">'
    )

    def __init__(self, **kwargs):
        kwargs.setdefault("accessor", "pk")
        kwargs.setdefault("orderable", False)
        kwargs.setdefault("empty_values", ())
        kwargs.setdefault("exclude_from_export", True)
        kwargs.setdefault(
            "attrs", {"th": {"class": "col-select"}, "td": {"class": "col-select"}}
        )
        super().__init__(**kwargs)


def _row_attrs_selected(record, table):
    return "selected" if record.pk == getattr(table, "selected_pk", None) else ""


class ModelEntryTable(PlannedRowsMixin, SafeExportTableMixin, tables.Table):
    select = SelectColumn()
    name = tables.Column(
        verbose_name="Logical Name",
        attrs={"th": {"class": "col-name"}, "td": {"class": "col-name"}},
    )
    display_name = tables.Column(
        verbose_name="Display Name",
        attrs={"th": {"class": "col-display"}, "td": {"class": "col-display"}},
    )
    backend = tables.Column(
        attrs={"th": {"class": "col-backend"}, "td": {"class": "col-backend"}}
    )
    roles = tables.Column(
        verbose_name="Roles",
        order_by=("roles_key",),
        attrs={"th": {"class": "col-roles"}, "td": {"class": "col-roles"}},
    )
    capabilities = tables.Column(
        verbose_name="Capabilities",
        accessor="capability_flags",
        empty_values=(),
        orderable=False,
        attrs={"th": {"class": "col-caps"}, "td": {"class": "col-caps"}},
    )
    locked = tables.Column(
        verbose_name="Lock",
        attrs={"th": {"class": "col-lock"}, "td": {"class": "col-lock"}},
    )
    aggregate_sha256 = tables.Column(
        verbose_name="Hash",
        attrs={"th": {"class": "col-hash"}, "td": {"class": "col-hash"}},
    )
    #: Size on disk from the last inventory scan (the view annotates ``disk_size``
    #: from ``EntryUsage.size_bytes`` in the page's one query; "—" when not scanned).
    disk_size = tables.Column(
        verbose_name="Size",
        attrs={"th": {"class": "col-size"}, "td": {"class": "col-size num"}},
    )
    installed = tables.Column(
        verbose_name="Installed?",
        empty_values=(),
        attrs={"th": {"class": "col-installed"}, "td": {"class": "col-installed"}},
    )
    active = tables.Column(
        verbose_name="Active?",
        empty_values=(),
        orderable=False,
        attrs={"th": {"class": "col-active"}, "td": {"class": "col-active"}},
    )

    class Meta:
        model = ModelEntry
        fields = ()
        template_name = "registry/_table.html"
        empty_text = "No models match."
        attrs = {"class": "table models-table", "id": "models-grid"}
        row_attrs = {
            "data-pk": lambda record: record.pk,
            "data-name": lambda record: record.name,
            "class": _row_attrs_selected,
            "aria-selected": lambda record, table: (
                "true" if _row_attrs_selected(record, table) else "false"
            ),
        }

    #: The model fields the rows read (the view loads only these).
    row_fields = (
        "name",
        "display_name",
        "backend",
        "roles",
        *(f"cap_{cap}" for cap, _glyph in CAPABILITY_GLYPHS),
        "locked",
        "aggregate_sha256",
        "installed",
        "testing",
        "deprecated",
    )
    active_name = ""
    #: The vLLM slot's model (live or queued), or "": only its row can show a badge.
    slot_name = None
    #: Entry name -> {installed, active, autostart} from the last health check (the
    #: view sets it once per table: Ollama's Active? comes from /api/ps).
    runtime_flags: dict = {}

    def __init__(self, *args, detail_query="", selected_pk=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.detail_query = detail_query
        self.selected_pk = selected_pk

    def detail_url(self, record) -> str:
        url = reverse("registry:modelentry_detail", args=[record.pk])
        return f"{url}?{self.detail_query}" if self.detail_query else url

    # Per-row cells use cell_html (format_html's escaping without its lazy-string
    # wrappers); cells with a handful of possible values are built once.
    def render_select(self, record):
        return cell_html(
            '<input type="checkbox" name="select" value="{}" form="bulk-form" '
            'aria-label="Select {}">',
            record.pk,
            record.name,
        )

    def render_name(self, record, value):
        badges = ""
        if record.testing:
            badges += ' <span class="tag tag-testing">testing</span>'
        if record.deprecated:
            badges += ' <span class="tag tag-deprecated">deprecated</span>'
        return cell_html(
            '<a class="row-link" href="{}" title="{}">{}</a>{}',
            self.detail_url(record),
            value,
            value,
            mark_safe(badges),  # noqa: S308 - constant markup
        )

    def render_display_name(self, value):
        return cell_html('<span title="{}">{}</span>', value, value)

    def render_backend(self, value):
        return _backend_cell(value)

    def render_roles(self, value):
        if not value:
            return "—"
        shown = " ".join(
            cell_html('<span class="chip">{}</span>', r) for r in value[:3]
        )
        if len(value) > 3:
            shown = cell_html(
                '{} <span class="chip chip-more" title="{}">+{}</span>',
                mark_safe(shown),  # noqa: S308 - built from escaped parts
                ", ".join(value[3:]),
                len(value) - 3,
            )
        return mark_safe(shown)  # noqa: S308 - built from escaped parts

    def render_capabilities(self, record):
        return _capabilities_cell(
            tuple(getattr(record, f"cap_{cap}") for cap, _glyph in CAPABILITY_GLYPHS)
        )

    def render_locked(self, value, record):
        if value and getattr(record, "lock_violated", False):
            return _violated_lock_cell()
        return _lock_cell(bool(value))

    def render_disk_size(self, value):
        return filesizeformat(value)

    def render_aggregate_sha256(self, value):
        return cell_html(
            '<button type="button" class="hash copy" data-copy="{}" title="{} (click to copy)">'
            "{}</button>",
            value,
            value,
            value[:12],
        )

    def render_active(self, record):
        runtime = self.runtime_flags.get(record.name) or {}
        if record.backend == "vllm":
            if self.slot_name is not None and record.name != self.slot_name:
                return ""  # the badge is only ever shown for the slot's model
        elif runtime.get("active") is None:
            return ""  # no health check has said either way
        # A plain dict context: a TemplateColumn would re-run every context processor
        # per row (queries per row). The activation badge caches its status on request.
        return get_template("registry/_cell_active.html").render(
            {
                "entry": record,
                "active_name": self.active_name,
                "runtime": runtime,
                "request": getattr(self, "request", None),
            }
        )

    def render_installed(self, value):
        return _installed_cell(value)

    export_fields = {
        "name": (("name",), None),
        "display_name": (("display_name",), None),
        "backend": (("backend",), None),
        "roles": (("roles",), lambda table, roles: _roles_text(roles)),
        "capabilities": (
            tuple(f"cap_{cap}" for cap in CAPABILITY_NAMES),
            lambda table, *flags: ", ".join(
                [cap for cap, on in zip(CAPABILITY_NAMES, flags, strict=True) if on]
            ),
        ),
        "locked": (("locked",), lambda table, locked: _lock_word(locked)),
        "aggregate_sha256": (("aggregate_sha256",), None),
        # Bytes (empty when not scanned); the view annotates disk_size.
        "disk_size": (("disk_size",), None),
        "installed": (("installed",), lambda table, value: _installed_word(value)),
        "active": (("name", "backend"), lambda table, n, b: table.active_word(n, b)),
    }
    export_fixed_words = frozenset(
        {"capabilities", "locked", "disk_size", "installed", "active"}
    )

    def active_word(self, name: str, backend: str) -> str:
        """ "yes" for the live vLLM model and for models a server reports loaded."""
        if self.active_name and self.active_name == name:
            return "yes"
        if backend != "vllm" and (self.runtime_flags.get(name) or {}).get("active"):
            return "yes"
        return ""


def _roles_text(raw: str | list | None) -> str:
    """The export's roles cell from the ``roles`` JSON as stored (a list's text)."""
    roles = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    return ", ".join(roles or [])


def _lock_word(locked: bool) -> str:
    return "locked" if locked else "unlocked"


def _installed_word(value: bool | None) -> str:
    return "unknown" if value is None else ("yes" if value else "no")


class ActionLogTable(PlannedRowsMixin, SafeExportTableMixin, tables.Table):
    time = tables.DateTimeColumn(
        format="Y-m-d H:i:s", attrs={"td": {"class": "mono nowrap"}}
    )
    user_name = tables.Column(verbose_name="Operator")
    source = tables.Column()
    action = tables.Column()
    entry_name = tables.Column(verbose_name="Entry", attrs={"td": {"class": "mono"}})
    outcome = tables.Column()
    duration_ms = tables.Column(verbose_name="Duration")
    message = tables.Column(orderable=False, attrs={"td": {"class": "col-message"}})

    class Meta:
        model = ActionLog
        fields = ()
        template_name = "registry/_table.html"
        order_by = ("-time",)
        empty_text = "No actions match."
        attrs = {"class": "table actions-table"}

    def render_time(self, value, record):
        return format_html(
            '<time datetime="{}" title="{} UTC">{}</time>',
            value.isoformat(),
            value.strftime("%Y-%m-%d %H:%M:%S"),
            timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S"),
        )

    def render_action(self, record):
        return format_html('<span class="badge">{}</span>', record.get_action_display())

    def render_outcome(self, record):
        badge = Outcome(record.outcome).badge if record.outcome in Outcome else "info"
        return format_html(
            '<span class="badge {}">{}</span>', badge, record.get_outcome_display()
        )

    def render_entry_name(self, record, value):
        if record.entry_id:
            url = reverse("registry:modelentry_detail", args=[record.entry_id])
            return format_html('<a href="{}">{}</a>', url, value)
        return value

    def render_duration_ms(self, value):
        if value < 1000:
            return f"{value} ms"
        return f"{value / 1000:.1f} s"

    def render_message(self, value):
        return format_html('<span title="{}">{}</span>', value, value[:160])

    def value_time(self, value):
        return value.isoformat()

    def value_action(self, record):
        return record.action

    def value_outcome(self, record):
        return record.outcome

    def value_entry_name(self, value):
        return value

    def value_duration_ms(self, value):
        return value

    def value_message(self, value):
        return value
