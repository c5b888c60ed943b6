"""Bulk verify / lock / unlock: the service, the confirm page, the batch job, the CLI."""

from __future__ import annotations

from django.urls import reverse

from imageworks_site.cli import main
from registry.audit import Actor
from registry.choices import JobKind, JobStatus
from registry.models import ActionLog, Job, ModelEntry
from registry.services import bulk
from tests.base import BaseTestCase, quiet_request_log
from tests.registry.test_verify import (
    FLORENCE,
    GEMMA,
    SIGLIP,
    TESTMODEL,
    SampleRegistryMixin,
)

BULK = reverse("registry:bulk_action")


class BulkTests(SampleRegistryMixin, BaseTestCase):
    def setUp(self):
        self.setup_registry()

    def pks(self, *names: str) -> list[int]:
        return [ModelEntry.objects.get(name=n).pk for n in names]

    def post(self, user, action: str, *names: str, confirm: bool = False):
        data = {"action": action, "select": self.pks(*names)}
        if confirm:
            data["confirm"] = "yes"
        with self.captureOnCommitCallbacks(execute=True):
            return self.client_for(user).post(BULK, data)

    # --- the plan (confirmation page) ------------------------------------------

    def test_the_plan_reports_every_row_with_its_reason(self):
        entries = ModelEntry.objects.filter(name__in=[FLORENCE, GEMMA, SIGLIP])
        plan = bulk.plan_bulk("lock", entries, Actor.from_user(self.operator))
        states = {i.name: (i.state, i.message) for i in plan.items}
        self.assertEqual(states[FLORENCE][0], bulk.WILL)
        self.assertEqual(states[GEMMA][0], bulk.REFUSED)
        self.assertIn("Ollama", states[GEMMA][1])
        self.assertEqual(states[SIGLIP], (bulk.UNCHANGED, "Already locked."))
        self.assertEqual(plan.actionable, 1)

    def test_the_confirm_page_writes_nothing_and_lists_refusals(self):
        before = self.layer_bytes()
        response = self.post(self.viewer, "verify", FLORENCE, SIGLIP)
        self.assertEqual(response.status_code, 200)
        html = response.content.decode()
        self.assertIn("Verify 2 selected entries?", html)
        self.assertIn("Your role may not verify entries", html)
        self.assertEqual(html.count('data-state="refused"'), 2)
        self.assertIn("disabled", html.split('data-testid="bulk-confirm-button"')[1])
        self.assertEqual(self.layer_bytes(), before)
        self.assertFalse(Job.objects.exists())
        self.assertFalse(ActionLog.objects.exclude(action="sync").exists())

    def test_it_refuses_get_and_needs_csrf(self):
        client = self.client_for(self.operator)
        self.assertEqual(client.get(BULK).status_code, 405)
        from django.test import Client

        strict = Client(enforce_csrf_checks=True)
        strict.force_login(self.operator)
        with quiet_request_log():
            response = strict.post(
                BULK, {"action": "unlock", "select": self.pks(SIGLIP)}
            )
        self.assertEqual(response.status_code, 403)
        self.assertTrue(ModelEntry.objects.get(name=SIGLIP).locked)

    def test_bad_input_gives_a_message_not_an_error(self):
        client = self.client_for(self.operator)
        response = client.post(BULK, {"action": "delete", "select": ["1"]}, follow=True)
        self.assertContains(response, "Unknown bulk action")
        response = client.post(BULK, {"action": "lock", "select": ["x"]}, follow=True)
        self.assertContains(response, "Select at least one row")

    # --- running ---------------------------------------------------------------

    def test_bulk_unlock_runs_as_one_job_audited_per_entry(self):
        response = self.post(self.operator, "unlock", SIGLIP, FLORENCE, confirm=True)
        job = Job.objects.get(kind=JobKind.BULK)
        self.assertRedirects(response, reverse("registry:bulk_progress", args=[job.pk]))
        self.assertEqual(job.status, JobStatus.SUCCEEDED)
        self.assertFalse(ModelEntry.objects.get(name=SIGLIP).locked)
        self.assertFalse(self.discovered(SIGLIP)["version_lock"]["locked"])
        rows = ActionLog.objects.filter(action="unlock").order_by("entry_name")
        self.assertEqual(
            [(r.entry_name, r.user_name, r.outcome) for r in rows],
            [(FLORENCE, "alice", "succeeded"), (SIGLIP, "alice", "succeeded")],
        )
        self.assertTrue(rows.get(entry_name=FLORENCE).details["no_change"])
        self.assertEqual(job.result["counts"], {"done": 1, "unchanged": 1})
        page = self.client_for(self.operator).get(
            reverse("registry:bulk_progress", args=[job.pk])
        )
        self.assertContains(page, f"Unlocked {SIGLIP}")
        self.assertContains(page, "Finished.")

    def test_bulk_verify_queues_one_verify_job_per_entry(self):
        self.post(self.operator, "verify", FLORENCE, TESTMODEL, GEMMA, confirm=True)
        parent = Job.objects.get(kind=JobKind.BULK)
        children = Job.objects.filter(kind=JobKind.VERIFY)
        self.assertEqual(
            sorted(children.values_list("entry_name", flat=True)),
            sorted([FLORENCE, TESTMODEL]),
        )
        self.assertTrue(all(c.status == JobStatus.SUCCEEDED for c in children))
        self.assertTrue(ModelEntry.objects.get(name=FLORENCE).aggregate_sha256)
        # The Ollama tag is reported and audited, not skipped silently.
        refused = ActionLog.objects.get(action="verify", entry_name=GEMMA)
        self.assertEqual(refused.outcome, "failed")
        self.assertEqual(refused.user_name, "alice")
        items = {i["name"]: i for i in bulk.batch_items(parent)}
        self.assertEqual(items[GEMMA]["state"], bulk.REFUSED)
        self.assertEqual(items[FLORENCE]["job"].status, JobStatus.SUCCEEDED)
        page = self.client_for(self.viewer).get(
            reverse("registry:bulk_progress", args=[parent.pk]), HTTP_HX_REQUEST="true"
        )
        self.assertEqual(page.status_code, 286)  # htmx stops polling: all ended

    def test_permission_is_checked_per_row_when_the_job_runs(self):
        """An editor may ask, but each row is refused, reported and audited."""
        before = self.layer_bytes()
        self.post(self.editor, "unlock", SIGLIP, confirm=True)
        job = Job.objects.get(kind=JobKind.BULK)
        self.assertEqual(job.result["items"][0]["state"], bulk.REFUSED)
        self.assertTrue(ModelEntry.objects.get(name=SIGLIP).locked)
        self.assertEqual(self.layer_bytes(), before)
        row = ActionLog.objects.get(action="unlock")
        self.assertEqual((row.user_name, row.outcome), ("erin", "failed"))
        self.assertIn("may not unlock", row.message)

    def test_bulk_lock_verifies_first_when_needed(self):
        self.post(self.operator, "lock", FLORENCE, confirm=True)
        florence = ModelEntry.objects.get(name=FLORENCE)
        self.assertTrue(florence.locked)
        self.assertEqual(florence.expected_sha256, florence.aggregate_sha256)

    # --- the CLI -----------------------------------------------------------------

    def test_cli_bulk_unlock_and_dry_run(self):
        import io
        from contextlib import redirect_stderr, redirect_stdout

        out = io.StringIO()
        with redirect_stdout(out), redirect_stderr(io.StringIO()) as err:
            code = main(["bulk", "lock", FLORENCE, GEMMA, "no-such", "--dry-run"])
        self.assertEqual(code, 1)
        self.assertIn(f"{FLORENCE}\twill\t", out.getvalue())
        self.assertIn(f"{GEMMA}\trefused\t", out.getvalue())
        self.assertIn("Model 'no-such' not found", err.getvalue())
        self.assertFalse(ModelEntry.objects.get(name=FLORENCE).locked)

        out = io.StringIO()
        with redirect_stdout(out):
            code = main(["bulk", "unlock", SIGLIP, FLORENCE])
        self.assertEqual(code, 0, out.getvalue())
        self.assertIn(f"{SIGLIP}\tdone\tUnlocked {SIGLIP}", out.getvalue())
        self.assertFalse(ModelEntry.objects.get(name=SIGLIP).locked)
        row = ActionLog.objects.get(action="unlock", entry_name=SIGLIP)
        self.assertEqual(row.source, "cli")


