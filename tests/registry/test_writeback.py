"""Write-back: file-first changes, conflicts between writers, crashes, audit rows.

Other processes are real ``python`` subprocesses that write through
``registry.layers.write_layer_entries`` (what the CLI and the site do under the
hood, without a database), so the test database stays out of the children.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from django.test import TestCase, override_settings

from registry import layers
from registry.audit import ACTIONS_FILE, Actor
from registry.choices import Action, Outcome
from registry.models import ActionLog, EntryChange, ModelEntry
from registry.services.sync import sync_registry
from registry.services.writeback import EntryConflict, EntryNotFound, change_entry
from tests.utils import FIXTURES_DIR, REPO_DIR, shared_fixtures_available

FILES = (layers.CURATED_FILE, layers.DISCOVERED_FILE, layers.SNAPSHOT_FILE)

# A writer process: waits for the go file, then writes one entry with an expected
# fingerprint and prints "ok" or "conflict".
WRITER = r"""
import json, sys, time
from pathlib import Path
from registry import layers
folder, layer, name, value, fingerprint, go = sys.argv[1:7]
registry = layers.load_registry(folder)
raw = dict(registry.entries[name].curated or {"name": name})
raw["display_name"] = value
print("ready", flush=True)
while not Path(go).exists():
    time.sleep(0.001)
try:
    layers.write_layer_entries(folder, layer, {name: raw}, expected={name: fingerprint})
except layers.ConflictError:
    print("conflict", flush=True)
else:
    print("ok", flush=True)
"""

# A writer that flips one entry between two versions forever (killed by the test).
FLIPPER = r"""
import sys
from registry import layers
folder, name = sys.argv[1:3]
versions = ["version-x", "version-y"]
print("ready", flush=True)
i = 0
while True:
    raw = {"name": name, "backend": "vllm", "display_name": versions[i % 2]}
    layers.write_layer_entries(folder, "curated", {name: raw}, keep_backups=3)
    i += 1
