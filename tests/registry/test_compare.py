"""Compare two entries side by side, from two ticked rows of the Models table."""

from __future__ import annotations

from django.urls import reverse

from tests.base import BaseTestCase, PermissionMatrixMixin
from tests.registry.page_fixtures import seed_scenario

COMPARE = reverse("registry:entry_compare")
BULK = reverse("registry:bulk_action")


class CompareTests(PermissionMatrixMixin, BaseTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.rows = seed_scenario()
        cls.a, cls.b = cls.rows["qwen"], cls.rows["gemma"]

    def url(self, a, b) -> str:
        return f"{COMPARE}?a={a.pk}&b={b.pk}"

    def test_two_ticked_rows_open_the_compare_page(self):
        response = self.client_for(self.viewer).post(
            BULK, {"compare": "1", "select": [self.a.pk, self.b.pk]}
        )
        self.assertRedirects(response, self.url(self.a, self.b))

    def test_any_other_number_of_rows_is_explained(self):
        response = self.client_for(self.viewer).post(
            BULK, {"compare": "1", "select": [self.a.pk]}, follow=True
        )
        self.assertContains(response, "Tick exactly two rows to compare (1 ticked).")
        response = self.client_for(self.viewer).get(COMPARE + "?a=1", follow=True)
        self.assertContains(response, "Tick exactly two rows")
        response = self.client_for(self.viewer).get(
            f"{COMPARE}?a={self.a.pk}&b=999999", follow=True
        )
        self.assertContains(response, "Pick two different entries that exist")

    def test_the_page_shows_both_values_and_marks_the_differences(self):
        response = self.client_for(self.viewer).get(self.url(self.a, self.b))
        html = response.content.decode()
        self.assertIn(self.a.name, html)
        self.assertIn(self.b.name, html)
        backend_row = html.split('data-path="backend"')[1].split("</tr>")[0]
        self.assertIn('data-path="backend" data-same="false"', html)
        self.assertIn("&quot;vllm&quot;", backend_row)
        self.assertIn("&quot;ollama&quot;", backend_row)
        cmp = response.context["cmp"]
        self.assertGreater(cmp.differing, 0)
        self.assertTrue(
            all(r["same"] is False for r in cmp.rows if r["path"] == "name")
        )
        self.assertIn(f"--- a/{self.a.name}", cmp.preview.unified_text)

    def test_only_the_differences_on_request(self):
        response = self.client_for(self.viewer).get(
            self.url(self.a, self.b) + "&only=diff"
        )
        html = response.content.decode()
        cmp = response.context["cmp"]
        self.assertEqual(html.count('data-same="false"'), cmp.differing)
        self.assertNotIn('data-same="true"', html)
        self.assertContains(response, "Show all fields")

    def test_an_entry_compared_with_itself_has_no_differences(self):
        response = self.client_for(self.viewer).get(
            self.url(self.a, self.a), follow=True
        )
        # the same pk twice is one entry: explained, not compared
        self.assertContains(response, "Pick two different entries")

    def test_viewers_may_compare_outsiders_may_not(self):
        self.assert_get_matrix(
            self.url(self.a, self.b),
            allowed=[self.viewer, self.operator, self.editor, self.admin],
            forbidden=[self.outsider],
        )
