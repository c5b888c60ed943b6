"""Import of discovered entries: services, wizard views, CLI and management command."""

from __future__ import annotations

import argparse
import io
import json
import os
from unittest import mock

from django.core.management import CommandError, call_command
from django.test import TestCase
from django.urls import reverse

from registry import layers
from registry.audit import Actor
from registry.choices import Action, Outcome
from registry.cli import importing as cli_import
from registry.models import ActionLog, ModelEntry
from registry.services import importing
from tests.base import PermissionMatrixMixin, make_user
from tests.registry.edit_helpers import GPTOSS, QWEN, QWEN3VL, SampleRegistryMixin


def item(name, **kw):
    values = {
        "roles": ["caption"],
        "backend": "vllm",
        "served_model_id": f"srv/{name}",
        "display_name": name,
    }
    values.update(kw)
    return importing.ImportItem(name=name, **values)


class ImportServiceTests(SampleRegistryMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.alice = make_user("alice", "editor")
        self.bob = make_user("bob", "editor")

    def test_importable_entries_are_discovered_without_overlay(self):
        names = [e.name for e in importing.importable_entries()]
        self.assertEqual(sorted(names), sorted([QWEN3VL, GPTOSS]))
        self.assertEqual(
            [e.name for e in importing.importable_entries("gpt")], [GPTOSS]
        )

    def test_suggestions_come_from_the_entry(self):
        entry = ModelEntry.objects.get(name=QWEN3VL)
        suggestion = importing.suggest_fields(entry)
        self.assertEqual(suggestion["backend"], "vllm")
        self.assertEqual(suggestion["served_model_id"], "Qwen/Qwen3-VL-8B-Instruct-FP8")
        self.assertEqual(suggestion["display_name"], "qwen3-vl-8b-instruct (FP8)")
        self.assertEqual(suggestion["roles"], ["caption", "description"])  # vision
        gpt = importing.suggest_fields(ModelEntry.objects.get(name=GPTOSS))
        self.assertEqual(gpt["roles"], ["reasoning"])

    def test_plan_refuses_curated_names_and_unknown_names(self):
        plan = importing.plan_import([item(QWEN), item("nope"), item(GPTOSS)])
        self.assertEqual(plan.names, [GPTOSS])
        reasons = dict(plan.refused)
        self.assertTrue(reasons[QWEN].startswith("already curated"))
        self.assertEqual(reasons["nope"], "not found in the registry")

    def test_plan_refuses_two_entries_for_the_same_download(self):
        items = json.loads((self.registry_dir / layers.DISCOVERED_FILE).read_text())
        twin = next(dict(i) for i in items if i["name"] == QWEN3VL)
        twin["name"] = "qwen3-vl-copy"
        items.append(twin)
        (self.registry_dir / layers.DISCOVERED_FILE).write_bytes(layers.dumps(items))
        from registry.services.sync import sync_registry

        sync_registry(Actor.system("test"))
        plan = importing.plan_import([item(QWEN3VL), item("qwen3-vl-copy")])
        self.assertEqual(plan.names, [QWEN3VL])
        self.assertEqual(
            plan.refused, [("qwen3-vl-copy", f"same download as {QWEN3VL}")]
        )

    def test_apply_appends_in_one_write_with_one_audit_row_per_entry(self):
        before = self.curated_items()
        plan = importing.plan_import(
            [item(QWEN3VL), item(GPTOSS, roles=["reasoning", "chat"])]
        )
        result = importing.apply_import(plan, Actor.from_user(self.alice))
        self.assertEqual(result.message, "Imported 2 entries")
        after = self.curated_items()
        self.assertEqual(after[: len(before)], before)  # appended, nothing else touched
        self.assertEqual([i["name"] for i in after[len(before) :]], [QWEN3VL, GPTOSS])
        self.assertEqual(after[-1]["roles"], ["reasoning", "chat"])
        self.assertEqual(after[-1]["metadata"], {"registry_layer": "curated"})
        backups = list(self.registry_dir.glob("model_registry.curated.*.bak.json"))
        self.assertEqual(len(backups), 1)  # one atomic write
        rows = ActionLog.objects.filter(action=Action.IMPORT)
        self.assertEqual(rows.count(), 2)
        self.assertEqual({r.outcome for r in rows}, {Outcome.SUCCEEDED})
        self.assertEqual(rows.first().details["batch"], sorted([QWEN3VL, GPTOSS]))
        entry = ModelEntry.objects.get(name=GPTOSS)
        self.assertEqual(entry.provenance, "both")
        self.assertEqual(entry.served_model_id, f"srv/{GPTOSS}")
        self.assertEqual(list(importing.importable_entries()), [])

    def test_concurrent_import_reports_already_curated_by_bob(self):
        plan = importing.plan_import([item(QWEN3VL), item(GPTOSS)])  # alice's step 3
        importing.apply_import(
            importing.plan_import([item(GPTOSS)]), Actor.from_user(self.bob)
        )
        result = importing.apply_import(plan, Actor.from_user(self.alice))
        self.assertEqual(result.imported, [QWEN3VL])
        self.assertIn("1 entry already curated (by bob)", result.message)
        failed = ActionLog.objects.get(
            action=Action.IMPORT, user_name="alice", entry_name=GPTOSS
        )
        self.assertEqual(failed.outcome, Outcome.FAILED)

    def test_read_only_registry_writes_nothing(self):
        os.chmod(self.curated_path, 0o444)
        before = self.curated_path.read_bytes()
        plan = importing.plan_import([item(QWEN3VL)])
        with self.assertRaises(layers.RegistryWriteError) as ctx:
            importing.apply_import(plan, Actor.from_user(self.alice))
        self.assertIn(layers.READ_ONLY_MESSAGE, str(ctx.exception))
        self.assertEqual(self.curated_path.read_bytes(), before)
        self.assertEqual(
            ActionLog.objects.get(action=Action.IMPORT).outcome, Outcome.FAILED
        )

    def test_ollama_tag_becomes_a_new_curated_entry(self):
        tag_item = importing.ImportItem(**importing.suggest_for_tag("phi4:14b"))
        result = importing.apply_import(
            importing.plan_import([tag_item]), Actor.from_user(self.alice)
        )
        self.assertEqual(result.imported, ["phi4_14b"])
        entry = ModelEntry.objects.get(name="phi4_14b")
        self.assertEqual(entry.backend, "ollama")
        self.assertEqual(entry.backend_config["model_path"], "ollama:/phi4:14b")


def step2_data(rows):
    data = {
        "item-TOTAL_FORMS": str(len(rows)),
        "item-INITIAL_FORMS": str(len(rows)),
        "item-MIN_NUM_FORMS": "0",
        "item-MAX_NUM_FORMS": "1000",
    }
    for i, row in enumerate(rows):
        for key, value in row.items():
            data[f"item-{i}-{key}"] = value
    return data


class ImportViewTests(SampleRegistryMixin, PermissionMatrixMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.make_personas()
        self.rows = [
            {
                "name": QWEN3VL,
                "display_name": "Qwen3 VL",
                "backend": "vllm",
                "served_model_id": "qwen3-vl",
                "roles": "caption, ocr",
            },
            {
                "name": GPTOSS,
                "display_name": "GPT-OSS",
                "backend": "vllm",
                "served_model_id": "gpt-oss",
                "roles": "reasoning",
            },
        ]

    def test_permission_matrix(self):
        forbidden = [self.viewer, self.operator, self.outsider]
        allowed = [self.editor, self.admin]
        self.assert_get_matrix(
            reverse("registry:import_start"), allowed=allowed, forbidden=forbidden
        )
        for name in ("import_fields", "import_review"):
            self.assert_post_matrix(
                reverse(f"registry:{name}"),
                allowed=allowed,
                forbidden=forbidden,
                data={"names": [QWEN3VL]},
            )
        before = self.curated_path.read_bytes()
        self.assert_post_matrix(
            reverse("registry:import_confirm"),
            allowed=allowed,
            forbidden=forbidden,
            data=step2_data([]),
        )
        self.assertEqual(self.curated_path.read_bytes(), before)

    def test_wizard_end_to_end(self):
        client = self.client_for(self.editor)
        step1 = client.get(reverse("registry:import_start"))
        self.assertContains(step1, QWEN3VL)
        self.assertContains(step1, GPTOSS)
        self.assertNotContains(step1, f'value="{QWEN}"')
        step2 = client.post(
            reverse("registry:import_fields"), {"names": [QWEN3VL, GPTOSS]}
        )
        self.assertContains(
            step2, "Qwen/Qwen3-VL-8B-Instruct-FP8"
        )  # suggested served id
        # A blank served id on the vllm entry is an inline error on that row.
        bad = [dict(self.rows[0], served_model_id=""), self.rows[1]]
        response = client.post(reverse("registry:import_review"), step2_data(bad))
        self.assertContains(response, "A served model id is required")
        before = self.curated_path.read_bytes()
        step3 = client.post(reverse("registry:import_review"), step2_data(self.rows))
        self.assertContains(step3, "2 entries to import")
        self.assertContains(step3, "new curated entry")
        self.assertContains(step3, f"+    &quot;name&quot;: &quot;{QWEN3VL}&quot;")
        self.assertEqual(
            self.curated_path.read_bytes(), before
        )  # nothing before Confirm
        done = client.post(
            reverse("registry:import_confirm"), step2_data(self.rows), follow=True
        )
        self.assertContains(done, "Imported 2 entries")
        self.assertEqual(ActionLog.objects.filter(action=Action.IMPORT).count(), 2)
        again = client.get(reverse("registry:import_start"))
        self.assertContains(again, "No discovered entries without a curated overlay")

    def test_step1_without_selection_asks_for_one(self):
        client = self.client_for(self.editor)
        response = client.post(reverse("registry:import_fields"), {})
        self.assertContains(response, "Select at least one entry")

    def test_unknown_ollama_tags_are_offered_when_health_provides_them(self):
        client = self.client_for(self.editor)
        fake = mock.Mock(
            return_value=[
                {
                    "endpoint": "default",
                    "url": "http://o",
                    "name": "phi4:14b",
                    "tag": "phi4:14b",
                    "size": 1,
                }
            ]
        )
        with mock.patch("backends.health.unknown_ollama_tags", fake):
            response = client.get(reverse("registry:import_start"))
        self.assertContains(response, 'name="tags" value="phi4:14b"')


class ImportCliTests(SampleRegistryMixin, TestCase):
    def run_cli(self, *argv):
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        cli_import.add_subcommands(sub)
        args = parser.parse_args(["import", *argv])
        out, err = io.StringIO(), io.StringIO()
        code = args.func(args, stdout=out, stderr=err)
        return code, out.getvalue(), err.getvalue()

    def test_dry_run_prints_the_plan_and_writes_nothing(self):
        before = self.curated_path.read_bytes()
        code, out, _ = self.run_cli(
            QWEN3VL, "--role", "caption", "--backend", "vllm", "--dry-run"
        )
        self.assertEqual(code, 0)
        self.assertIn("Dry run", out)
        self.assertIn(QWEN3VL, out)
        self.assertIn('"roles": ["caption"]', out)
        self.assertEqual(self.curated_path.read_bytes(), before)

    def test_import_names_with_flags(self):
        code, out, err = self.run_cli(
            QWEN3VL,
            "--role",
            "caption",
            "--role",
            "ocr",
            "--backend",
            "vllm",
            "--served-id",
            "q3",
        )
        self.assertEqual(code, 0, err)
        self.assertIn("Imported 1 entry", out)
        self.assertEqual(self.curated(QWEN3VL)["roles"], ["caption", "ocr"])
        self.assertEqual(self.curated(QWEN3VL)["served_model_id"], "q3")
        self.assertEqual(ActionLog.objects.get(action=Action.IMPORT).source, "cli")

    def test_errors_exit_non_zero_with_a_message(self):
        code, _, err = self.run_cli(QWEN3VL, "--backend", "tgi")
        self.assertEqual(code, 2)
        self.assertIn("backend", err)
        code, out, err = self.run_cli(QWEN, "--role", "chat")
        self.assertEqual(code, 1)
        self.assertIn("already curated", out)
        code, _, err = self.run_cli()
        self.assertEqual(code, 2)
        self.assertIn("Name at least one entry", err)

    def test_from_json_and_csv_files(self):
        json_file = self._tmp / "rows.json"
        json_file.write_text(
            json.dumps([{"name": QWEN3VL, "roles": ["caption"], "served_id": "q3"}])
        )
        code, out, err = self.run_cli("--from-file", str(json_file))
        self.assertEqual(code, 0, err)
        csv_file = self._tmp / "rows.csv"
        csv_file.write_text(
            f"name,roles,backend,served_model_id,display_name\n{GPTOSS},reasoning;chat,vllm,gpt,GPT OSS\n"
        )
        code, out, err = self.run_cli("--from-file", str(csv_file))
        self.assertEqual(code, 0, err)
        self.assertEqual(self.curated(GPTOSS)["roles"], ["reasoning", "chat"])
        self.assertEqual(self.curated(GPTOSS)["display_name"], "GPT OSS")
        bad = self._tmp / "bad.json"
        bad.write_text("{oops")
        code, _, err = self.run_cli("--from-file", str(bad))
        self.assertEqual(code, 2)
        self.assertIn("Invalid JSON", err)

    def test_management_command(self):
        out = io.StringIO()
        call_command(
            "import_entries",
            GPTOSS,
            "--role",
            "reasoning",
            "--backend",
            "vllm",
            stdout=out,
        )
        self.assertIn("Imported 1 entry", out.getvalue())
        with self.assertRaises(CommandError):
            call_command(
                "import_entries",
                GPTOSS,
                "--role",
                "reasoning",
                stdout=io.StringIO(),
                stderr=io.StringIO(),
            )
