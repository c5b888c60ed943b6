"""Reclaim plans, the trash, restore and empty against real folders."""

from __future__ import annotations

import json
import os
import shutil
from datetime import timedelta
from unittest import mock

from django.test import TestCase, override_settings
from django.utils import timezone

from backends.models import Activation
from inventory import trash
from inventory.choices import TrashState
from inventory.models import TrashItem
from inventory.services import reclaim, run_scan
from registry import layers
from registry.audit import Actor
from registry.choices import Action, Outcome
from registry.models import ActionLog, ModelEntry
from tests.inventory.helpers import LibraryMixin

ACTOR = Actor.system("tests")


def key(name: str) -> str:
    return f"entry:{ModelEntry.objects.get(name=name).pk}"


class ReclaimTestCase(LibraryMixin, TestCase):
    def setUp(self):
        super().setUp()
        lib = self.lib
        self.old = lib.model("org/old", size=30_000)
        self.keep = lib.model("org/keep", size=10_000)
        self.locked = lib.model("org/locked", size=5_000)
        self.twin = lib.model("org/twin", size=8_000)
        self.orphan = lib.model("stray/orphan", size=4_000)
        lib.vllm("old", self.old)
        lib.vllm("keep", self.keep)
        lib.vllm("locked", self.locked)
        lib.vllm("twin-a", self.twin)
        lib.vllm("twin-b", self.twin)  # two entries on one folder
        lib.vllm("nested", self.keep / "sub")  # a folder inside "keep"
        (self.keep / "sub").mkdir()
        (self.keep / "sub" / "config.json").write_text("{}")
        lib.ollama("tag", "qwen3:8b")
        lib.save()
        for d in lib.discovered:
            if d["name"] == "locked":
                d["version_lock"] = {"locked": True}
        lib.save()
        run_scan(ACTOR, refresh_backends=False)

    def curated(self, name: str) -> dict:
        items = json.loads((self.lib.registry_dir / layers.CURATED_FILE).read_text())
        return next(i for i in items if i["name"] == name)


