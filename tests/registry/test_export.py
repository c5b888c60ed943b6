from __future__ import annotations

import csv
import io
import re

import pytest
from django.test import TestCase
from django.urls import reverse

from registry.export import neutralise
from tests.base import PersonaMixin
from tests.registry.page_fixtures import bulk_entries, seed_scenario
from tests.utils import create_model_entry

LIST = reverse("registry:modelentry_list")
HEADER = [
    "Logical Name",
    "Display Name",
    "Backend",
    "Roles",
    "Capabilities",
    "Lock",
    "Hash",
    "Size",
    "Installed?",
    "Active?",
]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+cmd", "'+cmd"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("plain", "plain"),
        ("a=b", "a=b"),
        (3, 3),
        (None, None),
    ],
)
def test_it_neutralises_formula_cells(value, expected):
    assert neutralise(value) == expected


class ExportTests(PersonaMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.make_personas()
        seed_scenario()

    def export(self, query="", user=None):
        response = self.client_for(user or self.viewer).get(
            LIST + "?_export=csv" + query
        )
        self.assertEqual(response.status_code, 200)
        response.body = b"".join(response.streaming_content).decode()
        rows = list(csv.reader(io.StringIO(response.body)))
        return response, rows

    def test_it_names_the_file_with_a_timestamp(self):
        response, _rows = self.export()
        self.assertEqual(response["Content-Type"], "text/csv; charset=utf-8")
        self.assertRegex(
            response["Content-Disposition"],
            r'attachment; filename="?models-\d{8}-\d{4}\.csv"?',
        )

    def test_it_exports_the_visible_headers_and_the_filtered_rows(self):
        _response, rows = self.export("&backend=vllm&q=qwen")
        self.assertEqual(rows[0], HEADER)
        self.assertEqual(
            [row[0] for row in rows[1:]],
            ["qwen2.5-vl-7b-instruct_(AWQ)", "qwen3-vl-8b-instruct_(FP8)"],
        )
        qwen = rows[1]
        self.assertEqual(
            qwen[3], "caption, keywords, description, narration, vision_general"
        )
        self.assertEqual(qwen[4], "vision")
        self.assertEqual(qwen[5], "unlocked")
        self.assertEqual(len(qwen[6]), 64)
        self.assertEqual(qwen[7], "")  # size on disk: not scanned
        self.assertEqual(qwen[8], "yes")

    def test_every_kind_of_cell_reads_the_raw_database_values_right(self):
        """The export skips Django's converters for flags and JSON (0/1 and JSON
        text on SQLite): each cell must still say what the table shows."""
        from inventory.models import EntryUsage

        bare = create_model_entry(
            "zz-raw-bare", roles=[], installed=None, locked=False, cap_vision=False
        )
        full = create_model_entry(
            "zz-raw-full",
            display_name="Modèle «plein»",
            roles=["caption", "légende, longue", "keywords"],
            installed=False,
            locked=True,
            cap_vision=True,
            cap_tools=True,
            cap_thinking=True,
        )
        EntryUsage.objects.create(entry=full, size_bytes=123_456_789)
        _r, rows = self.export("&q=zz-raw&sort=name")
        by_name = {row[0]: row for row in rows[1:]}
        self.assertEqual(
            by_name[bare.name][1:6] + by_name[bare.name][7:9],
            ["zz-raw-bare", "vllm", "", "", "unlocked", "", "unknown"],
        )
        self.assertEqual(
            by_name[full.name][1:6] + by_name[full.name][7:9],
            [
                "Modèle «plein»",
                "vllm",
                "caption, légende, longue, keywords",
                "vision, thinking, tools",
                "locked",
                "123456789",
                "no",
            ],
        )

    def test_raw_rows_keep_the_asked_order_and_survive_an_empty_query(self):
        from django.db.models import F, Value
        from django.db.models.functions import Concat

        from registry.export import raw_rows
        from registry.models import ModelEntry

        create_model_entry("zz-order", locked=True, roles=["a"])
        qs = ModelEntry.objects.filter(name="zz-order").annotate(
            label=Concat(F("name"), Value("!"))
        )
        self.assertEqual(
            list(raw_rows(qs, ["label", "roles", "name"]))[0][::2],
            ("zz-order!", "zz-order"),
        )
        (row,) = raw_rows(qs, ["locked"])
        self.assertTrue(row[0])  # 1 on SQLite, True on PostgreSQL
        self.assertEqual(list(raw_rows(qs.filter(pk__in=[]), ["name"])), [])

    def test_it_exports_every_matching_row_not_just_the_page(self):
        bulk_entries(130)
        _response, rows = self.export("&per_page=25&page=2")
        self.assertEqual(len(rows) - 1, 130 + 6)

    def test_it_follows_the_testing_toggle(self):
        _r, rows = self.export()
        self.assertNotIn("testmodel-alpha", [r[0] for r in rows])
        _r, rows = self.export("&testing=1")
        self.assertIn("testmodel-alpha", [r[0] for r in rows])

    def test_it_keeps_the_sort_order(self):
        _r, rows = self.export("&sort=-name")
        names = [r[0] for r in rows[1:]]
        self.assertEqual(names, sorted(names, reverse=True))

    def test_it_guards_against_formula_injection_and_quotes_commas(self):
        create_model_entry("evil-formula", display_name='=HYPERLINK("http://x","a, b")')
        response, rows = self.export("&q=evil-formula")
        self.assertEqual(rows[1][1], '\'=HYPERLINK("http://x","a, b")')
        self.assertIn('"\'=HYPERLINK(""http://x"",""a, b"")"', response.body)

    def test_it_lets_a_viewer_export(self):
        _r, rows = self.export(user=self.viewer)
        self.assertGreater(len(rows), 1)
        self.assertTrue(re.match(r"^[a-z]", rows[1][0]))

    def test_it_refuses_formats_it_does_not_offer(self):
        for fmt in ("xlsx", "json", "nonsense"):
            response = self.client_for(self.viewer).get(LIST + "?_export=" + fmt)
            self.assertEqual(response.status_code, 400, fmt)
            self.assertIn("csv", response.content.decode())
