"""The per-user column chooser of the Models table (NetBox's table config)."""

from __future__ import annotations

import re

from django.urls import reverse

from registry.models import TableConfig
from registry.services import columns
from registry.tables import ModelEntryTable
from tests.base import BaseTestCase, PermissionMatrixMixin, quiet_request_log
from tests.registry.page_fixtures import seed_scenario

LIST = reverse("registry:modelentry_list")
COLUMNS = reverse("registry:table_columns")
HX = {"HTTP_HX_REQUEST": "true"}


def headers(html: str) -> list[str]:
    """The Models table's column classes, in order."""
    thead = html.split('id="models-grid"')[1].split("</thead>")[0]
    return re.findall(r'<th class="col-(\w+)', thead)


class ColumnChooserTests(PermissionMatrixMixin, BaseTestCase):
    @classmethod
    def setUpTestData(cls):
        super().setUpTestData()
        cls.rows = seed_scenario()

    def save(self, user, order, shown, **extra):
        data = {"order": order, "show": shown, "next": LIST, **extra}
        return self.client_for(user).post(COLUMNS, data)

    def test_default_columns(self):
        html = self.client_for(self.viewer).get(LIST).content.decode()
        expected = [
            ModelEntryTable.base_columns[name].attrs["th"]["class"].removeprefix("col-")
            for name in ("select", "name", *dict(columns.configurable(ModelEntryTable)))
        ]
        self.assertEqual(headers(html), expected)
        self.assertEqual(expected[:4], ["select", "name", "display", "backend"])

    def test_a_user_hides_and_orders_columns_and_it_is_remembered(self):
        response = self.save(
            self.viewer,
            ["locked", "backend", "display_name", "roles"],
            ["locked", "backend"],
        )
        self.assertRedirects(response, LIST, fetch_redirect_response=False)
        html = self.client_for(self.viewer).get(LIST).content.decode()
        self.assertEqual(headers(html), ["select", "name", "lock", "backend"])
        self.assertNotIn("Display Name</th>", html)
        # the htmx partial (filters, sorting) keeps the choice too
        partial = self.client_for(self.viewer).get(LIST + "?backend=vllm", **HX)
        self.assertEqual(
            headers(partial.content.decode()), ["select", "name", "lock", "backend"]
        )
        # per user: another user still has the default
        other = self.client_for(self.operator).get(LIST).content.decode()
        self.assertIn("display", headers(other))
        self.assertEqual(
            TableConfig.objects.get(user=self.viewer).columns, ["locked", "backend"]
        )

    def test_the_drawer_still_shows_display_name_and_roles(self):
        self.save(self.viewer, ["backend"], ["backend"])
        qwen = self.rows["qwen"]
        html = (
            self.client_for(self.viewer)
            .get(reverse("registry:modelentry_detail", args=[qwen.pk]))
            .content.decode()
        )
        self.assertNotIn("col-display", html.split("</thead>")[0])
        self.assertIn(f'data-testid="drawer-display-name">{qwen.display_name}<', html)
        self.assertIn("<dt>Roles</dt>", html)
        for role in qwen.roles:
            self.assertIn(f'<span class="chip">{role}</span>', html)

    def test_move_reset_and_bad_input(self):
        order = [name for name, _label in columns.configurable(ModelEntryTable)]
        self.save(self.viewer, order, order, move="up:roles")
        saved = TableConfig.objects.get(user=self.viewer).columns
        self.assertEqual(saved.index("roles"), order.index("roles") - 1)
        response = self.client_for(self.viewer).post(
            COLUMNS, {"order": ["nope"], "show": ["nope"]}, follow=True
        )
        self.assertContains(response, "Unknown column(s): nope.")
        response = self.client_for(self.viewer).post(
            COLUMNS, {"order": order}, follow=True
        )
        self.assertContains(response, "Show at least one column besides the name.")
        self.client_for(self.viewer).post(COLUMNS, {"reset": "1"})
        self.assertFalse(TableConfig.objects.filter(user=self.viewer).exists())

    def test_saving_needs_post_csrf_and_login(self):
        self.assertEqual(self.client_for(self.viewer).get(COLUMNS).status_code, 405)
        from django.test import Client

        strict = Client(enforce_csrf_checks=True)
        strict.force_login(self.viewer)
        with quiet_request_log():
            self.assertEqual(
                strict.post(
                    COLUMNS, {"order": ["backend"], "show": ["backend"]}
                ).status_code,
                403,
            )
        self.assertFalse(TableConfig.objects.exists())

    def test_an_offsite_next_is_ignored(self):
        response = self.save(
            self.viewer, ["backend"], ["backend"], next="https://evil.example/"
        )
        self.assertEqual(response["Location"], LIST)

    def test_the_partial_etag_changes_with_the_columns(self):
        client = self.client_for(self.viewer)
        with self.settings(DEBUG=False):
            etag = client.get(LIST, **HX)["ETag"]
            self.save(self.viewer, ["backend"], ["backend"])
            response = client.get(LIST, HTTP_IF_NONE_MATCH=etag, **HX)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(
            headers(response.content.decode()), ["select", "name", "backend"]
        )

    def test_a_saved_column_that_no_longer_exists_is_dropped(self):
        TableConfig.objects.create(
            user=self.viewer, table="models", columns=["gone", "backend"]
        )
        html = self.client_for(self.viewer).get(LIST).content.decode()
        self.assertEqual(headers(html), ["select", "name", "backend"])


class BulkFormCacheTests(BaseTestCase):
    def test_a_new_login_is_not_answered_with_a_cached_partial(self):
        """The partial holds the bulk form's CSRF token: a new session, a new ETag."""
        seed_scenario()
        first = self.client_for(self.operator)
        with self.settings(DEBUG=False):
            etag = first.get(LIST, **HX)["ETag"]
            self.assertEqual(
                first.get(LIST, HTTP_IF_NONE_MATCH=etag, **HX).status_code, 304
            )
            again = self.client_for(self.operator)  # logs in anew
            response = again.get(LIST, HTTP_IF_NONE_MATCH=etag, **HX)
        self.assertEqual(response.status_code, 200)
        self.assertIn('name="csrfmiddlewaretoken"', response.content.decode())
