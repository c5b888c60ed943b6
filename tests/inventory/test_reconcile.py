"""The scan service end to end: real folders, real registry files, the fake Ollama."""

from __future__ import annotations

import json
import os
import shutil

from django.test import TestCase, override_settings

from inventory import sources
from inventory.choices import FindingKind, UsageState
from inventory.models import EntryUsage, Finding, ScanRun
from inventory.services import backend_totals, disk_usage_by_entry, fixes, run_scan
from registry import layers
from registry.audit import Actor
from registry.choices import Action, Outcome
from registry.models import ActionLog, ModelEntry
from tests.fakes.fake_ollama import FakeOllama, _digest
from tests.inventory.helpers import LibraryMixin

ACTOR = Actor.system("tests")


def kinds(run: ScanRun) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in run.findings.order_by("kind", "entry_name", "path"):
        out.setdefault(f.kind, []).append(f.entry_name or os.path.basename(f.path))
    return out


class ScanServiceTests(LibraryMixin, TestCase):
    def build(self):
        lib = self.lib
        self.good = lib.model("org/good", size=20_000)
        self.copy = lib.root / "org/good-copy"
        shutil.copytree(self.good, self.copy)  # the same files, stored twice
        self.linked = lib.root / "org/good-linked"
        self.linked.mkdir()
        for name in os.listdir(self.good):
            os.link(self.good / name, self.linked / name)  # the same files, stored once
        lib.folder(
            "org/half",
            {"config.json": "{}", "model.safetensors.incomplete": 500},
        )
        lib.folder("org/empty", {})
        lib.model("stray/orphan", size=7000)
        (lib.root / "org/half/escape").symlink_to("/etc/hostname")
        lib.vllm("good", self.good, artifacts=True)
        lib.vllm("good-copy", self.copy, artifacts=True)
        lib.vllm("good-linked", self.linked, artifacts=True)
        lib.vllm("half", lib.root / "org/half")
        lib.vllm("empty", lib.root / "org/empty")
        lib.vllm("gone", lib.root / "org/gone")
        outside = self.tmp / "elsewhere" / "model"
        outside.mkdir(parents=True)
        (outside / "config.json").write_text("{}")
        lib.vllm("outside", outside)
        lib.save()

    def test_findings_of_every_disk_kind(self):
        self.build()
        run = run_scan(ACTOR, refresh_backends=False)
        self.assertEqual(run.status, "succeeded")
        found = kinds(run)
        self.assertEqual(found[FindingKind.ORPHAN_FOLDER], ["orphan"])
        self.assertEqual(found[FindingKind.PATH_MISSING], ["gone"])
        self.assertEqual(found[FindingKind.PATH_EMPTY], ["empty"])
        self.assertEqual(found[FindingKind.PARTIAL_DOWNLOAD], ["half"])
        self.assertEqual(found[FindingKind.LINK_OUTSIDE], ["half"])
        self.assertEqual(found[FindingKind.OUTSIDE_ROOTS], ["outside"])
        # Pairs with the same verified weights: good/good-copy (stored twice) and
        # good/good-linked, good-copy/good-linked.
        self.assertEqual(
            found[FindingKind.DUPLICATE_FILES],
            ["good-copy", "good-linked", "good-linked"],
        )
        dup = Finding.objects.get(
            kind=FindingKind.DUPLICATE_FILES, entry_name="good-copy"
        )
        self.assertIn("identical copies", dup.message)
        self.assertIn("stored twice", dup.message)
        self.assertEqual(dup.size_bytes, 20_000)
        linked = Finding.objects.get(
            kind=FindingKind.DUPLICATE_FILES,
            entry_name="good-linked",
            details__other="good",
        )
        self.assertIn("already stored once", linked.message)
        self.assertIsNone(linked.size_bytes)
        orphan = Finding.objects.get(kind=FindingKind.ORPHAN_FOLDER)
        self.assertEqual(orphan.size_bytes, 7004)
        self.assertEqual(orphan.fixes, ["import", "reclaim"])
        # One audit row for the scan, as the operator.
        row = ActionLog.objects.filter(action=Action.RECONCILE).get()
        self.assertEqual(row.details["op"], "scan")
        self.assertEqual(row.outcome, Outcome.SUCCEEDED)
        self.assertIn("findings", row.message)

    def test_disk_use_per_entry_and_per_backend(self):
        self.build()
        run_scan(ACTOR, refresh_backends=False)
        by_name = {
            ModelEntry.objects.get(pk=pk).name: u
            for pk, u in disk_usage_by_entry().items()
        }
        good, linked, copy = (
            by_name["good"],
            by_name["good-linked"],
            by_name["good-copy"],
        )
        self.assertEqual(good.size_bytes, 20_004)
        self.assertEqual(linked.size_bytes, 20_004)
        # Hard-linked files are counted once: "good" owns them, "good-linked" nothing.
        self.assertEqual(good.owned_bytes, 20_004)
        self.assertEqual(linked.owned_bytes, 0)
        self.assertEqual(copy.owned_bytes, 20_004)
        self.assertEqual(good.shared_with, ["good-linked"])
        self.assertEqual(by_name["gone"].state, UsageState.MISSING)
        self.assertIsNone(by_name["gone"].size_bytes)
        self.assertEqual(by_name["half"].partial_files, 1)
        totals = backend_totals()
        self.assertEqual(totals["vllm"]["bytes"], 20_004 * 2 + 502)
        self.assertEqual(totals["vllm"]["entries"], 7)
        self.assertEqual(totals["vllm"]["measured"], 5)

    def test_a_rescan_replaces_the_findings_and_keeps_few_runs(self):
        self.build()
        with override_settings(IMAGEWORKS_RECONCILE_KEEP=2):
            for _ in range(3):
                run = run_scan(ACTOR, refresh_backends=False)
        self.assertEqual(ScanRun.objects.count(), 2)
        shutil.rmtree(self.lib.root / "stray")
        fresh = run_scan(ACTOR, refresh_backends=False)
        self.assertNotIn(FindingKind.ORPHAN_FOLDER, kinds(fresh))
        self.assertIn(FindingKind.ORPHAN_FOLDER, kinds(run))
        self.assertEqual(EntryUsage.objects.count(), 7)

    def test_no_roots_configured_is_a_note_not_an_error(self):
        self.lib.vllm("x", self.lib.model("x"))
        self.lib.save()
        with override_settings(IMAGEWORKS_MODEL_ROOTS=[]):
            run = run_scan(ACTOR, refresh_backends=False)
        self.assertEqual(run.files, 0)
        self.assertIn("IMAGEWORKS_MODEL_ROOTS is not set", " ".join(run.notes))
        # Not one "outside the roots" finding per entry: the note says it all.
        self.assertEqual(kinds(run), {})


