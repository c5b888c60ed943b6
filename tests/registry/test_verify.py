"""Verify / lock / unlock services, their jobs, and the lock gate (registry.services.verify)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from django.db import connection
from django.test import TestCase, TransactionTestCase, override_settings

from registry import layers
from registry.audit import Actor
from registry.choices import JobKind, JobStatus
from registry.jobs import JobConflict, enqueue
from registry.models import ActionLog, Job, ModelEntry
from registry.sample import write_sample_registry
from registry.services import verify
from registry.services.sync import sync_registry
from tests.base import make_user

WORKED_EXAMPLE = "7ed51db01fdb1084a86b11fd077237e1c2393185c799786f4611afe67d0bca08"
SIGLIP = "siglip-large-patch16-384_(FP32)"
FLORENCE = "florence-2-large_(FP16)"
TESTMODEL = "testmodel-alpha"
GEMMA = "gemma3_27.0b_(Q3_K_M)"
HOUR_AGO = time.time() - 3600


class SampleRegistryMixin:
    """A fresh sample registry (layer files + small model folders) per test."""

    def setup_registry(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="iw-verify-"))
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.registry_dir = self.tmp / "configs"
        self.models_dir = self.tmp / "models"
        self.enterContext(
            override_settings(
                IMAGEWORKS_REGISTRY_DIR=self.registry_dir,
                IMAGEWORKS_STAGING_DIR=self.tmp / "_staging",
                IMAGEWORKS_MODEL_ROOTS=[],
            )
        )
        write_sample_registry(self.registry_dir, self.models_dir, force=True)
        self.age_model_files()
        sync_registry(Actor.system("test"), force=True)

    def age_model_files(self, when: float = HOUR_AGO) -> None:
        """Models are downloaded long before they are verified."""
        for path in self.models_dir.rglob("*"):
            if path.is_file():
                os.utime(path, (when, when))

    def model_dir(self, name: str) -> Path:
        return Path(ModelEntry.objects.get(name=name).model_dir)

    def layer_bytes(self) -> dict[str, bytes]:
        return {
            f: (self.registry_dir / f).read_bytes()
            for f in (layers.CURATED_FILE, layers.DISCOVERED_FILE, layers.SNAPSHOT_FILE)
        }

    def tree_bytes(self, folder: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }

    def discovered(self, name: str) -> dict:
        items = json.loads((self.registry_dir / layers.DISCOVERED_FILE).read_text())
        return next(item for item in items if item["name"] == name)

    def entry(self, name: str) -> ModelEntry:
        return ModelEntry.objects.get(name=name)


class VerifyServiceTests(SampleRegistryMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.alice = make_user("alice", "operator")

    def setUp(self):
        self.setup_registry()
        self.actor = Actor.from_user(self.alice)

    def test_worked_example_from_the_reference(self):
        curated_before = (self.registry_dir / layers.CURATED_FILE).read_bytes()
        outcome = verify.verify(TESTMODEL, self.actor)
        self.assertEqual(outcome.aggregate_sha256, WORKED_EXAMPLE)
        self.assertEqual(outcome.files, 2)
        disc = self.discovered(TESTMODEL)
        self.assertEqual(disc["artifacts"]["aggregate_sha256"], WORKED_EXAMPLE)
        self.assertEqual(
            disc["artifacts"]["files"],
            [
                {
                    "path": "config.json",
                    "sha256": "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                },
                {
                    "path": "weights.bin",
                    "sha256": "b5d4045c3f466fa91fe2cc6abe79232a1a57cdf104f7a26e716e0a1e2789df78",
                },
            ],
        )
        stamp = disc["version_lock"]["last_verified"]
        self.assertRegex(stamp, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$")
        self.assertEqual(outcome.as_json()["last_verified"], stamp)
        # Lock state is dynamic: the curated file is untouched (reference 2.5).
        self.assertEqual(
            (self.registry_dir / layers.CURATED_FILE).read_bytes(), curated_before
        )
        row = self.entry(TESTMODEL)
        self.assertEqual(row.aggregate_sha256, WORKED_EXAMPLE)
        self.assertEqual(row.last_verified, stamp)
        self.assertEqual(row.last_verified_by, "alice")
        self.assertIsNotNone(row.last_verified_at)
        log = ActionLog.objects.get(action="verify")
        self.assertEqual((log.outcome, log.user_name), ("succeeded", "alice"))
        self.assertIn(WORKED_EXAMPLE[:12], log.message)
        self.assertEqual(log.details["actual"], WORKED_EXAMPLE)
        self.assertEqual(log.details["layer"], "discovered")

    def test_the_stored_aggregate_of_a_locked_sample_is_reproduced(self):
        expected = self.entry(SIGLIP).expected_sha256
        outcome = verify.verify(SIGLIP, self.actor)
        self.assertEqual(outcome.aggregate_sha256, expected)
        self.assertTrue(outcome.locked)

    def test_lock_then_verify_then_verify_again_passes(self):
        # The original fails the second verify (it switches algorithm); we must not.
        self.assertFalse(self.entry(FLORENCE).locked)
        first = verify.lock(FLORENCE, self.actor, set_expected=True)
        self.assertIsNotNone(first.verified)  # never verified before: hashed first
        row = self.entry(FLORENCE)
        self.assertTrue(row.locked)
        self.assertEqual(row.expected_sha256, first.verified.aggregate_sha256)
        a = verify.verify(FLORENCE, self.actor)
        b = verify.verify(FLORENCE, self.actor)
        self.assertEqual(a.aggregate_sha256, row.expected_sha256)
        self.assertEqual(b.aggregate_sha256, row.expected_sha256)
        self.assertEqual(self.discovered(FLORENCE)["version_lock"]["locked"], True)
        self.assertFalse(
            ActionLog.objects.filter(outcome="failed").exists(),
            ActionLog.objects.filter(outcome="failed").values_list("message"),
        )

    def test_lock_reuses_a_current_verify_and_unlock_keeps_the_expected_hash(self):
        v = verify.verify(FLORENCE, self.actor)
        out = verify.lock(FLORENCE, self.actor, set_expected=True)
        self.assertIsNone(out.verified)  # files unchanged since: no second hash
        self.assertEqual(out.expected_sha256, v.aggregate_sha256)
        self.assertEqual(
            ActionLog.objects.filter(action="verify").count(), 1, "no re-hash"
        )
        verify.unlock(FLORENCE, self.actor)
        row = self.entry(FLORENCE)
        self.assertFalse(row.locked)
        self.assertEqual(row.expected_sha256, v.aggregate_sha256)
        self.assertEqual(
            self.discovered(FLORENCE)["version_lock"]["expected_aggregate_sha256"],
            v.aggregate_sha256,
        )
        self.assertEqual(
            list(
                ActionLog.objects.exclude(action="sync").values_list(
                    "action", flat=True
                )
            ),
            ["unlock", "lock", "verify"],
        )

    def test_lock_of_an_already_locked_entry_changes_nothing(self):
        before = self.layer_bytes()
        out = verify.lock(SIGLIP, self.actor, set_expected=True)
        self.assertIn("already locked", out.message)
        self.assertEqual(self.layer_bytes(), before)

    def test_locked_without_expected_verify_seeds_it_like_the_original(self):
        verify.lock(FLORENCE, self.actor)  # no --set-expected: no hash
        self.assertEqual(self.entry(FLORENCE).expected_sha256, "")
        out = verify.verify(FLORENCE, self.actor)
        self.assertTrue(out.seeded_expected)
        self.assertEqual(self.entry(FLORENCE).expected_sha256, out.aggregate_sha256)
        self.assertEqual(
            self.discovered(FLORENCE)["version_lock"]["expected_aggregate_sha256"],
            out.aggregate_sha256,
        )

    def test_a_changed_byte_in_any_file_is_a_lock_violation_naming_that_file(self):
        folder = self.model_dir(SIGLIP)
        expected = self.entry(SIGLIP).expected_sha256
        names = sorted(self.tree_bytes(folder))
        self.assertEqual(names, [".gitattributes", "config.json", "model.safetensors"])
        for rel in names:
            with self.subTest(file=rel):
                target = folder / rel
                original = target.read_bytes()
                changed = bytearray(original)
                changed[len(changed) // 2] ^= 0x01
                target.write_bytes(bytes(changed))
                files_before = self.tree_bytes(folder)
                layers_before = self.layer_bytes()
                row_before = self.entry(SIGLIP)
                with self.assertRaises(verify.LockViolation) as info:
                    verify.verify(SIGLIP, self.actor)
                exc = info.exception
                self.assertEqual(exc.expected, expected)
                self.assertNotEqual(exc.actual, expected)
                self.assertEqual(exc.diff.changed, [rel])
                self.assertTrue(
                    str(exc).startswith(f"Lock violation: expected {expected} got")
                )
                self.assertIn(f"(changed: {rel})", str(exc))
                # Nothing written: not the model files, not the layers, not the lock.
                self.assertEqual(self.tree_bytes(folder), files_before)
                self.assertEqual(self.layer_bytes(), layers_before)
                row = self.entry(SIGLIP)
                self.assertTrue(row.locked)
                self.assertEqual(row.expected_sha256, expected)
                self.assertEqual(row.aggregate_sha256, row_before.aggregate_sha256)
                self.assertEqual(row.last_verified, row_before.last_verified)
                log = ActionLog.objects.filter(action="verify").first()
                self.assertEqual(log.outcome, "failed")
                self.assertEqual(log.details["expected"], expected)
                self.assertEqual(log.details["actual"], exc.actual)
                self.assertEqual(log.details["changed_files"], [rel])
                self.assertIn("Lock violation", log.message)
                target.write_bytes(original)
        # Restored: verifies again.
        self.assertEqual(verify.verify(SIGLIP, self.actor).aggregate_sha256, expected)

    def test_added_and_removed_files_are_listed(self):
        folder = self.model_dir(SIGLIP)
        (folder / "extra.bin").write_bytes(b"x")
        (folder / ".gitattributes").unlink()
        with self.assertRaises(verify.LockViolation) as info:
            verify.verify(SIGLIP, self.actor)
        self.assertIn("added: extra.bin; removed: .gitattributes", str(info.exception))

    def test_missing_directory_is_a_clear_failure(self):
        folder = self.model_dir(FLORENCE)
        shutil.rmtree(folder)
        before = self.layer_bytes()
        with self.assertRaisesMessage(
            verify.ModelFilesMissing, f"model files not found at {folder}"
        ):
            verify.verify(FLORENCE, self.actor)
        self.assertEqual(self.layer_bytes(), before)
        log = ActionLog.objects.get(action="verify")
        self.assertEqual(log.outcome, "failed")
        self.assertIn("model files not found", log.message)

    def test_ollama_tags_do_not_apply(self):
        with self.assertRaisesMessage(
            verify.NotApplicable,
            "Verify does not apply to Ollama tags (no local files)",
        ):
            verify.verify(GEMMA, self.actor)
        with self.assertRaises(verify.NotApplicable):
            verify.lock(GEMMA, self.actor, set_expected=True)

    def test_verify_and_lock_of_an_unchanged_registry_parse_no_layer_file(self):
        """The files are as the last sync left them: the mirror row is their content.
        (A 10,000-entry registry is ~230 MB of JSON: parsed per verify, it took 2-3 s
        of CPU from every page of a small host.)"""
        from unittest import mock

        from registry.layers import load

        with mock.patch.object(load, "read_layer", wraps=load.read_layer) as read:
            verified = verify.verify(FLORENCE, self.actor)
            locked = verify.lock(FLORENCE, self.actor, set_expected=True)
        self.assertEqual(read.call_count, 0)
        self.assertEqual(locked.expected_sha256, verified.aggregate_sha256)
        self.assertTrue(self.discovered(FLORENCE)["version_lock"]["locked"])

    def test_the_mirror_stands_in_for_the_layers_without_a_snapshot(self):
        """No snapshot yet (a fresh registry): reading one entry still parses nothing,
        and gives what a full read of the layers gives."""
        from unittest import mock

        from registry.layers import load
        from registry.services.writeback import current_layers

        (self.registry_dir / layers.SNAPSHOT_FILE).unlink()
        sync_registry(Actor.system("test"))
        with mock.patch.object(load, "read_layer", wraps=load.read_layer) as read:
            current = current_layers(FLORENCE, self.actor)
        self.assertEqual(read.call_count, 0)
        full = layers.load_registry(self.registry_dir).entries[FLORENCE]
        self.assertEqual(current.merged, full.merged)
        self.assertEqual(current.fingerprint, full.fingerprint)

    def test_verify_follows_another_tools_move_and_records_it_as_a_sync(self):
        """Another tool moved the model and rewrote the layers (not the snapshot)
        since the last sync: the verify hashes the new folder, and the change it caught
        up on is a sync by the operator, before the verify's own row."""
        old = self.model_dir(FLORENCE)
        new = self.tmp / "moved" / old.name
        new.parent.mkdir()
        shutil.move(old, new)
        for file_name in (layers.CURATED_FILE, layers.DISCOVERED_FILE):
            path = self.registry_dir / file_name
            path.write_bytes(
                path.read_bytes().replace(str(old).encode(), str(new).encode())
            )
        outcome = verify.verify(FLORENCE, self.actor)
        self.assertEqual(outcome.model_dir, str(new))
        self.assertEqual(self.model_dir(FLORENCE), new)
        self.assertEqual(
            self.discovered(FLORENCE)["artifacts"]["aggregate_sha256"],
            outcome.aggregate_sha256,
        )
        rows = ActionLog.objects.filter(user_name="alice").order_by("pk")
        self.assertEqual(
            [row.action for row in rows], ["sync", "repair", "verify"]
        )  # the repair: the other tool left the snapshot behind
        self.assertIn("1 changed", rows[0].message)
        self.assertEqual(rows[2].outcome, "succeeded")

    def test_unknown_name(self):
        with self.assertRaisesMessage(verify.EntryNotFound, "not found"):
            verify.verify("nope", self.actor)
        self.assertEqual(ActionLog.objects.get(action="verify").outcome, "failed")

    def test_model_roots_refuse_paths_outside(self):
        elsewhere = self.tmp / "elsewhere"
        elsewhere.mkdir()
        with override_settings(IMAGEWORKS_MODEL_ROOTS=[str(elsewhere)]):
            with self.assertRaises(verify.OutsideModelRoots) as info:
                verify.verify(TESTMODEL, self.actor)
            self.assertIn(str(elsewhere), str(info.exception))
            self.assertIn("outside the allowed model roots", str(info.exception))
        with override_settings(
            IMAGEWORKS_MODEL_ROOTS=[str(elsewhere), str(self.models_dir)]
        ):
            self.assertEqual(
                verify.verify(TESTMODEL, self.actor).aggregate_sha256, WORKED_EXAMPLE
            )

    def test_a_symlink_escaping_the_roots_is_refused(self):
        link = self.models_dir / "link-out"
        outside = self.tmp / "outside"
        shutil.copytree(self.model_dir(TESTMODEL), outside)
        link.symlink_to(outside)
        with (
            override_settings(IMAGEWORKS_MODEL_ROOTS=[str(self.models_dir)]),
            self.assertRaises(verify.OutsideModelRoots),
        ):
            verify.check_model_root(link)

    def test_cli_equivalents_are_shell_quoted(self):
        self.assertEqual(
            verify.cli_command("lock", FLORENCE),
            "imageworks-models lock 'florence-2-large_(FP16)' --set-expected",
        )
        self.assertEqual(
            verify.cli_command("verify", "a b"), "imageworks-models verify 'a b'"
        )