class BulkCancelTests(SampleRegistryMixin, BaseTestCase):
    def setUp(self):
        self.setup_registry()

    def test_a_cancelled_batch_stops_and_says_which_entries_did_not_run(self):
        from registry.jobs import cancel, run_job

        entries, _ = bulk.resolve_entries(names=[SIGLIP, FLORENCE])
        job = bulk.start_bulk("unlock", entries, Actor.from_user(self.operator))
        cancel(job)  # before a worker picks it up
        run_job(job.pk)
        job.refresh_from_db()
        self.assertEqual(job.status, JobStatus.CANCELLED)
        self.assertTrue(ModelEntry.objects.get(name=SIGLIP).locked)
        items = bulk.batch_items(job)
        self.assertEqual(
            [i["message"] for i in items], ["Not run: the batch ended first."] * 2
        )

    def test_a_batch_cancelled_while_running_stops_before_the_next_entry(self):
        from registry.jobs import JobCancelled, cancel

        entries, _ = bulk.resolve_entries(names=[SIGLIP, "internvl2-8b_(AWQ)"])
        self.assertEqual(len(entries), 2)
        job = bulk.start_bulk("unlock", entries, Actor.from_user(self.operator))
        Job.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING)
        with self.assertRaises(JobCancelled):
            bulk.run_bulk(
                "unlock",
                entries,
                Actor.from_user(self.operator),
                background=True,
                job=job,
                on_item=lambda _i, _item: cancel(job),
            )
        self.assertFalse(ModelEntry.objects.get(name=SIGLIP).locked)
        self.assertTrue(ModelEntry.objects.get(name="internvl2-8b_(AWQ)").locked)