class MarkDeprecatedTests(LibraryMixin, TestCase):
    def test_the_flag_goes_into_the_curated_layer_with_one_audit_row(self):
        self.lib.vllm("gone", self.lib.root / "nope")
        # A discovered-only entry: the original resets deprecated there, so the
        # edit must create a curated overlay.
        self.lib.discovered.append({"name": "disc-only", "backend": "vllm"})
        self.lib.save()
        for name in ("gone", "disc-only"):
            entry = ModelEntry.objects.get(name=name)
            preview = sources.deprecate_preview(entry)
            self.assertIn('+  "deprecated": true', preview["diff"])
            fixes.mark_deprecated(entry, ACTOR, entry.fingerprint)
            entry.refresh_from_db()
            self.assertTrue(entry.deprecated)
        curated = {
            e["name"]: e
            for e in json.loads(
                (self.lib.registry_dir / layers.CURATED_FILE).read_text()
            )
        }
        self.assertIs(curated["gone"]["deprecated"], True)
        self.assertIs(curated["disc-only"]["deprecated"], True)
        self.assertEqual(
            curated["disc-only"]["metadata"], {"registry_layer": "curated"}
        )
        rows = ActionLog.objects.filter(action=Action.EDIT, outcome=Outcome.SUCCEEDED)
        self.assertEqual(rows.count(), 2)
        self.assertEqual(rows.first().details["layer"], "curated")

    def test_a_stale_fingerprint_is_refused_and_nothing_is_written(self):
        self.lib.vllm("gone", self.lib.root / "nope")
        self.lib.save()
        entry = ModelEntry.objects.get(name="gone")
        before = (self.lib.registry_dir / layers.CURATED_FILE).read_bytes()
        with self.assertRaises(sources.EditRefused):
            fixes.mark_deprecated(entry, ACTOR, "0" * 64)
        self.assertEqual(
            (self.lib.registry_dir / layers.CURATED_FILE).read_bytes(), before
        )
        self.assertTrue(
            ActionLog.objects.filter(
                action=Action.EDIT, outcome=Outcome.FAILED
            ).exists()
        )


