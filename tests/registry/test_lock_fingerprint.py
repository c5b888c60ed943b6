"""The lock records a fast fingerprint of the model files (size + mtime per file) and
activation preflight compares it (issue 13 §2); a clean verify of the locked files
records them again, so preflight's advice ("run Verify") really clears the drift."""

from __future__ import annotations

import os

from django.test import TestCase

from backends.vllm.preflight import CheckId, Status, run_preflight
from registry.audit import Actor
from registry.fingerprint import FINGERPRINT_KEY
from registry.models import ActionLog
from registry.services import verify
from tests.registry.test_verify import FLORENCE, SIGLIP, SampleRegistryMixin

ACTOR = Actor.system("tester")


class LockFingerprintTests(SampleRegistryMixin, TestCase):
    def setUp(self):
        self.setup_registry()

    def fingerprint_check(self, name):
        return run_preflight(self.entry(name)).get(CheckId.FINGERPRINT)

    def test_lock_records_the_fingerprint_and_preflight_catches_a_change(self):
        name = FLORENCE
        self.assertEqual(self.fingerprint_check(name).status, Status.SKIP)  # unlocked

        verify.lock(name, ACTOR)

        recorded = self.discovered(name)["version_lock"][FINGERPRINT_KEY]
        config = self.model_dir(name) / "config.json"
        st = config.stat()
        self.assertEqual(recorded["files"]["config.json"], [st.st_size, st.st_mtime_ns])
        row = ActionLog.objects.filter(action="lock").first()
        self.assertEqual(row.details["fingerprint_files"], len(recorded["files"]))
        self.assertEqual(self.fingerprint_check(name).status, Status.OK)

        os.utime(config)  # touched: same bytes, new mtime
        check = self.fingerprint_check(name)
        self.assertEqual(check.status, Status.FAIL)
        self.assertIn(
            "Files changed since the lock (changed: config.json)", check.message
        )
        self.assertIn("Run Verify", check.fix)

        verify.verify(name, ACTOR)  # records the expected hash: these are the files

        self.assertEqual(self.fingerprint_check(name).status, Status.OK)

    def test_an_older_lock_gets_its_fingerprint_from_a_clean_verify_only(self):
        # SIGLIP is locked to an expected hash in the sample, from before fingerprints.
        check = self.fingerprint_check(SIGLIP)
        self.assertEqual(
            check.message, "no fingerprint was recorded when it was locked"
        )
        verify.lock(SIGLIP, ACTOR)  # re-locking does not accept unverified files
        self.assertEqual(self.fingerprint_check(SIGLIP).status, Status.SKIP)

        verify.verify(SIGLIP, ACTOR)  # the files hash to the locked version

        self.assertEqual(self.fingerprint_check(SIGLIP).status, Status.OK)
        before = self.discovered(SIGLIP)["version_lock"][FINGERPRINT_KEY]
        config = self.model_dir(SIGLIP) / "config.json"
        config.write_text(config.read_text() + "\n")
        with self.assertRaises(verify.LockViolation):
            verify.verify(SIGLIP, ACTOR)
        self.assertEqual(
            self.discovered(SIGLIP)["version_lock"][FINGERPRINT_KEY], before
        )
        self.assertEqual(self.fingerprint_check(SIGLIP).status, Status.FAIL)
