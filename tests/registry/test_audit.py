"""The audit log: one row per service call, failures recorded, mirrored for old tools."""

import json
from pathlib import Path

from django.conf import settings
from django.test import override_settings

from registry.audit import ACTIONS_FILE, Actor, audited, record
from registry.choices import Action, Outcome
from registry.models import ActionLog
from tests.base import BaseTestCase


class AuditTests(BaseTestCase):
    def test_audited_writes_one_row_with_the_outcome_and_duration(self):
        with audited(
            Actor.from_user(self.operator), Action.LOCK, entry_name="m1"
        ) as audit:
            audit.message = "Locked m1"
        row = ActionLog.objects.get()
        self.assertEqual(
            (row.user_name, row.action, row.outcome, row.message),
            ("alice", "lock", "succeeded", "Locked m1"),
        )
        self.assertEqual(row.user, self.operator)
        self.assertIsNotNone(row.duration_ms)
        self.assertIsNotNone(row.finished_at)

    def test_an_exception_is_recorded_as_a_failure_and_re_raised(self):
        with (
            self.assertRaises(PermissionError),
            audited(Actor.cli(), Action.EDIT, entry_name="m1"),
        ):
            raise PermissionError("Registry file is read-only")
        row = ActionLog.objects.get()
        self.assertEqual(row.outcome, Outcome.FAILED)
        self.assertEqual(row.message, "Registry file is read-only")
        self.assertEqual(row.source, "cli")

    def test_rows_are_mirrored_to_the_staging_file_bounded(self):
        with override_settings(IMAGEWORKS_ACTION_LOG_KEEP=3):
            for i in range(5):
                record(Actor.system(), Action.SYNC, message=f"sync {i}")
        data = json.loads(
            (Path(settings.IMAGEWORKS_STAGING_DIR) / ACTIONS_FILE).read_text()
        )
        self.assertEqual([d["summary"] for d in data], ["sync 2", "sync 3", "sync 4"])
        self.assertEqual(data[-1]["operator"], "system")

    def test_the_username_survives_the_users_deletion(self):
        record(Actor.from_user(self.viewer), Action.EXPORT)
        self.viewer.delete()
        row = ActionLog.objects.get()
        self.assertIsNone(row.user)
        self.assertEqual(row.user_name, "vera")