class PlanTests(ReclaimTestCase):
    def test_a_plan_says_what_is_freed_and_why_others_are_refused(self):
        Activation.objects.create(
            logical_name="keep", served_model_id="keep", state="running", port=1
        )
        plan = reclaim.build_plan(
            [key(n) for n in ("old", "keep", "locked", "tag", "twin-a")]
            + ["entry:999999", f"folder:{self.orphan}"]
        )
        items = {i.label: i for i in plan.items}
        self.assertEqual(items["old"].refused, "")
        self.assertEqual(
            items["old"].trash_dir, str(self.lib.root / ".imageworks-trash")
        )
        self.assertEqual(items["keep"].refused, "Active: vLLM activation is Active")
        self.assertEqual(
            items["locked"].refused, "Locked (version lock): unlock it first"
        )
        self.assertIn("ollama rm", items["tag"].refused)
        self.assertIn(
            "Would break twin-b uses the same folder", items["twin-a"].refused
        )
        self.assertEqual(items[str(self.orphan)].refused, "")
        self.assertEqual(plan.unknown, ["entry:999999"])
        # old: 30,000 + two 2-byte files; the orphan: 4,000 + 4.
        self.assertEqual(plan.freed_bytes, 30_004 + 4_004)
        self.assertEqual(len(plan.movable), 2)

    def test_selecting_every_user_of_a_folder_makes_it_movable(self):
        plan = reclaim.build_plan([key("twin-a"), key("twin-b")])
        movable = plan.movable
        self.assertEqual(len(movable), 1)
        self.assertEqual(sorted(movable[0].entry_names), ["twin-a", "twin-b"])
        self.assertEqual(plan.freed_bytes, 8_004)
        # A nested entry's folder moves with its parent, but the parent alone breaks it.
        alone = reclaim.build_plan([key("keep")])
        self.assertIn("nested uses a folder inside it", alone.items[0].refused)
        both = reclaim.build_plan([key("keep"), key("nested")])
        self.assertEqual([i.label for i in both.movable], ["keep"])
        self.assertEqual(sorted(both.movable[0].entry_names), ["keep", "nested"])

    def test_hard_links_and_symlinks_into_a_folder(self):
        os.link(self.old / "model.safetensors", self.keep / "shared.safetensors")
        os.symlink(self.old / "config.json", self.twin / "borrowed.json")
        run_scan(ACTOR, refresh_backends=False)
        plan = reclaim.build_plan([key("old")])
        item = plan.items[0]
        # The weights stay on disk (linked from "keep"); twin-a/b would lose a file.
        self.assertEqual(item.freed_bytes, 4)
        self.assertEqual(plan.freed_bytes, 0)  # refused: nothing moves
        self.assertIn("shares files with keep", " ".join(item.references))
        self.assertIn("twin-a has symlinks into it", item.refused)

    def test_without_a_scan_everything_is_refused(self):
        from inventory.models import ScanRun

        ScanRun.objects.all().delete()
        plan = reclaim.build_plan([key("old"), f"folder:{self.orphan}"])
        self.assertEqual(plan.movable, [])
        self.assertTrue(all("scan" in i.refused for i in plan.items))

    def test_trash_outside_the_roots_or_on_another_filesystem_is_refused(self):
        with override_settings(IMAGEWORKS_TRASH_DIR=str(self.tmp / "elsewhere")):
            plan = reclaim.build_plan([key("old")])
        self.assertIn("outside the model roots", plan.items[0].refused)
        real = trash._device

        def device(path):
            return 99 if "imageworks-trash" in path else real(path)

        with mock.patch("inventory.trash._device", side_effect=device):
            plan = reclaim.build_plan([key("old")])
        self.assertIn("another filesystem", plan.items[0].refused)

    def test_suggestions_unused_for_n_days(self):
        long_ago = timezone.now() - timedelta(days=200)
        ModelEntry.objects.update(created=long_ago)
        Activation.objects.create(
            logical_name="keep",
            served_model_id="keep",
            state="stopped",
            port=1,
            started_at=timezone.now() - timedelta(days=2),
        )
        rows = {c.entry.name: c for c in reclaim.candidates(days=90)}
        self.assertNotIn("tag", rows)  # no folder of its own
        self.assertTrue(rows["old"].suggested)
        self.assertFalse(rows["keep"].suggested)  # activated two days ago
        self.assertFalse(rows["locked"].suggested)
        self.assertEqual(rows["locked"].blocked, "locked")
        self.assertEqual(
            rows["keep"].last_used.date(), (timezone.now() - timedelta(days=2)).date()
        )