"""


def _entry(name: str, **extra) -> dict:
    return {"name": name, "backend": "vllm", **extra}


def _python(script: str, *args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_DIR)}
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=REPO_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


class WritebackTestBase(TestCase):
    def setUp(self):
        super().setUp()
        self.tmp = Path(tempfile.mkdtemp(prefix="writeback-test-"))
        self.dir = self.tmp / "configs"
        self.dir.mkdir()
        self.staging = self.tmp / "_staging"
        override = override_settings(
            IMAGEWORKS_REGISTRY_DIR=self.dir, IMAGEWORKS_STAGING_DIR=self.staging
        )
        override.enable()
        self.addCleanup(override.disable)
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.actor = Actor.system("tester", source="web")

    def write(self, file_name: str, items) -> None:
        (self.dir / file_name).write_text(json.dumps(items, indent=2) + "\n")

    def snapshot_bytes(self) -> dict[str, bytes]:
        return {
            p.name: p.read_bytes()
            for p in sorted(self.dir.iterdir())
            if p.is_file() and p.name != layers.LOCK_FILE
        }

    def small_registry(self) -> None:
        self.write(
            layers.CURATED_FILE,
            [
                _entry("alpha", display_name="Alpha"),
                _entry("beta", display_name="Beta"),
            ],
        )
        self.write(layers.DISCOVERED_FILE, [_entry("alpha"), _entry("beta")])
        sync_registry(self.actor)

    def set_display(self, name: str, value: str, **kw):
        return change_entry(
            self.actor,
            Action.EDIT,
            name,
            layers.CURATED,
            lambda raw: {**raw, "display_name": value},
            **kw,
        )


class RoundTripTests(WritebackTestBase):
    def test_no_change_save_leaves_every_file_byte_identical(self):
        if not shared_fixtures_available():
            self.skipTest("shared fixtures not available")
        for name in FILES:
            shutil.copy(FIXTURES_DIR / name, self.dir / name)
        sync_registry(self.actor)
        before = self.snapshot_bytes()
        for row in ModelEntry.objects.all():
            for layer in (layers.CURATED, layers.DISCOVERED):
                if row.curated_raw if layer == layers.CURATED else row.discovered_raw:
                    result = change_entry(
                        self.actor,
                        Action.EDIT,
                        row.name,
                        layer,
                        lambda raw: raw,
                        expected_fingerprint=row.fingerprint,
                    )
                    self.assertFalse(result.changed)
                    self.assertFalse(result.write.changed)
                    self.assertIsNone(result.write.backup_path)
        self.assertEqual(self.snapshot_bytes(), before)

    def test_edit_writes_only_the_right_layer_and_keeps_a_backup(self):
        self.small_registry()
        discovered = (self.dir / layers.DISCOVERED_FILE).read_bytes()
        row = ModelEntry.objects.get(name="alpha")
        result = self.set_display(
            "alpha", "Alpha (edited)", expected_fingerprint=row.fingerprint
        )
        self.assertEqual(
            result.changes,
            [
                {
                    "path": "display_name",
                    "op": "changed",
                    "before": "Alpha",
                    "after": "Alpha (edited)",
                }
            ],
        )
        self.assertEqual((self.dir / layers.DISCOVERED_FILE).read_bytes(), discovered)
        self.assertTrue(result.write.backup_path.exists())
        row.refresh_from_db()
        self.assertEqual(row.display_name, "Alpha (edited)")
        self.assertNotEqual(row.fingerprint, result.write.fingerprints["alpha"] + "x")
        self.assertEqual(row.fingerprint, result.write.fingerprints["alpha"])
        snapshot = json.loads((self.dir / layers.SNAPSHOT_FILE).read_text())
        self.assertEqual(
            {e["name"]: e["display_name"] for e in snapshot}["alpha"], "Alpha (edited)"
        )

    def test_unknown_entry(self):
        self.small_registry()
        with self.assertRaises(EntryNotFound) as ctx:
            self.set_display("nope", "x")
        self.assertEqual(str(ctx.exception), "Model 'nope' not found in registry")
        self.assertEqual(ActionLog.objects.first().outcome, Outcome.FAILED)


class ConflictTests(WritebackTestBase):
    def _race(self, names: list[str], fingerprints: list[str]) -> list[str]:
        go = self.tmp / "go"
        procs = [
            _python(
                WRITER,
                str(self.dir),
                layers.CURATED,
                name,
                f"writer-{i}",
                fingerprint,
                str(go),
            )
            for i, (name, fingerprint) in enumerate(
                zip(names, fingerprints, strict=True)
            )
        ]
        for proc in procs:
            line = proc.stdout.readline().strip()
            if line != "ready":
                proc.kill()
                self.fail(f"writer did not start: {proc.communicate()[1]}")
        go.touch()
        outcomes = []
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            self.assertEqual(proc.returncode, 0, err)
            outcomes.append(out.strip())
        return outcomes

    def test_two_processes_same_entry_same_fingerprint_one_wins(self):
        self.small_registry()
        fp = ModelEntry.objects.get(name="alpha").fingerprint
        outcomes = self._race(["alpha", "alpha"], [fp, fp])
        self.assertEqual(sorted(outcomes), ["conflict", "ok"])
        winner = f"writer-{outcomes.index('ok')}"
        curated = json.loads((self.dir / layers.CURATED_FILE).read_text())
        self.assertEqual(
            {e["name"]: e["display_name"] for e in curated}["alpha"], winner
        )
        # The site then syncs the winner's change and sees it in the history.
        sync_registry(self.actor)
        self.assertEqual(ModelEntry.objects.get(name="alpha").display_name, winner)

    def test_different_entries_never_conflict(self):
        self.small_registry()
        fps = [ModelEntry.objects.get(name=n).fingerprint for n in ("alpha", "beta")]
        outcomes = self._race(["alpha", "beta"], fps)
        self.assertEqual(outcomes, ["ok", "ok"])
        curated = {
            e["name"]: e["display_name"]
            for e in json.loads((self.dir / layers.CURATED_FILE).read_text())
        }
        self.assertEqual(curated, {"alpha": "writer-0", "beta": "writer-1"})

    def test_site_edit_after_outside_edit_gets_a_conflict(self):
        self.small_registry()
        fp = ModelEntry.objects.get(name="alpha").fingerprint

        def mutate(raw):
            # Another tool writes between our read and our write.
            layers.write_layer_entries(
                self.dir,
                layers.CURATED,
                {"alpha": {**raw, "display_name": "outside"}},
            )
            return {**raw, "display_name": "site"}

        with self.assertRaises(EntryConflict) as ctx:
            change_entry(
                self.actor,
                Action.EDIT,
                "alpha",
                layers.CURATED,
                mutate,
                expected_fingerprint=fp,
            )
        self.assertIn("Nothing was written", str(ctx.exception))
        self.assertIn("display_name", str(ctx.exception))
        curated = json.loads((self.dir / layers.CURATED_FILE).read_text())
        self.assertEqual(curated[0]["display_name"], "outside")
        self.assertEqual(
            ActionLog.objects.get(action=Action.EDIT).outcome, Outcome.FAILED
        )
        # The write caught up with the outside change first, as its own sync row.
        sync_row = ActionLog.objects.filter(action=Action.SYNC).first()
        self.assertIn("1 changed", sync_row.message)
        self.assertEqual(ModelEntry.objects.get(name="alpha").display_name, "outside")

    def test_stale_fingerprint_after_sync_is_a_conflict(self):
        self.small_registry()
        stale = ModelEntry.objects.get(name="alpha").fingerprint
        self.set_display("alpha", "first")
        with self.assertRaises(EntryConflict) as ctx:
            self.set_display("alpha", "second", expected_fingerprint=stale)
        self.assertEqual(ctx.exception.changed_by, "tester")
        self.assertEqual(ModelEntry.objects.get(name="alpha").display_name, "first")

    def test_blind_reapply_without_fingerprint_never_loses_the_outside_edit(self):
        self.small_registry()
        calls = []

        def mutate(raw):
            if not calls:
                layers.write_layer_entries(
                    self.dir,
                    layers.CURATED,
                    {"alpha": {**raw, "roles": ["caption"]}},
                )
            calls.append(raw)
            return {**raw, "display_name": "site"}

        change_entry(self.actor, Action.EDIT, "alpha", layers.CURATED, mutate)
        self.assertEqual(len(calls), 2)  # retried on the newest version
        row = ModelEntry.objects.get(name="alpha")
        self.assertEqual((row.display_name, row.roles), ("site", ["caption"]))


class FailureTests(WritebackTestBase):
    def test_read_only_file(self):
        self.small_registry()
        path = self.dir / layers.CURATED_FILE
        before = self.snapshot_bytes()
        path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        self.addCleanup(path.chmod, 0o644)
        with self.assertRaises(layers.RegistryWriteError) as ctx:
            self.set_display("alpha", "nope")
        self.assertIn("read-only", str(ctx.exception))
        self.assertIn(layers.CURATED_FILE, str(ctx.exception))
        self.assertEqual(self.snapshot_bytes(), before)
        row = ActionLog.objects.first()
        self.assertEqual((row.action, row.outcome), (Action.EDIT, Outcome.FAILED))
        self.assertIn("read-only", row.message)

    def test_one_audit_row_per_service_call_and_the_staging_mirror(self):
        self.small_registry()
        start = ActionLog.objects.count()
        with self.settings(IMAGEWORKS_ACTION_LOG_KEEP=3):
            self.set_display("alpha", "one")
            self.set_display("alpha", "one")  # no change: still one row
            self.set_display("beta", "two")
            with self.assertRaises(EntryConflict):
                self.set_display("beta", "three", expected_fingerprint="0" * 64)
            with self.assertRaises(EntryNotFound):
                self.set_display("gamma", "x")
        self.assertEqual(ActionLog.objects.count(), start + 5)
        mirror = json.loads((self.staging / ACTIONS_FILE).read_text())
        latest = list(ActionLog.objects.order_by("-time", "-pk")[:3])
        self.assertEqual([m["id"] for m in mirror], [r.pk for r in reversed(latest)])
        self.assertEqual(mirror[-1]["status"], "failed")
        self.assertEqual(mirror[-1]["model"], "gamma")


class CrashInjectionTests(WritebackTestBase):
    def test_kill_9_at_random_points_leaves_old_or_new_files(self):
        name = "crashy"
        self.write(layers.CURATED_FILE, [_entry(name, display_name="version-x")])
        self.write(layers.DISCOVERED_FILE, [_entry(name)])
        # The two possible contents of each file, produced by the same code path.
        valid: dict[str, set[bytes]] = {
            layers.CURATED_FILE: set(),
            layers.SNAPSHOT_FILE: set(),
        }
        for version in ("version-y", "version-x"):
            layers.write_layer_entries(
                self.dir,
                layers.CURATED,
                {name: _entry(name, display_name=version)},
                keep_backups=3,
            )
            for file_name in valid:
                valid[file_name].add((self.dir / file_name).read_bytes())
        discovered = (self.dir / layers.DISCOVERED_FILE).read_bytes()
        rng = random.Random(1234)
        deadline = time.monotonic() + 20
        trials = 0
        while trials < 30 and time.monotonic() < deadline:
            proc = _python(FLIPPER, str(self.dir), name)
            self.assertEqual(proc.stdout.readline().strip(), "ready")
            time.sleep(rng.uniform(0.0, 0.15))
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
            trials += 1
            for file_name, contents in valid.items():
                data = (self.dir / file_name).read_bytes()
                json.loads(data)
                self.assertIn(data, contents, f"trial {trials}: {file_name} torn")
            self.assertEqual(
                (self.dir / layers.DISCOVERED_FILE).read_bytes(), discovered
            )
            registry = layers.load_registry(self.dir)
            self.assertEqual(list(registry.entries), [name])
            self.assertEqual(registry.problems, [])
        self.assertGreaterEqual(trials, 10)
        # Leftover temp files never count as layers; backups are whole files.
        for path in self.dir.iterdir():
            if path.name.endswith(".tmp"):
                self.assertTrue(path.name.startswith("."), path.name)
            elif path.name.endswith(".bak.json"):
                json.loads(path.read_bytes())
        sync = sync_registry(self.actor)
        self.assertTrue(sync.ok)
        self.assertEqual(
            list(ModelEntry.objects.values_list("name", flat=True)), [name]
        )


class SpliceFastPathTests(WritebackTestBase):
    """change_entry on a mirror that matches the files: splice + one-row update, with
    the same files, row, history and audit as the full path."""

    def registry(self) -> None:
        from tests.registry.test_layers import sample_entry

        self.write(
            layers.CURATED_FILE,
            [_entry(f"m{i}", display_name=f"Curated {i}") for i in range(0, 6, 2)],
        )
        self.write(layers.DISCOVERED_FILE, [sample_entry(f"m{i}") for i in range(6)])
        registry = layers.load_registry(self.dir)
        (self.dir / layers.SNAPSHOT_FILE).write_bytes(
            layers.dumps(layers.export_merged(registry))
        )
        sync_registry(self.actor)

    def test_fast_edit_matches_a_full_rewrite_and_resync(self):
        from unittest import mock

        from registry.services.sync import SYNCED_FIELDS

        self.registry()
        other = self.tmp / "other"
        shutil.copytree(self.dir, other)
        row = ModelEntry.objects.get(name="m2")
        with mock.patch.object(
            layers, "write_layer_entries", side_effect=AssertionError("full path")
        ):
            res = self.set_display("m2", "Edited", expected_fingerprint=row.fingerprint)
        layers.write_layer_entries(
            other,
            layers.CURATED,
            {"m2": {**row.curated_raw, "display_name": "Edited"}},
            expected={"m2": row.fingerprint},
        )
        for name in FILES:
            self.assertEqual(
                (self.dir / name).read_bytes(), (other / name).read_bytes(), name
            )
        self.assertIsNotNone(res.write.backup_path)
        self.assertEqual(res.sync.changed, ["m2"])
        self.assertEqual(ActionLog.objects.filter(action=Action.EDIT).count(), 1)
        history = EntryChange.objects.get(pk__in=res.sync.history_ids)
        self.assertEqual(history.action, res.action)
        self.assertEqual([c["path"] for c in history.changes], ["display_name"])
        # The mirror now says what a full re-read says: a forced sync changes nothing.
        fast_row = ModelEntry.objects.get(name="m2")
        self.assertEqual(fast_row.display_name, "Edited")
        self.assertEqual(fast_row.version, row.version + 1)
        full = sync_registry(self.actor, force=True)
        self.assertEqual((full.changed, full.added, full.removed), ([], [], []))
        again = ModelEntry.objects.get(name="m2")
        for name in SYNCED_FIELDS:
            if name != "synced_at":
                self.assertEqual(getattr(again, name), getattr(fast_row, name), name)
        # ... and the recorded signatures let the next write take the fast path too.
        self.assertTrue(files_unchanged_now())
        with mock.patch.object(
            layers, "write_layer_entries", side_effect=AssertionError("full path")
        ):
            self.set_display("m4", "Edited 4")

    def test_stale_snapshot_takes_the_full_path(self):
        self.registry()
        layers.atomic_write(
            self.dir / layers.SNAPSHOT_FILE, b"[]\n", keep_backups=0
        )  # another tool's stale snapshot
        sync_registry(self.actor)
        res = self.set_display("m2", "Edited")
        self.assertIsNone(res.write.snapshot_error)
        registry = layers.load_registry(self.dir)
        self.assertEqual(
            (self.dir / layers.SNAPSHOT_FILE).read_bytes(),
            layers.dumps(layers.export_merged(registry)),
        )
        # The full path re-synced: now the fast path is allowed again.
        from registry.services.sync import mirror_state

        self.assertIsNotNone(mirror_state("m2"))

    def test_edit_after_an_outside_rewrite_catches_up_then_splices(self):
        """A download tool rewrote the discovered layer (and the snapshot) since the
        last sync: the edit first records that change as a sync of its own, then
        splices; no whole-file rewrite, and nothing of either change is lost."""
        from unittest import mock

        self.registry()
        registry = layers.load_registry(self.dir)
        discovered = [
            {**item, "download_size_bytes": 4242} if item["name"] == "m3" else item
            for item in registry.discovered.items
        ]
        layers.atomic_write(
            self.dir / layers.DISCOVERED_FILE, layers.dumps(discovered), keep_backups=0
        )
        registry = layers.load_registry(self.dir)
        layers.atomic_write(
            self.dir / layers.SNAPSHOT_FILE,
            layers.dumps(layers.export_merged(registry)),
            keep_backups=0,
        )
        row = ModelEntry.objects.get(name="m2")
        with mock.patch.object(
            layers, "write_layer_entries", side_effect=AssertionError("full path")
        ):
            res = self.set_display("m2", "Edited", expected_fingerprint=row.fingerprint)
        self.assertEqual(res.sync.changed, ["m2"])
        caught_up = ActionLog.objects.filter(action=Action.SYNC).first()
        self.assertIn("1 changed", caught_up.message)
        self.assertEqual(EntryChange.objects.get(action=caught_up).entry_name, "m3")
        self.assertEqual(ModelEntry.objects.get(name="m3").download_size_bytes, 4242)
        self.assertEqual(ModelEntry.objects.get(name="m2").display_name, "Edited")
        registry = layers.load_registry(self.dir)
        self.assertEqual(registry.entries["m3"].merged["download_size_bytes"], 4242)
        self.assertEqual(registry.entries["m2"].merged["display_name"], "Edited")
        self.assertEqual(
            (self.dir / layers.SNAPSHOT_FILE).read_bytes(),
            layers.dumps(layers.export_merged(registry)),
        )

    def test_outside_edit_same_size_is_a_conflict_not_a_lost_update(self):
        self.registry()
        row = ModelEntry.objects.get(name="m2")
        path = self.dir / layers.CURATED_FILE
        info = path.stat()
        data = path.read_bytes().replace(b"Curated 2", b"Curated X")
        path.write_bytes(data)
        os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))  # same size and mtime
        with self.assertRaises(EntryConflict):
            self.set_display("m2", "Edited", expected_fingerprint=row.fingerprint)
        self.assertEqual(path.read_bytes(), data)


def files_unchanged_now() -> bool:
    from registry.services.sync import files_unchanged

    return files_unchanged()


class BackupPruningTests(WritebackTestBase):
    """Issue 15 item 10: every write keeps a backup, the last IMAGEWORKS_BACKUPS_KEEP
    per layer file stay; hand-made backups are never touched."""

    def backups(self, stem: str) -> list[str]:
        return sorted(
            p.name
            for p in self.dir.iterdir()
            if p.name.startswith(stem) and p.name.endswith(".bak.json")
        )

    def test_only_the_last_n_backups_per_layer_stay(self):
        self.small_registry()
        hand_made = self.dir / "model_registry.curated.20251022-175925.bak.json"
        hand_made.write_text("[]\n")
        with override_settings(IMAGEWORKS_BACKUPS_KEEP=3):
            for i in range(6):
                self.set_display("alpha", f"Alpha {i}")
        curated = [
            n for n in self.backups("model_registry.curated.") if n != hand_made.name
        ]
        self.assertEqual(len(curated), 3)
        self.assertTrue(hand_made.exists())
        # The newest backup holds the state before the last write.
        newest = json.loads((self.dir / curated[-1]).read_text())
        names = {item["name"]: item for item in newest}
        self.assertEqual(names["alpha"]["display_name"], "Alpha 4")
        self.assertEqual(self.backups("model_registry.discovered."), [])
