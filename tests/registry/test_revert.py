"""Revert a recorded curated change: preview as an edit, confirm, conflict guard, audit."""

from __future__ import annotations

from django.test import TestCase
from django.urls import reverse

from registry import layers
from registry.audit import Actor
from registry.choices import Action
from registry.models import ActionLog, EntryChange, ModelEntry
from registry.services.writeback import change_entry
from tests.base import PermissionMatrixMixin
from tests.registry.edit_helpers import QWEN, SampleRegistryMixin


def set_keys(**values):
    def mutate(raw):
        raw = dict(raw or {"name": QWEN})
        for key, value in values.items():
            if value is None:
                raw.pop(key, None)
            else:
                raw[key] = value
        return raw

    return mutate


class RevertTests(SampleRegistryMixin, PermissionMatrixMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.make_personas()
        self.entry = ModelEntry.objects.get(name=QWEN)
        self.old_display = self.curated(QWEN)["display_name"]
        self.change(display_name="Renamed by Bob", notes_for_revert="added")
        self.recorded = EntryChange.objects.filter(
            entry_name=QWEN, layer="curated"
        ).first()
        self.url = reverse(
            "registry:entry_revert", args=[self.entry.pk, self.recorded.pk]
        )

    def change(self, **values):
        change_entry(
            Actor.from_user(self.operator2),
            Action.EDIT,
            QWEN,
            layers.CURATED,
            set_keys(**values),
        )

    def preview(self, user=None):
        return self.client_for(user or self.editor).get(self.url)

    def confirm(self, response, user=None):
        revert = response.context["revert"]
        return self.client_for(user or self.editor).post(
            self.url,
            {
                "fingerprint": revert.fingerprint,
                "preview_digest": revert.preview.digest,
            },
        )

    def test_only_editors_may_revert(self):
        self.assert_get_matrix(
            self.url,
            allowed=[self.editor, self.admin],
            forbidden=[self.viewer, self.operator, self.outsider],
        )

    def test_the_preview_shows_the_edit_and_writes_nothing(self):
        before = self.curated_path.read_bytes()
        response = self.preview()
        self.assertEqual(response.status_code, 200)
        html = response.content.decode()
        self.assertIn('data-path="display_name"', html)
        self.assertIn('data-path="notes_for_revert"', html)
        self.assertIn("Renamed by Bob", html)
        self.assertNotIn("disabled", html.split('data-testid="revert-confirm"')[1][:40])
        self.assertEqual(self.curated_path.read_bytes(), before)

    def test_confirm_puts_the_old_values_back_and_is_audited(self):
        response = self.confirm(self.preview())
        self.assertRedirects(
            response, self.entry.get_absolute_url(), fetch_redirect_response=False
        )
        curated = self.curated(QWEN)
        self.assertEqual(curated["display_name"], self.old_display)
        self.assertNotIn("notes_for_revert", curated)
        self.assertEqual(
            ModelEntry.objects.get(name=QWEN).display_name, self.old_display
        )
        row = ActionLog.objects.filter(action="edit", user_name="erin").get()
        self.assertEqual(row.outcome, "succeeded")
        self.assertEqual(row.details["revert_of"], self.recorded.pk)
        self.assertIn(f"Reverted change #{self.recorded.pk}", row.message)

    def test_a_later_change_of_the_same_key_blocks_the_revert(self):
        self.change(display_name="Renamed again")
        response = self.preview()
        html = response.content.decode()
        self.assertIn("A later change moved 1 of the keys this change wrote", html)
        self.assertIn("disabled", html.split('data-testid="revert-confirm"')[1][:40])
        before = self.curated_path.read_bytes()
        response = self.confirm(response)
        self.assertEqual(response.status_code, 409)
        self.assertEqual(self.curated_path.read_bytes(), before)
        failed = ActionLog.objects.get(action="edit", user_name="erin")
        self.assertEqual(failed.outcome, "failed")

    def test_a_change_between_preview_and_confirm_writes_nothing(self):
        response = self.preview()
        self.change(roles=["caption", "chat"])  # another key, after the preview
        before = self.curated_path.read_bytes()
        response = self.confirm(response)
        self.assertEqual(response.status_code, 409)
        self.assertContains(response, "since you opened it", status_code=409)
        self.assertEqual(self.curated_path.read_bytes(), before)

    def test_discovered_changes_are_refused_with_the_reason(self):
        change = EntryChange.objects.create(
            entry=self.entry,
            entry_name=QWEN,
            layer="discovered",
            kind="changed",
            changes=[
                {
                    "path": "version_lock.locked",
                    "op": "changed",
                    "before": False,
                    "after": True,
                }
            ],
        )
        url = reverse("registry:entry_revert", args=[self.entry.pk, change.pk])
        response = self.client_for(self.editor).get(url)
        self.assertEqual(response.status_code, 409)
        self.assertContains(response, "Only curated changes", status_code=409)

    def test_the_drawer_offers_revert_to_editors_only(self):
        detail = reverse("registry:modelentry_detail", args=[self.entry.pk])
        html = self.client_for(self.editor).get(detail).content.decode()
        self.assertIn(self.url, html)
        html = self.client_for(self.operator).get(detail).content.decode()
        self.assertNotIn(self.url, html)
        self.assertIn("Reverting needs the editor role", html)
