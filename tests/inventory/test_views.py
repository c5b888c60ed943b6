"""The pages: permission matrix (anonymous, viewer, editor; GET/POST), audit rows with
the operator's name, htmx partials and constant query counts."""

from __future__ import annotations

import re

from django.db import connection
from django.test import Client, TestCase
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from inventory.choices import FindingKind, TrashState
from inventory.models import Finding, ScanRun, TrashItem
from inventory.services import reclaim, run_scan
from registry.audit import Actor
from registry.choices import Action, Outcome
from registry.models import ActionLog, ModelEntry
from tests.base import PermissionMatrixMixin, quiet_request_log
from tests.inventory.helpers import LibraryMixin

ACTOR = Actor.system("tests")


class InventoryViewTests(LibraryMixin, PermissionMatrixMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.make_personas()

    def setUp(self):
        super().setUp()
        self.old = self.lib.model("org/old", size=12_000)
        self.lib.model("stray/orphan", size=3_000)
        self.lib.vllm("old", self.old)
        self.lib.vllm("gone", self.lib.root / "org/gone")
        self.lib.save()
        self.scan = run_scan(ACTOR, refresh_backends=False)
        self.entry = ModelEntry.objects.get(name="old")

    def key(self, name="old") -> str:
        return f"entry:{ModelEntry.objects.get(name=name).pk}"

    # --- the report --------------------------------------------------------------------

    def test_report_matrix_and_content(self):
        url = reverse("inventory:report")
        self.assert_get_matrix(
            url,
            allowed=[self.viewer, self.editor, self.operator],
            forbidden=[self.outsider],
        )
        page = self.client_for(self.viewer).get(url).content.decode()
        self.assertIn("Orphan folder", page)
        self.assertIn(str(self.lib.root / "stray/orphan"), page)
        self.assertIn("The model path does not exist", page)
        # A viewer reads; the scan button is not offered.
        self.assertNotIn('data-testid="scan-button"', page)
        self.assertIn(
            'data-testid="scan-button"',
            self.client_for(self.editor).get(url).content.decode(),
        )

    def test_report_filters_and_htmx_partial(self):
        client = self.client_for(self.viewer)
        url = reverse("inventory:report")
        partial = client.get(
            url, {"kind": FindingKind.PATH_MISSING}, HTTP_HX_REQUEST="true"
        )
        body = partial.content.decode()
        self.assertNotIn("<html", body)
        self.assertIn('id="findings"', body)
        self.assertIn("gone", body)
        self.assertNotIn("stray/orphan", body)

    def test_report_query_count_does_not_grow_with_findings(self):
        client = self.client_for(self.viewer)
        url = reverse("inventory:report")

        def count() -> int:
            with CaptureQueriesContext(connection) as ctx:
                self.assertEqual(client.get(url).status_code, 200)
            return len(ctx.captured_queries)

        few = count()
        Finding.objects.bulk_create(
            Finding(
                scan=self.scan,
                kind=FindingKind.ORPHAN_FOLDER,
                path=f"/x/{i}",
                message="m",
                entry=self.entry if i % 2 else None,
                entry_name="old" if i % 2 else "",
                fixes=["import"],
            )
            for i in range(40)
        )
        self.assertEqual(count(), few)

    def test_scan_button_queues_a_job_audited_as_the_editor(self):
        url = reverse("inventory:scan_start")
        self.assert_login_required(url, "post")
        self.assert_forbidden(self.viewer, url, "post")
        self.assert_method_not_allowed(self.editor, url, "get")
        self.assert_csrf_required(self.editor, url)
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client_for(self.editor).post(url, HTTP_HX_REQUEST="true")
        self.assertEqual(response.status_code, 200)
        self.assertIn('data-testid="scan-job"', response.content.decode())
        run = ScanRun.objects.first()
        self.assertEqual(run.user_name, "erin")
        self.assertIsNotNone(run.job_id)
        self.assertEqual(run.job.status, "succeeded")
        row = ActionLog.objects.filter(action=Action.RECONCILE, user_name="erin").get()
        self.assertEqual(row.details["op"], "scan")

    def test_scan_status_polls_while_the_job_runs(self):
        from inventory import tasks

        job = tasks.request_scan(ACTOR)  # queued (on_commit does not run here)
        url = reverse("inventory:scan_status")
        self.assert_get_matrix(url, allowed=[self.viewer], forbidden=[self.outsider])
        body = self.client_for(self.viewer).get(url).content.decode()
        self.assertIn(f'hx-get="{url}"', body)
        self.assertIn('data-job-status="queued"', body)
        job.status = "succeeded"
        job.save()
        body = self.client_for(self.viewer).get(url).content.decode()
        self.assertNotIn("hx-get", body)
        self.assertIn('data-testid="scan-done"', body)

    # --- fixes ---------------------------------------------------------------------------

    def test_fix_preview_and_mark_deprecated(self):
        finding = Finding.objects.get(kind=FindingKind.PATH_MISSING)
        url = reverse("inventory:finding_fix", args=[finding.pk])
        self.assert_get_matrix(
            url, allowed=[self.viewer, self.editor], forbidden=[self.outsider]
        )
        viewer_page = (
            self.client_for(self.viewer)
            .get(url, HTTP_HX_REQUEST="true")
            .content.decode()
        )
        self.assertIn("Your role does not allow this", viewer_page)
        self.assertNotIn("fix-confirm-mark_deprecated", viewer_page)
        editor_page = (
            self.client_for(self.editor)
            .get(url, HTTP_HX_REQUEST="true")
            .content.decode()
        )
        self.assertIn('data-testid="fix-confirm-mark_deprecated"', editor_page)
        self.assertIn("&quot;deprecated&quot;: true", editor_page)

        gone = ModelEntry.objects.get(name="gone")
        post = reverse("inventory:mark_deprecated", args=[gone.pk])
        data = {"fingerprint": gone.fingerprint}
        self.assert_login_required(post, "post", data)
        self.assert_forbidden(self.viewer, post, "post", data)
        self.assert_forbidden(self.operator, post, "post", data)
        self.assert_method_not_allowed(self.editor, post, "get")
        self.assert_csrf_required(self.editor, post, data)
        self.assertFalse(ModelEntry.objects.get(name="gone").deprecated)
        response = self.client_for(self.editor).post(post, data)
        self.assertRedirects(
            response, reverse("inventory:report"), fetch_redirect_response=False
        )
        self.assertTrue(ModelEntry.objects.get(name="gone").deprecated)
        row = ActionLog.objects.get(action=Action.EDIT, entry_name="gone")
        self.assertEqual((row.user_name, row.outcome), ("erin", Outcome.SUCCEEDED))

    def test_mark_deprecated_with_a_stale_fingerprint_is_a_message_not_a_500(self):
        gone = ModelEntry.objects.get(name="gone")
        response = self.client_for(self.editor).post(
            reverse("inventory:mark_deprecated", args=[gone.pk]),
            {"fingerprint": "f" * 64},
            follow=True,
        )
        self.assertEqual(response.status_code, 200)
        self.assertIn("Not marked deprecated", response.content.decode())
        self.assertFalse(ModelEntry.objects.get(name="gone").deprecated)

    # --- reclaim ---------------------------------------------------------------------------

    def test_reclaim_page_matrix_and_suggestions(self):
        url = reverse("inventory:reclaim")
        self.assert_get_matrix(
            url,
            allowed=[self.editor],
            forbidden=[self.viewer, self.operator, self.outsider],
        )
        page = (
            self.client_for(self.editor)
            .get(url, {"select": self.key()})
            .content.decode()
        )
        self.assertRegex(page, rf'value="{self.key()}"[^>]*checked')
        self.assertIn(str(self.lib.root / "stray/orphan"), page)

    def test_reclaim_table_sorts_columns_with_unknown_values(self):
        client = self.client_for(self.editor)
        for sort in ("size", "-size", "last_used", "-idle_since", "name", "backend"):
            response = client.get(reverse("inventory:reclaim"), {"sort": sort})
            self.assertEqual(response.status_code, 200, sort)
        page = client.get(
            reverse("inventory:reclaim"), {"sort": "-size"}
        ).content.decode()
        self.assertLess(page.index(">old<"), page.index(">gone<"))

    def test_preview_then_execute_moves_and_audits_as_the_editor(self):
        keys = [self.key(), f"folder:{self.lib.root / 'stray/orphan'}"]
        preview_url = reverse("inventory:reclaim_preview")
        self.assert_post_matrix(
            preview_url,
            allowed=[self.editor],
            forbidden=[self.viewer, self.operator],
            data={"select": keys},
        )
        response = self.client_for(self.editor).post(
            preview_url, {"select": keys}, HTTP_HX_REQUEST="true"
        )
        body = response.content.decode()
        self.assertIn('data-testid="plan"', body)
        self.assertNotIn("<html", body)
        digest = re.search(r'name="digest" value="([0-9a-f]{32})"', body).group(1)
        self.assertEqual(digest, reclaim.build_plan(keys).digest)
        self.assertTrue(self.old.exists())  # a preview moves nothing

        execute = reverse("inventory:reclaim_execute")
        data = {"select": keys, "digest": digest}
        self.assert_login_required(execute, "post", data)
        self.assert_forbidden(self.viewer, execute, "post", data)
        self.assert_method_not_allowed(self.editor, execute, "get")
        self.assert_csrf_required(self.editor, execute, data)
        self.assertTrue(self.old.exists())
        response = self.client_for(self.editor).post(execute, data)
        self.assertRedirects(
            response, reverse("inventory:trash"), fetch_redirect_response=False
        )
        self.assertFalse(self.old.exists())
        self.assertEqual(TrashItem.objects.filter(moved_by="erin").count(), 2)
        rows = ActionLog.objects.filter(action=Action.RECONCILE, details__op="reclaim")
        self.assertEqual({r.user_name for r in rows}, {"erin"})
        self.assertEqual(rows.count(), 2)

    def test_execute_with_a_stale_digest_or_bad_keys_changes_nothing(self):
        client = self.client_for(self.editor)
        with quiet_request_log():
            stale = client.post(
                reverse("inventory:reclaim_execute"),
                {"select": [self.key()], "digest": "0" * 32},
            )
            bad = client.post(
                reverse("inventory:reclaim_preview"),
                {"select": ["rm -rf /", "entry:x"]},
            )
            empty = client.post(reverse("inventory:reclaim_preview"), {})
        self.assertEqual(stale.status_code, 409)
        self.assertIn("The plan changed since the preview", stale.content.decode())
        self.assertTrue(self.old.exists())
        self.assertEqual(bad.status_code, 400)
        self.assertIn("Not a selection", bad.content.decode())
        self.assertEqual(empty.status_code, 400)
        self.assertIn("Select at least one", empty.content.decode())
        self.assertFalse(TrashItem.objects.exists())

    # --- trash -----------------------------------------------------------------------------

    def move_old(self) -> TrashItem:
        keys = [self.key()]
        return reclaim.execute(keys, ACTOR, reclaim.build_plan(keys).digest).moved[0]

    def test_trash_page_restore_and_empty(self):
        item = self.move_old()
        url = reverse("inventory:trash")
        self.assert_get_matrix(
            url, allowed=[self.viewer, self.editor], forbidden=[self.outsider]
        )
        viewer_page = self.client_for(self.viewer).get(url).content.decode()
        self.assertIn(str(self.old), viewer_page)
        self.assertNotIn("restore-", viewer_page)  # no restore button for a viewer
        self.assertNotIn('data-testid="empty-trash"', viewer_page)

        restore = reverse("inventory:trash_restore", args=[item.pk])
        self.assert_login_required(restore, "post")
        self.assert_forbidden(self.viewer, restore, "post")
        self.assert_method_not_allowed(self.editor, restore, "get")
        self.assert_csrf_required(self.editor, restore)
        self.client_for(self.editor).post(restore)
        self.assertTrue(self.old.exists())
        item.refresh_from_db()
        self.assertEqual((item.state, item.restored_by), (TrashState.RESTORED, "erin"))

        item = self.move_old()
        empty = reverse("inventory:trash_empty")
        self.assert_get_matrix(
            empty, allowed=[self.editor], forbidden=[self.viewer, self.outsider]
        )
        self.assert_forbidden(self.viewer, empty, "post", {"confirm": "1"})
        with quiet_request_log():
            unconfirmed = self.client_for(self.editor).post(empty, {})
        self.assertEqual(unconfirmed.status_code, 400)
        self.assertIn("Tick the box", unconfirmed.content.decode())
        self.assertTrue(item.trash_path and self.tmp.joinpath(item.trash_path).exists())
        self.assert_csrf_required(self.editor, empty, {"confirm": "1"})
        response = self.client_for(self.editor).post(empty, {"confirm": "1"})
        self.assertRedirects(response, url, fetch_redirect_response=False)
        item.refresh_from_db()
        self.assertEqual((item.state, item.emptied_by), (TrashState.EMPTIED, "erin"))
        row = ActionLog.objects.get(details__op="empty_trash")
        self.assertEqual((row.user_name, row.outcome), ("erin", Outcome.SUCCEEDED))

    def test_restore_of_an_occupied_path_is_refused_with_a_message(self):
        item = self.move_old()
        self.old.mkdir()
        response = self.client_for(self.editor).post(
            reverse("inventory:trash_restore", args=[item.pk]), follow=True
        )
        self.assertIn("Not restored", response.content.decode())
        item.refresh_from_db()
        self.assertEqual(item.state, TrashState.IN_TRASH)

    def test_pages_render_names_escaped(self):
        evil = "<img src=x onerror=alert(1)>"
        folder = self.lib.model("evil")
        self.lib.vllm(evil, folder / "missing")
        self.lib.save()
        run_scan(ACTOR, refresh_backends=False)
        for url in (reverse("inventory:report"), reverse("inventory:reclaim")):
            page = self.client_for(self.editor).get(url).content.decode()
            self.assertNotIn(evil, page)
            self.assertIn("&lt;img src=x onerror=alert(1)&gt;", page)

    def test_nav_link_for_readers_only(self):
        home = reverse("registry:modelentry_list")
        self.assertIn(
            reverse("inventory:report"),
            self.client_for(self.viewer).get(home).content.decode(),
        )
        self.assertNotIn(
            reverse("inventory:report"),
            self.client_for(self.outsider).get(reverse("dashboard")).content.decode(),
        )

    def test_anonymous_is_sent_to_login(self):
        for url in (reverse("inventory:trash"), reverse("inventory:reclaim")):
            response = Client().get(url)
            self.assertEqual(response.status_code, 302)
            self.assertIn("/login/", response["Location"])
