"""Editor views: permission matrix, preview writes nothing, confirm, conflict, read-only."""

from __future__ import annotations

import json
import os

from django.test import TestCase
from django.urls import reverse

from registry import layers
from registry.choices import Action, Outcome
from registry.models import ActionLog, ModelEntry
from tests.base import PermissionMatrixMixin
from tests.registry.edit_helpers import QWEN, SampleRegistryMixin
from tests.registry.test_editing import form_data

HTMX = {"HTTP_HX_REQUEST": "true"}


class EditViewTestCase(SampleRegistryMixin, PermissionMatrixMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.make_personas()
        self.entry = ModelEntry.objects.get(name=QWEN)
        self.edit_url = reverse("registry:entry_edit", args=[self.entry.pk])
        self.preview_url = reverse("registry:entry_edit_preview", args=[self.entry.pk])
        self.confirm_url = reverse("registry:entry_edit_confirm", args=[self.entry.pk])

    def preview(self, client, **changes):
        return client.post(self.preview_url, form_data(self.entry, **changes), **HTMX)

    def confirm(self, client, **changes):
        """Preview, then confirm with the digest the preview handed out."""
        response = self.preview(client, **changes)
        digest = response.context["form"]["preview_digest"].value()
        data = form_data(self.entry, **changes)
        data["preview_digest"] = digest
        return client.post(self.confirm_url, data, **HTMX)


class PermissionTests(EditViewTestCase):
    def test_edit_get_matrix(self):
        self.assert_get_matrix(
            self.edit_url,
            allowed=[self.editor, self.admin],
            forbidden=[self.viewer, self.operator, self.outsider],
        )

    def test_preview_post_matrix(self):
        self.assert_post_matrix(
            self.preview_url,
            allowed=[self.editor, self.admin],
            forbidden=[self.viewer, self.operator, self.outsider],
            data=form_data(self.entry),
        )

    def test_confirm_post_matrix(self):
        before = self.curated_path.read_bytes()
        self.assert_post_matrix(
            self.confirm_url,
            allowed=[self.editor, self.admin],
            forbidden=[self.viewer, self.operator, self.outsider],
            data=form_data(self.entry),  # no preview digest: nothing is written
        )
        self.assertEqual(self.curated_path.read_bytes(), before)

    def test_drawer_slot_shows_the_button_only_to_editors(self):
        from django.contrib.auth.context_processors import PermWrapper
        from django.template.loader import render_to_string
        from django.test import RequestFactory

        for user, enabled in ((self.editor, True), (self.viewer, False)):
            request = RequestFactory().get("/models/")
            request.user = user
            html = render_to_string(
                "registry/drawer_edit.html",
                {"entry": self.entry, "perms": PermWrapper(user), "request": request},
            )
            self.assertEqual('data-testid="edit-entry"' in html, enabled, user)
            self.assertEqual("disabled" in html, not enabled, user)


class EditFlowTests(EditViewTestCase):
    def test_get_shows_the_prefilled_form_as_partial_or_page(self):
        client = self.client_for(self.editor)
        partial = client.get(self.edit_url, **HTMX)
        self.assertContains(partial, "Qwen2.5-VL 7B (AWQ)")
        self.assertNotContains(partial, "<html")
        page = client.get(self.edit_url)
        self.assertContains(page, "<html")
        self.assertContains(page, 'id="edit-modal-body"')

    def test_preview_shows_the_diff_and_writes_nothing(self):
        before = self.curated_path.read_bytes()
        client = self.client_for(self.editor)
        response = self.preview(
            client,
            display_name="Qwen2.5-VL 7B AWQ (prod)",
            roles=[*self.entry.roles, "ocr"],
        )
        self.assertContains(response, 'data-testid="edit-diff"')
        self.assertEqual(
            [c["path"] for c in response.context["preview"].diff],
            ["display_name", "roles"],
        )
        self.assertContains(response, "Confirm save")
        self.assertEqual(self.curated_path.read_bytes(), before)
        self.assertFalse(ActionLog.objects.filter(action=Action.EDIT).exists())

    def test_preview_and_confirm_on_unchanged_files_parse_no_layer_file(self):
        """The conflict check trusts the mirror while the files are as the last sync
        left them: on a 10,000-entry registry a full read is 2-3 s per click."""
        from unittest import mock

        from registry.layers import load

        client = self.client_for(self.editor)
        with mock.patch.object(load, "read_layer", wraps=load.read_layer) as read:
            response = self.preview(client, display_name="Checked, not re-read")
            data = form_data(self.entry, display_name="Checked, not re-read")
            data["preview_digest"] = response.context["form"]["preview_digest"].value()
            saved = client.post(self.confirm_url, data, **HTMX)
        self.assertContains(saved, f"Saved {QWEN}")
        self.assertEqual(read.call_count, 0)
        self.assertEqual(self.curated(QWEN)["display_name"], "Checked, not re-read")

    def test_preview_of_a_read_only_registry_folder_still_shows_the_diff(self):
        """The conflict check cannot take the write lock there; it reads the files
        instead (the confirm then says the folder is read-only, as before)."""
        from unittest import mock

        from registry.layers import files

        client = self.client_for(self.editor)
        with mock.patch.object(files, "_is_read_only", return_value=True):
            response = self.preview(client, display_name="Read-only folder")
        self.assertContains(response, 'data-testid="edit-diff"')
        self.assertContains(response, "Confirm save")

    def test_confirm_saves_and_triggers_refresh_events(self):
        client = self.client_for(self.editor)
        response = self.confirm(client, display_name="Qwen2.5-VL 7B AWQ (prod)")
        self.assertContains(response, f"Saved {QWEN}")
        trigger = json.loads(response["HX-Trigger"])
        self.assertEqual(trigger["entryChanged"], {"pk": self.entry.pk})
        self.assertEqual(trigger["showMessage"]["text"], f"Saved {QWEN}")
        self.assertEqual(self.curated(QWEN)["display_name"], "Qwen2.5-VL 7B AWQ (prod)")
        row = ActionLog.objects.get(action=Action.EDIT)
        self.assertEqual(row.user_name, "erin")

    def test_confirm_without_htmx_redirects_with_a_message(self):
        client = self.client_for(self.editor)
        response = self.preview(client, display_name="X")
        data = form_data(self.entry, display_name="X")
        data["preview_digest"] = response.context["form"]["preview_digest"].value()
        response = client.post(self.confirm_url, data, follow=True)
        self.assertContains(response, f"Saved {QWEN}")

    def test_confirm_of_a_form_changed_after_preview_shows_the_new_diff(self):
        client = self.client_for(self.editor)
        response = self.preview(client, display_name="X")
        data = form_data(self.entry, display_name="Y")
        data["preview_digest"] = response.context["form"]["preview_digest"].value()
        before = self.curated_path.read_bytes()
        response = client.post(self.confirm_url, data, **HTMX)
        self.assertContains(response, "The form changed since the preview")
        self.assertEqual(self.curated_path.read_bytes(), before)

    def test_outside_edit_between_open_and_confirm_is_a_conflict(self):
        client = self.client_for(self.editor)
        response = self.preview(client, display_name="Mine")
        digest = response.context["form"]["preview_digest"].value()
        self.outside_edit(QWEN, display_name="Edited by hand")
        on_disk = self.curated_path.read_bytes()
        data = form_data(self.entry, display_name="Mine")
        data["preview_digest"] = digest
        response = client.post(self.confirm_url, data, **HTMX)
        self.assertContains(response, "since you opened it")
        self.assertContains(response, "Re-open the editor on the new version")
        self.assertContains(response, "Edited by hand")  # their version -> yours diff
        self.assertEqual(self.curated_path.read_bytes(), on_disk)
        # Re-opening loads the new version.
        reopened = client.get(self.edit_url, **HTMX)
        self.assertContains(reopened, "Edited by hand")

    def test_read_only_registry_shows_the_troubleshooting_message(self):
        client = self.client_for(self.editor)
        response = self.preview(client, display_name="Nope")
        digest = response.context["form"]["preview_digest"].value()
        os.chmod(self.curated_path, 0o444)
        before = self.curated_path.read_bytes()
        data = form_data(self.entry, display_name="Nope")
        data["preview_digest"] = digest
        response = client.post(self.confirm_url, data, **HTMX)
        self.assertContains(response, layers.READ_ONLY_MESSAGE)
        self.assertEqual(self.curated_path.read_bytes(), before)
        self.assertEqual(
            ActionLog.objects.get(action=Action.EDIT).outcome, Outcome.FAILED
        )

    def test_user_data_is_escaped(self):
        client = self.client_for(self.editor)
        response = self.preview(client, display_name="<script>alert(1)</script>")
        self.assertNotContains(response, "<script>alert(1)</script>")
        self.assertContains(response, "&lt;script&gt;")
