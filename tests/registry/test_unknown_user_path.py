"""A model path under a user this machine does not know (``~ghost/...``) reads as
missing files everywhere: no crashed sync, no server error page."""

from __future__ import annotations

from django.urls import reverse

from registry import layers
from registry.models import ModelEntry
from registry.services.sync import sync_registry
from registry.services.verify import VerifyError, verify
from tests.base import PersonaMixin
from tests.registry.test_writeback import WritebackTestBase, _entry

GHOST = "~no-such-user-imageworks/models/ghost-7b"
HX = {"HTTP_HX_REQUEST": "true"}


class UnknownUserPathTests(PersonaMixin, WritebackTestBase):
    def setUp(self):
        super().setUp()
        self.make_personas()
        self.write(
            layers.CURATED_FILE,
            [_entry("ghost", download_path=GHOST), _entry("plain")],
        )
        self.write(layers.DISCOVERED_FILE, [])

    def test_the_sync_mirrors_it_as_not_installed(self):
        result = sync_registry(self.actor)
        self.assertTrue(result.ok, result.error)
        row = ModelEntry.objects.get(name="ghost")
        self.assertIs(row.installed, False)
        self.assertEqual(row.model_dir, GHOST)

    def test_the_page_and_drawer_render(self):
        sync_registry(self.actor)
        client = self.client_for(self.operator)
        row = ModelEntry.objects.get(name="ghost")
        page = client.get(reverse("registry:modelentry_list"))
        self.assertEqual(page.status_code, 200)
        drawer = client.get(reverse("registry:modelentry_detail", args=[row.pk]), **HX)
        self.assertContains(drawer, "ghost")

    def test_verify_reports_the_files_missing(self):
        sync_registry(self.actor)
        with self.assertRaises(VerifyError) as caught:
            verify("ghost", self.actor)
        self.assertIn("no-such-user-imageworks", str(caught.exception))
