"""Planned rows render exactly what django-tables2's own per-cell path renders."""

from __future__ import annotations

import django_tables2 as tables
from django.template import Context, Template
from django.test import TestCase
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django_tables2.rows import BoundRow
from hypothesis import given, settings
from hypothesis import strategies as st

from registry.audit import Actor, record
from registry.choices import Action, Outcome
from registry.models import ActionLog, ModelEntry
from registry.table_plan import PlannedRowsMixin
from registry.tables import ActionLogTable, ModelEntryTable, cell_html
from tests.registry.page_fixtures import seed_scenario
from tests.utils import create_model_entry

ROW = Template(
    "<tr {{ row.attrs.as_html }}>{% for column, cell in row.items %}"
    "<td {{ column.attrs.td.as_html }}>{{ cell }}</td>{% endfor %}</tr>"
)


def planned(table) -> list[str]:
    return [f"<tr {row.attrs.as_html()}>{row.cells_html}</tr>" for row in table.rows]


def by_django_tables2(table) -> list[str]:
    """What the table template rendered before: row.items() and column.attrs."""
    return [
        ROW.render(Context({"row": BoundRow(record_, table=table)}))
        for record_ in table.data
    ]


class PlannedRowsTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        seed_scenario()
        create_model_entry(
            "odd-one",
            display_name="",  # empty value: the column default
            roles=["a", "b", "c", "d", "e"],
            aggregate_sha256="",
            installed=None,
            deprecated=True,
            testing=True,
        )
        for name in ("ollama-two", "ollama-three"):
            create_model_entry(name, backend="ollama")
        actor = Actor.system("plan-test")
        record(actor, Action.SYNC, message="reloaded", duration_ms=1500)
        record(
            actor,
            Action.VERIFY,
            entry=ModelEntry.objects.first(),
            entry_name=ModelEntry.objects.first().name,
            outcome=Outcome.FAILED,
            message="=cmd",
            duration_ms=12,
        )

    def assert_same(self, make_table):
        expected = by_django_tables2(make_table())
        self.assertEqual(planned(make_table()), expected)
        self.assertTrue(expected)

    def test_the_models_table_renders_like_django_tables2(self):
        queryset = ModelEntry.objects.order_by("name")

        def make():
            table = ModelEntryTable(
                queryset, selected_pk=queryset[1].pk, detail_query="q=x"
            )
            table.active_name = queryset[0].name
            table.runtime_flags = {queryset[2].name: {"active": True}}
            return table

        self.assert_same(make)

    def test_the_action_log_table_renders_like_django_tables2(self):
        self.assert_same(lambda: ActionLogTable(ActionLog.objects.all()))

    def test_columns_it_cannot_plan_use_django_tables2s_path(self):
        class Linked(PlannedRowsMixin, tables.Table):
            name = tables.Column(linkify=True)
            display = tables.Column(accessor="display_name")
            backend = tables.Column(attrs={"td": {"data-value": lambda value: value}})
            # Values the template itself formats: dates, numbers, booleans, None.
            created = tables.Column()
            version = tables.Column()
            locked = tables.Column()
            installed = tables.Column()

        self.assert_same(lambda: Linked(ModelEntry.objects.order_by("name")))

    def test_the_active_cell_shortcut_renders_what_the_template_renders(self):
        entries = list(ModelEntry.objects.order_by("name"))
        states = (True, False, None)
        others = [e for e in entries if e.backend != "vllm"]
        flags = {e.name: {"active": states[i % 3]} for i, e in enumerate(entries)}
        flags.update({e.name: {"active": states[i % 3]} for i, e in enumerate(others)})
        full = ModelEntryTable(entries)  # slot unknown: the template for every row
        short = ModelEntryTable(entries)
        short.slot_name = ""  # the slot is idle (no activation in this test)
        for table in (full, short):
            table.runtime_flags = flags

        def cells(table):  # whitespace between template tags is not content
            return [str(table.render_active(e)).strip() for e in entries]

        self.assertEqual(cells(short), cells(full))
        self.assertIn("Active", "".join(cells(full)))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.text(), st.integers(), st.none()), min_size=3, max_size=3))
def test_cell_html_escapes_exactly_like_format_html(args):
    template = '<a href="{}" title="{}">{}</a>'
    assert cell_html(template, *args) == format_html(template, *args)
    safe = [mark_safe(str(a)) for a in args]
    assert cell_html(template, *safe) == format_html(template, *safe)