class VerifyJobTests(SampleRegistryMixin, TestCase):
    @classmethod
    def setUpTestData(cls):
        cls.alice = make_user("alice", "operator")

    def setUp(self):
        self.setup_registry()
        self.actor = Actor.from_user(self.alice)

    def run_job(self, name: str, **params):
        with self.captureOnCommitCallbacks(execute=True):
            job = enqueue(
                JobKind.VERIFY, actor=self.actor, entry=self.entry(name), params=params
            )
        job.refresh_from_db()
        return job

    def test_progress_reaches_100_percent_and_the_job_succeeds(self):
        job = self.run_job(FLORENCE)
        self.assertEqual(job.status, JobStatus.SUCCEEDED, job.error)
        self.assertEqual(job.progress, 1.0)
        self.assertEqual(job.data["bytes_done"], job.data["bytes_total"])
        self.assertGreater(job.data["bytes_total"], 80_000)
        self.assertIn("rate_bps", job.data)
        self.assertEqual(
            job.result["aggregate_sha256"], self.entry(FLORENCE).aggregate_sha256
        )
        log = ActionLog.objects.get(action="verify")
        self.assertEqual((log.job_id, log.user_name), (job.pk, "alice"))

    def test_a_violation_fails_the_job_with_both_hashes(self):
        cfg = self.model_dir(SIGLIP) / "config.json"
        cfg.write_text('{"architectures": ["Changed"]}')
        job = self.run_job(SIGLIP)
        self.assertEqual(job.status, JobStatus.FAILED)
        self.assertTrue(job.error.startswith("Lock violation: expected "))
        self.assertIn("(changed: config.json)", job.error)
        self.assertEqual(job.data["bytes_done"], job.data["bytes_total"])

    def test_missing_files_fail_the_job(self):
        shutil.rmtree(self.model_dir(FLORENCE))
        job = self.run_job(FLORENCE)
        self.assertEqual(job.status, JobStatus.FAILED)
        self.assertIn("model files not found at", job.error)

    def test_verify_then_lock_job(self):
        job = self.run_job(FLORENCE, then_lock=True)
        self.assertEqual(job.status, JobStatus.SUCCEEDED, job.error)
        row = self.entry(FLORENCE)
        self.assertTrue(row.locked)
        self.assertEqual(row.expected_sha256, row.aggregate_sha256)
        self.assertTrue(job.result["verified_now"])
        self.assertEqual(
            sorted(ActionLog.objects.filter(job=job).values_list("action", flat=True)),
            ["lock", "verify"],
        )

    def test_same_entry_refused_while_one_runs_other_entries_allowed(self):
        enqueue(
            JobKind.VERIFY,
            actor=self.actor,
            entry=self.entry(FLORENCE),
        )
        enqueue(
            JobKind.VERIFY,
            actor=self.actor,
            entry=self.entry(SIGLIP),
        )
        with self.assertRaisesMessage(
            JobConflict, f"A verify job is already running for {FLORENCE} by alice."
        ):
            enqueue(
                JobKind.VERIFY,
                actor=self.actor,
                entry=self.entry(FLORENCE),
            )
        self.assertEqual(Job.objects.filter(status=JobStatus.QUEUED).count(), 2)


