"""The pieces the Models page will use (column, drawer lines, card totals) work as
described in docs/reconcile.md, with query counts that do not grow with the rows."""

from __future__ import annotations

import django_tables2 as tables
from django.db import connection
from django.template.loader import render_to_string
from django.test import RequestFactory, TestCase
from django.test.utils import CaptureQueriesContext

from inventory.services import (
    BACKEND_TOTALS_QUERIES,
    DISK_USAGE_QUERIES,
    ENTRY_ACTIVITY_QUERIES,
    backend_totals,
    disk_usage_by_entry,
    entry_activity,
    run_scan,
)
from registry.audit import Actor
from registry.models import ModelEntry
from registry.tables import ModelEntryTable
from tests.inventory.helpers import LibraryMixin

ACTOR = Actor.system("tests")


class WiredTable(ModelEntryTable):
    """The column as docs/reconcile.md proposes it for registry/tables.py."""

    size_on_disk = tables.Column(
        verbose_name="Size on disk",
        accessor="usage__size_bytes",
        order_by=("usage__size_bytes",),
    )

    class Meta(ModelEntryTable.Meta):
        sequence = ("...", "size_on_disk")


class WiringTests(LibraryMixin, TestCase):
    def build(self, n: int) -> None:
        for i in range(n):
            self.lib.vllm(
                f"m{i:02d}", self.lib.model(f"org/m{i:02d}", size=1000 * (i + 1))
            )
        self.lib.save()
        run_scan(ACTOR, refresh_backends=False)

    def render_table(self, order_by=None) -> tuple[str, int]:
        with CaptureQueriesContext(connection) as ctx:
            rows = ModelEntry.objects.select_related("usage").defer(
                "curated_raw", "discovered_raw"
            )
            request = RequestFactory().get("/models/")
            table = WiredTable(rows, order_by=order_by)
            table.request = request  # the view's RequestConfig does this
            table.paginate(per_page=50)
            html = table.as_html(request)
        return html, len(ctx.captured_queries)

    def test_the_column_sorts_and_costs_no_query_per_row(self):
        self.build(3)
        _, few = self.render_table()
        self.lib.curated.clear()
        self.lib.discovered.clear()
        self.build(12)
        html, many = self.render_table(order_by="-size_on_disk")
        self.assertEqual(few, many)
        self.assertLess(html.index(">m11<"), html.index(">m00<"))

    def test_data_functions_have_fixed_query_counts(self):
        self.build(6)
        entries = list(ModelEntry.objects.all())
        with self.assertNumQueries(DISK_USAGE_QUERIES):
            self.assertEqual(len(disk_usage_by_entry()), 6)
        with self.assertNumQueries(BACKEND_TOTALS_QUERIES):
            self.assertEqual(backend_totals()["vllm"]["entries"], 6)
        with self.assertNumQueries(ENTRY_ACTIVITY_QUERIES):
            self.assertEqual(len(entry_activity(entries)), 6)

    def test_card_and_drawer_includes(self):
        self.build(2)
        request = RequestFactory().get("/models/cards/vllm/")
        card = render_to_string(
            "inventory/_card_usage.html", {"backend": "vllm", "request": request}
        )
        self.assertIn("On disk: <strong>2.9\xa0KB</strong>", card)
        none = render_to_string(
            "inventory/_card_usage.html", {"backend": "triton", "request": request}
        )
        self.assertIn("not scanned", none)
        drawer = render_to_string(
            "inventory/_drawer_usage.html",
            {"entry": ModelEntry.objects.get(name="m01")},
        )
        self.assertIn("2.0\xa0KB", drawer)
        self.assertIn("Last activated", drawer)
