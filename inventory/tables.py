from __future__ import annotations

import django_tables2 as tables
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from registry.table_plan import PlannedRowsMixin

from .choices import FindingKind
from .models import Finding, TrashItem
from .templatetags.inventory_tags import short_path

SEVERITY_BADGE = {"bad": "bad", "warn": "warn", "info": "info"}


def td(label: str, css: str = "") -> dict:
    """Cell attributes: the label shows before the value when rows stack (phones)."""
    attrs = {"data-label": label}
    if css:
        attrs["class"] = css
    return {"td": attrs}


def _size(value) -> str:
    return "—" if value is None else filesizeformat(value)


def _entry_link(pk, name) -> str:
    if not name:
        return "—"
    if pk:
        url = reverse("registry:modelentry_detail", args=[pk])
        return format_html('<a class="mono" href="{}">{}</a>', url, name)
    return format_html('<span class="mono">{}</span>', name)


def _when(value) -> str:
    if not value:
        return format_html('<span class="muted">{}</span>', "never")
    local = timezone.localtime(value)
    return format_html(
        '<time datetime="{}" title="{}">{}</time>',
        value.isoformat(),
        local.strftime("%Y-%m-%d %H:%M:%S"),
        local.strftime("%Y-%m-%d"),
    )


class FindingTable(PlannedRowsMixin, tables.Table):
    kind = tables.Column(verbose_name="Kind", attrs=td("Kind", "col-kind"))
    entry_name = tables.Column(verbose_name="Entry", attrs=td("Entry", "col-entry"))
    path = tables.Column(verbose_name="Path", attrs=td("Path", "col-path"))
    message = tables.Column(
        verbose_name="What is wrong",
        orderable=False,
        attrs=td("Problem", "col-msg"),
    )
    size_bytes = tables.Column(verbose_name="Size", attrs=td("Size", "num"))
    fix = tables.Column(
        verbose_name="Fix",
        empty_values=(),
        orderable=False,
        attrs=td("", "col-fix"),
    )

    class Meta:
        model = Finding
        fields = ()
        template_name = "registry/_table.html"
        empty_text = "No findings: the registry, the disk and the backends agree."
        attrs = {"class": "table findings-table stack", "id": "findings-grid"}
        row_attrs = {
            "data-kind": lambda record: record.kind,
            "data-finding": lambda record: record.pk,
        }

    def render_kind(self, record):
        return format_html(
            '<span class="badge {}" title="{}">{}</span>',
            SEVERITY_BADGE.get(record.severity, "info"),
            record.kind,
            FindingKind(record.kind).label,
        )

    def render_entry_name(self, record, value):
        return _entry_link(record.entry_id, value)

    def render_path(self, value):
        return format_html(
            '<span class="mono break" title="{}">{}</span>', value, short_path(value)
        )

    def render_size_bytes(self, value):
        return _size(value)

    def render_fix(self, record):
        url = reverse("inventory:finding_fix", args=[record.pk])
        label = {
            "import": "Import…",
            "edit": "Edit…",
            "verify": "Verify…",
            "mark_deprecated": "Deprecate…",
            "reclaim": "Reclaim…",
            "command": "Command…",
            "setting": "Setting…",
        }.get(record.fix, "Details…")
        return format_html(
            '<a class="btn btn-sm fix-open" href="{}" hx-get="{}" hx-target="#fix-body" '
            'hx-swap="innerHTML" hx-push-url="false" data-open-fix>{}</a>',
            url,
            url,
            label,
        )