class ConcurrentVerifyTests(SampleRegistryMixin, TransactionTestCase):
    """Real threads: verifies of different entries run at once and both land."""

    def setUp(self):
        self.setup_registry()

    def test_two_entries_verified_concurrently(self):
        actor = Actor.system("tester")
        results: dict[str, object] = {}

        def work(name: str) -> None:
            try:
                results[name] = verify.verify(name, actor)
            except Exception as exc:  # recorded for the assertion below
                results[name] = exc
            finally:
                connection.close()

        threads = [
            threading.Thread(target=work, args=(n,)) for n in (FLORENCE, TESTMODEL)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for name in (FLORENCE, TESTMODEL):
            self.assertIsInstance(results[name], verify.VerifyOutcome, results[name])
            self.assertEqual(
                self.discovered(name)["artifacts"]["aggregate_sha256"],
                results[name].aggregate_sha256,
            )
        self.assertEqual(
            ActionLog.objects.filter(action="verify", outcome="succeeded").count(), 2
        )


class LockGateTests(SampleRegistryMixin, TestCase):
    def setUp(self):
        self.setup_registry()
        self.actor = Actor.system("tester")

    def test_unlocked_and_ollama_entries_pass(self):
        self.assertTrue(verify.lock_gate(self.entry(FLORENCE)).ok)
        self.assertEqual(verify.lock_gate(self.entry(FLORENCE)).reason, "Not locked")
        verify.lock(GEMMA, self.actor)  # plain lock is allowed (original behaviour)
        self.assertTrue(verify.lock_gate(self.entry(GEMMA)).ok)

    def test_files_newer_than_the_recorded_verify_fail_until_verified(self):
        # The sample's recorded verify (2026-11-01) predates nothing here: age files after.
        row = self.entry(SIGLIP)
        later = row.last_verified_at.timestamp() + 3600
        self.age_model_files(later)
        gate = verify.lock_gate(row)
        self.assertFalse(gate.ok)
        self.assertIn("Locked hash not verified since files changed on", gate.reason)
        self.assertIn("— run Verify", gate.reason)
        verify.verify(SIGLIP, self.actor)
        gate = verify.lock_gate(self.entry(SIGLIP))
        self.assertTrue(gate.ok, gate.reason)

    def test_verified_and_unchanged_passes_then_a_touched_file_fails(self):
        verify.lock(FLORENCE, self.actor, set_expected=True)
        self.assertTrue(verify.lock_gate(self.entry(FLORENCE)).ok)
        cfg = self.model_dir(FLORENCE) / "config.json"
        future = time.time() + 5
        os.utime(cfg, (future, future))
        gate = verify.lock_gate(self.entry(FLORENCE))
        self.assertFalse(gate.ok)
        self.assertIn("(config.json)", gate.reason)

    def test_added_file_missing_dir_and_mismatch_fail(self):
        verify.lock(FLORENCE, self.actor, set_expected=True)
        folder = self.model_dir(FLORENCE)
        extra = folder / "new.bin"
        extra.write_bytes(b"1")
        os.utime(extra, (HOUR_AGO, HOUR_AGO))
        gate = verify.lock_gate(self.entry(FLORENCE))
        self.assertFalse(gate.ok)
        self.assertIn("added: new.bin", gate.reason)
        extra.unlink()
        row = self.entry(FLORENCE)
        row.aggregate_sha256 = "0" * 64
        gate = verify.lock_gate(row)
        self.assertFalse(gate.ok)
        self.assertIn("the locked hash is", gate.reason)
        shutil.rmtree(folder)
        gate = verify.lock_gate(self.entry(FLORENCE))
        self.assertFalse(gate.ok)
        self.assertIn("not found", gate.reason)

    def test_never_verified(self):
        row = self.entry(FLORENCE)
        row.locked, row.expected_sha256, row.aggregate_sha256 = True, "a" * 64, ""
        gate = verify.lock_gate(row)
        self.assertFalse(gate.ok)
        self.assertIn("never been verified", gate.reason)