class ExecuteRestoreEmptyTests(ReclaimTestCase):
    def execute(self, keys):
        plan = reclaim.build_plan(keys)
        return reclaim.execute(keys, ACTOR, plan.digest)

    def test_execute_moves_by_rename_marks_deprecated_and_audits(self):
        inode = os.stat(self.old / "model.safetensors").st_ino
        result = self.execute([key("old"), key("locked")])
        self.assertEqual(len(result.moved), 1)
        self.assertEqual(
            result.refused, [("locked", "Locked (version lock): unlock it first")]
        )
        item = result.moved[0]
        self.assertFalse(self.old.exists())
        moved = os.path.join(item.trash_path, "model.safetensors")
        self.assertEqual(os.stat(moved).st_ino, inode)  # renamed, not copied
        manifest = trash.read_manifest(item.item_dir)
        self.assertEqual(manifest["original_path"], str(self.old))
        self.assertEqual(manifest["entries"], ["old"])
        self.assertEqual(manifest["deprecated_by_us"], ["old"])
        self.assertTrue(ModelEntry.objects.get(name="old").deprecated)
        self.assertIs(self.curated("old")["deprecated"], True)
        rows = ActionLog.objects.filter(action=Action.RECONCILE, details__op="reclaim")
        self.assertEqual(
            sorted((r.entry_name, r.outcome) for r in rows),
            [("locked", Outcome.FAILED), ("old", Outcome.SUCCEEDED)],
        )
        self.assertTrue(
            ActionLog.objects.filter(action=Action.EDIT, entry_name="old").exists()
        )

    def test_a_changed_plan_is_refused_and_nothing_moves(self):
        plan = reclaim.build_plan([key("old")])
        entry = ModelEntry.objects.get(name="old")
        entry.locked = True
        entry.save()
        with self.assertRaises(reclaim.PlanChanged):
            reclaim.execute([key("old")], ACTOR, plan.digest)
        self.assertTrue(self.old.exists())
        self.assertFalse(TrashItem.objects.exists())

    def test_restore_moves_back_and_clears_the_deprecation(self):
        item = self.execute([key("old")]).moved[0]
        reclaim.restore(item, ACTOR)
        self.assertTrue((self.old / "model.safetensors").exists())
        self.assertFalse(os.path.exists(item.item_dir))
        item.refresh_from_db()
        self.assertEqual(item.state, TrashState.RESTORED)
        self.assertFalse(ModelEntry.objects.get(name="old").deprecated)
        self.assertIs(self.curated("old")["deprecated"], False)
        row = ActionLog.objects.get(details__op="restore")
        self.assertEqual(row.outcome, Outcome.SUCCEEDED)

    def test_restore_refuses_an_occupied_path(self):
        item = self.execute([key("old")]).moved[0]
        self.old.mkdir()
        (self.old / "new.txt").write_text("someone put something here")
        with self.assertRaises(reclaim.RestoreRefused) as ctx:
            reclaim.restore(item, ACTOR)
        self.assertIn("exists again", str(ctx.exception))
        self.assertEqual(
            (self.old / "new.txt").read_text(), "someone put something here"
        )
        self.assertTrue(os.path.isdir(item.trash_path))
        item.refresh_from_db()
        self.assertEqual(item.state, TrashState.IN_TRASH)
        self.assertEqual(
            ActionLog.objects.get(details__op="restore").outcome, Outcome.FAILED
        )

    def test_empty_deletes_only_our_items_for_good(self):
        item = self.execute([key("old"), f"folder:{self.orphan}"]).moved
        self.assertEqual(len(item), 2)
        # A folder someone else put in the trash folder is never touched.
        stranger = self.lib.root / ".imageworks-trash" / "not-ours"
        stranger.mkdir()
        done, freed, problems = reclaim.empty_trash(
            list(TrashItem.objects.all()), ACTOR
        )
        self.assertEqual((done, freed, problems), (2, 30_004 + 4_004, []))
        self.assertTrue(stranger.exists())
        self.assertEqual(os.listdir(self.lib.root / ".imageworks-trash"), ["not-ours"])
        self.assertEqual(
            ActionLog.objects.filter(
                details__op="empty_trash", outcome=Outcome.SUCCEEDED
            ).count(),
            2,
        )
        # Emptied items cannot be restored or emptied again.
        again = reclaim.empty_trash(list(TrashItem.objects.all()), ACTOR)
        self.assertEqual(again[0], 0)
        with self.assertRaises(reclaim.RestoreRefused):
            reclaim.restore(TrashItem.objects.first(), ACTOR)

    def test_a_lost_database_finds_its_way_back_from_the_manifests(self):
        item = self.execute([key("old")]).moved[0]
        TrashItem.objects.all().delete()
        found = reclaim.sync_trash(ACTOR)
        self.assertEqual(len(found["adopted"]), 1)
        adopted = TrashItem.objects.get()
        self.assertEqual(adopted.original_path, str(self.old))
        self.assertEqual(adopted.item_dir, item.item_dir)
        reclaim.restore(adopted, ACTOR)
        self.assertTrue(self.old.exists())
        self.assertFalse(ModelEntry.objects.get(name="old").deprecated)

    def test_a_folder_removed_from_the_trash_outside_the_site_is_marked_lost(self):
        item = self.execute([key("old")]).moved[0]
        shutil.rmtree(item.item_dir)
        self.assertEqual(reclaim.sync_trash(ACTOR)["lost"], 1)
        item.refresh_from_db()
        self.assertEqual(item.state, TrashState.LOST)

    def test_delete_item_refuses_folders_without_our_manifest(self):
        folder = self.lib.root / ".imageworks-trash" / "x"
        folder.mkdir(parents=True)
        with self.assertRaises(trash.TrashError):
            trash.delete_item(str(folder), [str(self.lib.root / ".imageworks-trash")])
        with self.assertRaises(trash.TrashError):
            trash.delete_item(
                str(self.keep), [str(self.lib.root / ".imageworks-trash")]
            )
        self.assertTrue(folder.exists() and self.keep.exists())