class CandidateTable(PlannedRowsMixin, tables.Table):
    """Entries with a folder of their own, for the reclaim selection (a list)."""

    select = tables.Column(
        verbose_name="",
        empty_values=(),
        orderable=False,
        attrs=td("", "col-select"),
    )
    name = tables.Column(
        accessor="entry__name",
        verbose_name="Entry",
        order_by=("name",),
        attrs=td("Entry"),
    )
    backend = tables.Column(
        accessor="entry__backend", verbose_name="Backend", attrs=td("Backend")
    )
    size = tables.Column(accessor="size", verbose_name="Size", attrs=td("Size", "num"))
    last_used = tables.Column(verbose_name="Last used", attrs=td("Last used"))
    idle_since = tables.Column(verbose_name="Idle since", attrs=td("Idle since"))
    status = tables.Column(
        empty_values=(), orderable=False, verbose_name="Status", attrs=td("Status")
    )

    class Meta:
        template_name = "registry/_table.html"
        empty_text = "No entry has a folder of its own."
        attrs = {"class": "table reclaim-table stack", "id": "reclaim-grid"}
        row_attrs = {"data-name": lambda record: record.entry.name}

    def __init__(self, *args, selected=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.selected = set(selected)

    def render_select(self, record):
        key = f"entry:{record.entry.pk}"
        disabled = bool(record.blocked)
        return format_html(
            '<input type="checkbox" name="select" value="{}" aria-label="Select {}"{}{}>',
            key,
            record.entry.name,
            " checked" if key in self.selected and not disabled else "",
            format_html(' disabled title="{}"', record.blocked) if disabled else "",
        )

    def render_name(self, record):
        return _entry_link(record.entry.pk, record.entry.name)

    def render_size(self, record):
        return _size(record.size)

    def render_last_used(self, value):
        return _when(value)

    def render_idle_since(self, value):
        return _when(value)

    def render_status(self, record):
        if record.blocked:
            return format_html('<span class="badge warn">{}</span>', record.blocked)
        if record.suggested:
            return format_html('<span class="badge info">{}</span>', "suggested")
        return "—"


class TrashTable(PlannedRowsMixin, tables.Table):
    label = tables.Column(
        verbose_name="Entries / folder",
        empty_values=(),
        orderable=False,
        attrs=td("Entries"),
    )
    original_path = tables.Column(
        verbose_name="Came from", attrs=td("From", "col-path")
    )
    size_bytes = tables.Column(verbose_name="Size", attrs=td("Size", "num"))
    freed_bytes = tables.Column(verbose_name="Frees", attrs=td("Frees", "num"))
    moved_at = tables.Column(verbose_name="Moved", attrs=td("Moved"))
    moved_by = tables.Column(verbose_name="By", attrs=td("By"))
    state = tables.Column(verbose_name="State", attrs=td("State"))
    actions = tables.Column(
        verbose_name="", orderable=False, empty_values=(), attrs=td("")
    )

    class Meta:
        model = TrashItem
        fields = ()
        template_name = "registry/_table.html"
        empty_text = "The trash is empty."
        attrs = {"class": "table trash-table stack", "id": "trash-grid"}
        row_attrs = {"data-item": lambda record: record.pk}

    #: Set by the view: the CSRF token for the restore forms, and the permission.
    csrf_token = ""
    can_restore = False

    def render_label(self, record):
        if record.entry_names:
            return format_html(
                '<span class="mono">{}</span>', ", ".join(record.entry_names)
            )
        return format_html('<span class="muted">{}</span>', "orphan folder")

    def render_original_path(self, value):
        return format_html(
            '<span class="mono break" title="{}">{}</span>', value, short_path(value)
        )

    def render_size_bytes(self, value):
        return _size(value)

    def render_freed_bytes(self, value):
        return _size(value)

    def render_moved_at(self, value):
        return _when(value)

    def render_state(self, record):
        badge = {"in_trash": "warn", "restored": "ok", "emptied": "", "lost": "bad"}
        return format_html(
            '<span class="badge {}">{}</span>',
            badge.get(record.state, ""),
            record.get_state_display(),
        )

    def render_actions(self, record):
        # A plain format_html, not a TemplateColumn: no context processors per row.
        if record.state != "in_trash" or not self.can_restore:
            return ""
        return format_html(
            '<form method="post" action="{}" class="inline" data-restore-form>'
            '<input type="hidden" name="csrfmiddlewaretoken" value="{}">'
            '<button type="submit" class="btn btn-sm" data-testid="restore-{}">'
            "Restore</button></form>",
            reverse("inventory:trash_restore", args=[record.pk]),
            self.csrf_token,
            record.pk,
        )