class OllamaReconcileTests(LibraryMixin, TestCase):
    ollama_store = True

    def setUp(self):
        super().setUp()
        self.fake = FakeOllama(
            installed=["qwen3:8b", "llama3:latest", "stray:1b"]
        ).start()
        self.addCleanup(self.fake.stop)

    def test_installed_missing_unregistered_and_digest_findings(self):
        url = self.fake.url
        lib = self.lib
        lib.ollama("qwen", "qwen3:8b", base_url=url)
        lib.ollama(
            "llama",
            "llama3:latest",
            base_url=url,
            metadata={"ollama_digest": "sha256:" + "ab" * 32},
        )
        lib.ollama(
            "llama-pinned-ok",
            "llama3:latest",
            base_url=url,
            metadata={"ollama_digest": _digest("llama3:latest")[:12]},
        )
        lib.ollama("absent", "phi4:14b", base_url=url)
        lib.save()
        with override_settings(IMAGEWORKS_OLLAMA_URL=url):
            run = run_scan(ACTOR, refresh_backends=True)
        found = kinds(run)
        self.assertEqual(found[FindingKind.OLLAMA_NOT_INSTALLED], ["absent"])
        self.assertEqual(found[FindingKind.OLLAMA_DIGEST], ["llama"])
        self.assertEqual(found[FindingKind.OLLAMA_UNREGISTERED], ["stray:1b"])
        missing = Finding.objects.get(kind=FindingKind.OLLAMA_NOT_INSTALLED)
        self.assertEqual(missing.details["command"], ["ollama", "pull", "phi4:14b"])
        self.assertIn(url, missing.message)
        digest = Finding.objects.get(kind=FindingKind.OLLAMA_DIGEST)
        self.assertEqual(digest.details["installed"], _digest("llama3:latest"))

    def test_sizes_come_from_the_local_store(self):
        lib = self.lib
        base = lib.ollama_blob("weights", 30_000)
        lib.ollama_manifest("qwen3:8b", [lib.ollama_blob("cfg", 10), base])
        lib.ollama_manifest("qwen3:8b-tuned", [lib.ollama_blob("cfg2", 20), base])
        lib.ollama("qwen", "qwen3:8b")
        lib.ollama("tuned", "qwen3:8b-tuned")
        lib.ollama("ghost", "ghost:1")
        lib.save()
        run = run_scan(ACTOR, refresh_backends=False)
        usage = {u.entry.name: u for u in EntryUsage.objects.select_related("entry")}
        self.assertEqual(usage["qwen"].size_bytes, 30_010)
        self.assertEqual(usage["tuned"].size_bytes, 30_020)
        self.assertEqual(usage["qwen"].owned_bytes + usage["tuned"].owned_bytes, 30_030)
        self.assertEqual(backend_totals()["ollama"]["bytes"], 30_030)
        # No server answered: the store itself says "ghost" is not installed.
        self.assertEqual(kinds(run)[FindingKind.OLLAMA_NOT_INSTALLED], ["ghost"])
