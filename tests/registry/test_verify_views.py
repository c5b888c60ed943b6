"""Verify / Lock / Unlock views: permissions, htmx partials, audit rows, refusals."""

from __future__ import annotations

import json

from django.test import Client
from django.urls import reverse

from registry.choices import JobStatus
from registry.models import ActionLog, Job, ModelEntry
from tests.base import BaseTestCase, PermissionMatrixMixin
from tests.registry.test_verify import (
    FLORENCE,
    GEMMA,
    SIGLIP,
    SampleRegistryMixin,
)

HTMX = {"HTTP_HX_REQUEST": "true"}


class VerifyViewTests(SampleRegistryMixin, PermissionMatrixMixin, BaseTestCase):
    def setUp(self):
        self.setup_registry()

    def url(self, action: str, name: str) -> str:
        return reverse(f"registry:entry_{action}", args=[self.entry(name).pk])

    # --- permissions -------------------------------------------------------------

    def test_verify_permission_matrix(self):
        with self.captureOnCommitCallbacks(execute=True):
            self.assert_post_matrix(
                self.url("verify", FLORENCE),
                allowed=[self.operator, self.admin],
                forbidden=[self.viewer, self.editor, self.outsider],
            )
        users = set(
            ActionLog.objects.filter(action="verify").values_list(
                "user_name", flat=True
            )
        )
        # root's POST came while alice's job was still queued (jobs start on commit):
        # refused with a message, so only alice's verify ran.
        self.assertEqual(users, {"alice"})

    def test_lock_and_unlock_permission_matrix(self):
        before = self.layer_bytes()
        for user in (self.viewer, self.editor, self.outsider):
            self.assert_forbidden(user, self.url("lock", FLORENCE), "post")
            self.assert_forbidden(user, self.url("unlock", SIGLIP), "post")
        self.assertEqual(self.layer_bytes(), before, "refused requests wrote nothing")
        self.assertFalse(ActionLog.objects.exclude(action="sync").exists())
        with self.captureOnCommitCallbacks(execute=True):
            self.assert_post_matrix(
                self.url("lock", FLORENCE),
                allowed=[self.operator],
                forbidden=[self.viewer, self.editor, self.outsider],
            )
        self.assertTrue(self.entry(FLORENCE).locked)
        self.assert_post_matrix(
            self.url("unlock", FLORENCE),
            allowed=[self.operator2],
            forbidden=[self.viewer, self.editor, self.outsider],
        )
        self.assertFalse(self.entry(FLORENCE).locked)
        rows = ActionLog.objects.filter(action__in=["lock", "unlock"])
        self.assertEqual(
            sorted(rows.values_list("action", "user_name", "outcome")),
            [("lock", "alice", "succeeded"), ("unlock", "bob", "succeeded")],
        )

    def test_panel_get_requires_view_permission(self):
        url = reverse("registry:entry_verify_panel", args=[self.entry(FLORENCE).pk])
        self.assert_get_matrix(
            url, allowed=[self.viewer, self.operator], forbidden=[self.outsider]
        )

    # --- verify ------------------------------------------------------------------

    def status(self, job: Job):
        """What the polling job-status partial answers (as a viewer)."""
        return self.client_for(self.viewer).get(
            reverse("registry:job_status", args=[job.pk]), **HTMX
        )

    def test_htmx_verify_returns_the_polled_job_status_then_entry_changed(self):
        client = self.client_for(self.operator)
        with self.captureOnCommitCallbacks(execute=True):
            response = client.post(self.url("verify", FLORENCE), **HTMX)
            # The job runs after the commit (in a worker); the response polls it.
            self.assertEqual(response.status_code, 200)
            job = Job.objects.get(kind="verify")
            self.assertContains(response, f'id="job-{job.pk}"')
            self.assertContains(response, f'hx-get="/jobs/{job.pk}/status/"')
            self.assertNotIn("HX-Trigger", response)
        job.refresh_from_db()
        self.assertEqual(job.status, JobStatus.SUCCEEDED, job.error)
        response = self.status(job)
        self.assertEqual(response.status_code, 286)  # stop polling
        self.assertContains(response, "Succeeded", status_code=286)
        self.assertEqual(
            json.loads(response["HX-Trigger"]),
            {"entryChanged": {"pk": self.entry(FLORENCE).pk}},
        )
        entry = self.entry(FLORENCE)
        self.assertEqual(entry.last_verified_by, "alice")
        log = ActionLog.objects.get(action="verify")
        self.assertEqual(
            (log.user_name, log.outcome, log.job_id), ("alice", "succeeded", job.pk)
        )

    def test_a_second_verify_of_the_same_entry_is_refused(self):
        Job.objects.create(
            kind="verify",
            entry_name=FLORENCE,
            entry=self.entry(FLORENCE),
            status=JobStatus.RUNNING,
            user_name="bob",
        )
        response = self.client_for(self.operator).post(
            self.url("verify", FLORENCE), **HTMX
        )
        self.assertContains(
            response, f"A verify job is already running for {FLORENCE} by bob."
        )
        self.assertEqual(Job.objects.filter(kind="verify").count(), 1)
        # Without JS: a redirect with the same message.
        response = self.client_for(self.operator).post(
            self.url("verify", FLORENCE), follow=True
        )
        self.assertContains(response, "A verify job is already running")
        # A different entry is fine.
        with self.captureOnCommitCallbacks(execute=True):
            self.client_for(self.operator).post(self.url("verify", SIGLIP), **HTMX)
        self.assertEqual(Job.objects.get(entry_name=SIGLIP).status, JobStatus.SUCCEEDED)

    def test_a_lock_violation_fails_the_job_and_keeps_the_lock(self):
        (self.model_dir(SIGLIP) / "config.json").write_text("{}")
        before = self.layer_bytes()
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client_for(self.operator).post(
                self.url("verify", SIGLIP), **HTMX
            )
        self.assertEqual(response.status_code, 200)
        response = self.status(Job.objects.get(kind="verify"))
        self.assertContains(response, "Lock violation: expected", status_code=286)
        self.assertContains(response, "changed: config.json", status_code=286)
        self.assertEqual(self.layer_bytes(), before)
        self.assertTrue(self.entry(SIGLIP).locked)
        log = ActionLog.objects.get(action="verify")
        self.assertEqual((log.outcome, log.user_name), ("failed", "alice"))

    def test_ollama_entry_is_refused_with_the_reason(self):
        response = self.client_for(self.operator).post(
            self.url("verify", GEMMA), **HTMX
        )
        self.assertContains(response, "Verify does not apply to Ollama tags")
        self.assertFalse(Job.objects.exists())

    # --- lock / unlock -----------------------------------------------------------

    def test_lock_without_a_current_verify_runs_verify_then_lock(self):
        with self.captureOnCommitCallbacks(execute=True):
            response = self.client_for(self.operator).post(
                self.url("lock", FLORENCE), **HTMX
            )
            self.assertContains(response, "it is locked when the hash is recorded")
            self.assertContains(response, 'hx-trigger="every 1s"')  # job shown
        entry = self.entry(FLORENCE)
        self.assertTrue(entry.locked)
        self.assertEqual(entry.expected_sha256, entry.aggregate_sha256)
        response = self.panel(self.operator, FLORENCE)
        self.assertContains(response, "</span> Locked</span>")
        self.assertContains(response, 'data-testid="unlock-button"')
        disc = self.discovered(FLORENCE)["version_lock"]
        self.assertEqual(disc["locked"], True)
        self.assertEqual(disc["expected_aggregate_sha256"], entry.aggregate_sha256)

    def test_verify_then_lock_needs_the_verify_permission_too(self):
        from django.contrib.auth.models import Permission

        from tests.base import make_user, quiet_request_log

        locker = make_user("lena", "viewer")
        locker.user_permissions.add(Permission.objects.get(codename="lock_entry"))
        with quiet_request_log():
            response = self.client_for(locker).post(self.url("lock", FLORENCE), **HTMX)
        self.assertEqual(response.status_code, 403)
        self.assertFalse(Job.objects.exists())
        self.assertFalse(self.entry(FLORENCE).locked)

    def test_lock_after_verify_is_immediate_and_unlock_keeps_expected(self):
        with self.captureOnCommitCallbacks(execute=True):
            self.client_for(self.operator).post(self.url("verify", FLORENCE), **HTMX)
        jobs = Job.objects.count()
        response = self.client_for(self.operator).post(
            self.url("lock", FLORENCE), **HTMX
        )
        self.assertEqual(Job.objects.count(), jobs, "no second hash")
        self.assertContains(response, f"Locked {FLORENCE}")
        expected = self.entry(FLORENCE).expected_sha256
        self.assertTrue(expected)
        response = self.client_for(self.operator).post(
            self.url("unlock", FLORENCE), **HTMX
        )
        self.assertContains(response, f"Unlocked {FLORENCE}")
        self.assertContains(response, "</span> Unlocked</span>")
        self.assertEqual(self.entry(FLORENCE).expected_sha256, expected)

    # --- the drawer slot ---------------------------------------------------------

    def panel(self, user, name):
        url = reverse("registry:entry_verify_panel", args=[self.entry(name).pk])
        return self.client_for(user).get(url, **HTMX)

    def test_viewers_see_state_and_disabled_buttons_with_the_reason(self):
        response = self.panel(self.viewer, SIGLIP)
        self.assertContains(response, "</span> Locked</span>")
        self.assertContains(response, self.entry(SIGLIP).aggregate_sha256[:12])
        # One rule for actions a role may not do: shown disabled, with the reason.
        self.assertContains(response, 'data-reason="Verifying needs the operator role"')
        self.assertContains(response, 'data-reason="Locking needs the operator role"')
        self.assertNotContains(response, "hx-post")  # nothing to submit
        self.assertNotContains(response, "<dialog")

    def test_operators_see_buttons_dialog_with_cli_and_shortcut(self):
        response = self.panel(self.operator, FLORENCE)
        self.assertContains(response, "Verify hash")
        self.assertContains(response, 'data-shortcut="lock"')
        self.assertContains(response, 'data-open-dialog="lock-dialog-')
        self.assertContains(
            response,
            "imageworks-models lock &#x27;florence-2-large_(FP16)&#x27; --set-expected",
        )
        self.assertContains(response, "entryChanged from:body")
        response = self.panel(self.operator, SIGLIP)
        self.assertContains(response, "imageworks-models unlock")
        self.assertContains(response, "Lock gate:")

    def test_ollama_buttons_disabled_with_the_reason(self):
        response = self.panel(self.operator, GEMMA)
        self.assertContains(
            response, 'disabled data-reason="Verify does not apply to Ollama tags'
        )
        self.assertContains(response, "Lock does not apply to Ollama tags")

    def test_without_js_the_forms_post_and_redirect(self):
        client = Client()
        client.force_login(self.operator)
        with self.captureOnCommitCallbacks(execute=True):
            response = client.post(self.url("verify", FLORENCE))
        job = Job.objects.get(kind="verify")
        self.assertRedirects(
            response, job.get_absolute_url(), fetch_redirect_response=False
        )
        self.assertTrue(ModelEntry.objects.get(name=FLORENCE).aggregate_sha256)
