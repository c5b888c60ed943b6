"""The entry editor's services and form: validation, clearing, groups, conflicts."""

from __future__ import annotations

import json
import os

from django.test import TestCase

from registry import layers, normalize
from registry.audit import Actor
from registry.choices import Action, Outcome
from registry.forms.edit import PORT_MESSAGE, ModelEntryEditForm
from registry.models import ActionLog, ModelEntry
from registry.services import editing
from registry.services.sync import sync_registry
from registry.services.writeback import EntryConflict
from tests.base import make_user
from tests.registry.edit_helpers import FLORENCE, QWEN, SampleRegistryMixin


def form_data(entry: ModelEntry, **changes) -> dict:
    """POST data of an unchanged editor form, with *changes* applied."""
    values = {**editing.edit_form_initial(entry), **changes}
    data = {}
    for key, value in values.items():
        if isinstance(value, bool):
            if value:
                data[key] = "on"
        elif value is None:
            data[key] = ""
        elif isinstance(value, list):
            data[key] = value
        else:
            data[key] = str(value)
    return data


def bound_form(entry, **changes) -> ModelEntryEditForm:
    return ModelEntryEditForm(form_data(entry, **changes), entry=entry)


class EditTestCase(SampleRegistryMixin, TestCase):
    def setUp(self):
        super().setUp()
        self.alice = make_user("alice", "editor")
        self.bob = make_user("bob", "editor")

    def entry(self, name=QWEN) -> ModelEntry:
        return ModelEntry.objects.get(name=name)

    def save(self, user, name=QWEN, entry=None, **changes):
        entry = entry or self.entry(name)
        form = bound_form(entry, **changes)
        self.assertTrue(form.is_valid(), form.errors)
        return editing.save_edit(
            entry, Actor.from_user(user), form.cleaned_data, entry.fingerprint
        )


class FormInitialTests(EditTestCase):
    def test_unset_numbers_are_blank_not_defaulted(self):
        initial = editing.edit_form_initial(self.entry())
        self.assertEqual(initial["gen_temperature"], 0.7)
        self.assertIsNone(initial["gen_top_k"])
        self.assertIsNone(initial["gen_context_window"])
        self.assertEqual(initial["port"], 24001)
        self.assertEqual(initial["served_model_id"], "")  # "None" in the file is unset

    def test_stored_out_of_range_values_open_and_show_as_is(self):
        self.outside_edit(
            QWEN,
            generation_defaults={"context_window": 131072, "temperature": 7.5},
            backend_config={"port": 0, "model_path": "/x", "extra_args": []},
        )
        sync_registry(Actor.system("test"))
        entry = self.entry()
        form = ModelEntryEditForm(entry=entry)
        html = form.as_p()  # renders without crashing
        self.assertIn('value="131072"', html)
        self.assertIn('value="7.5"', html)
        # Saving another field with the stored values untouched is fine.
        form = bound_form(entry, display_name="Other")
        self.assertTrue(form.is_valid(), form.errors)

    def test_each_field_says_which_layer_its_value_comes_from(self):
        entry = self.entry()
        form = ModelEntryEditForm(entry=entry)
        self.assertEqual(form.fields["display_name"].layer, "both")
        qwen3 = ModelEntry.objects.get(name="qwen3-vl-8b-instruct_(FP8)")
        self.assertEqual(
            ModelEntryEditForm(entry=qwen3).fields["display_name"].layer, "discovered"
        )
        gemma = ModelEntry.objects.get(name="gemma3_27.0b_(Q3_K_M)")
        self.assertEqual(editing.field_layer(gemma, "gen_top_k"), "unset")


class ValidationTests(EditTestCase):
    def assertFieldError(self, form, field, text):
        self.assertFalse(form.is_valid())
        self.assertIn(field, form.errors, form.errors)
        self.assertIn(text, " ".join(form.errors[field]))

    def test_port_out_of_range(self):
        self.assertFieldError(
            bound_form(self.entry(), port=70000), "port", PORT_MESSAGE
        )
        self.assertFieldError(bound_form(self.entry(), port=0), "port", PORT_MESSAGE)
        self.assertTrue(bound_form(self.entry(), port=8080).is_valid())

    def test_bad_json_metadata(self):
        form = bound_form(self.entry(), metadata="{bad json")
        self.assertFieldError(form, "metadata", "Invalid JSON")
        form = bound_form(self.entry(), metadata="[1, 2]")
        self.assertFieldError(form, "metadata", "Invalid JSON")
        # Would be written, then skipped by every sync (PostgreSQL cannot store it).
        form = bound_form(self.entry(), metadata='{"notes": "a\\u0000b"}')
        self.assertFieldError(form, "metadata", "NUL character")
        # What the reader refuses in a file is refused here too (written, it would
        # make the file "broken" for every later read).
        for text, words in (
            ('{"n": "\\ud800"}', "lone UTF-16 surrogate"),
            ('{"n": 1e400}', "too large for a float"),
            ('{"n": -99999999999999999999}', "64 bits"),
        ):
            form = bound_form(self.entry(), metadata=text)
            self.assertFieldError(form, "metadata", words)
        self.assertTrue(
            bound_form(self.entry(), metadata='{"n": 9223372036854775807}').is_valid()
        )

    def test_unknown_backend(self):
        self.assertFieldError(
            bound_form(self.entry(), backend="tgi"), "backend", "Unknown backend"
        )

    def test_duplicate_alias_of_another_entry(self):
        form = bound_form(
            self.entry(FLORENCE), aliases="microsoft/Florence-2-large\nqwen-vl"
        )
        self.assertFieldError(
            form, "aliases", f"alias qwen-vl is already used by {QWEN}"
        )

    def test_empty_display_name(self):
        self.assertFieldError(
            bound_form(self.entry(), display_name="  "), "display_name", "required"
        )

    def test_generation_ranges_checked_only_when_changed(self):
        form = bound_form(self.entry(), gen_temperature=5)
        self.assertFieldError(form, "gen_temperature", "Temperature must be")

    def test_preview_is_blocked_by_errors(self):
        client = self.client
        client.force_login(self.alice)
        entry = self.entry()
        url = f"/models/{entry.pk}/edit/preview/"
        before = self.curated_path.read_bytes()
        response = client.post(url, form_data(entry, port=70000))
        self.assertContains(response, PORT_MESSAGE)
        self.assertNotContains(response, "Confirm save")
        self.assertEqual(self.curated_path.read_bytes(), before)


class BuildCuratedTests(EditTestCase):
    def preview(self, name=QWEN, **changes):
        entry = self.entry(name)
        form = bound_form(entry, **changes)
        self.assertTrue(form.is_valid(), form.errors)
        return editing.preview_edit(entry, form.cleaned_data)

    def test_s3_two_changes_exactly(self):
        entry = self.entry()
        preview = self.preview(
            display_name="Qwen2.5-VL 7B AWQ (prod)", roles=[*entry.roles, "ocr"]
        )
        self.assertEqual([c["path"] for c in preview.diff], ["display_name", "roles"])
        self.assertEqual(preview.new_curated["roles"][-1], "ocr")
        self.assertIn(
            '+  "display_name": "Qwen2.5-VL 7B AWQ (prod)",', preview.unified_text
        )
        self.assertIn('-  "display_name": "Qwen2.5-VL 7B (AWQ)",', preview.unified_text)

    def test_no_change_means_empty_diff(self):
        self.assertEqual(self.preview().diff, [])

    def test_roles_can_be_cleared(self):
        preview = self.preview(roles=[])
        self.assertEqual(preview.diff[0]["path"], "roles")
        self.assertEqual(preview.new_curated["roles"], [])

    def test_extra_args_one_per_line(self):
        preview = self.preview(extra_args="--max-model-len\n8192\n\n--enforce-eager\n")
        self.assertEqual(
            preview.new_curated["backend_config"]["extra_args"],
            ["--max-model-len", "8192", "--enforce-eager"],
        )

    def test_new_keys_are_appended_and_order_kept(self):
        preview = self.preview(
            host="gpu-1",
            metadata=json.dumps({"registry_layer": "curated", "notes": "x"}),
        )
        cfg = list(preview.new_curated["backend_config"])
        self.assertEqual(cfg[-1], "host")
        self.assertEqual(list(preview.new_curated), list(self.entry().curated_raw))
        self.assertEqual(
            list(preview.new_curated["metadata"]), ["registry_layer", "notes"]
        )

    def test_turning_a_capability_off_clears_its_synonym_group(self):
        preview = self.preview(cap_vision=False)
        caps = preview.new_curated["capabilities"]
        for alias in normalize.SYNONYM_GROUPS["vision"]:
            self.assertIs(caps[alias], False, alias)
        self.assertEqual(
            caps, normalize.normalize_capabilities(caps)
        )  # stays normalized
        # Discovered still says vision: the merge must not turn it back on.
        merged = layers.merge_entry_dicts(
            self.entry().discovered_raw, preview.new_curated
        )
        self.assertFalse(normalize.canonical_flags(merged["capabilities"])["vision"])

    def test_synonym_rule_covers_discovered_spellings(self):
        initial = {
            f"cap_{f}": f in ("text", "vision") for f in editing.CAPABILITY_FLAGS
        }
        cleaned = {**initial, "cap_vision": False}
        discovered = {
            "name": "x",
            "capabilities": {"text": True, "VL": True, " Image ": True},
        }
        curated = editing.build_curated(
            {"name": "x"}, cleaned, initial=initial, name="x", discovered=discovered
        )
        merged = layers.merge_entry_dicts(discovered, curated)
        self.assertFalse(normalize.canonical_flags(merged["capabilities"])["vision"])
        self.assertTrue(normalize.canonical_flags(merged["capabilities"])["text"])

    def test_turning_a_capability_on(self):
        preview = self.preview(cap_tools=True)
        caps = preview.new_curated["capabilities"]
        self.assertTrue(all(caps[a] for a in normalize.SYNONYM_GROUPS["tools"]))

    def test_clearing_without_a_discovered_value_removes_the_key(self):
        initial = {"gen_temperature": 0.7, "host": "h"}
        current = {
            "name": "x",
            "generation_defaults": {"temperature": 0.7, "top_p": 0.9},
            "backend_config": {"host": "h"},
        }
        curated = editing.build_curated(
            current,
            {"gen_temperature": None, "host": ""},
            initial=initial,
            name="x",
            discovered=None,
        )
        self.assertEqual(curated["generation_defaults"], {"top_p": 0.9})
        self.assertEqual(curated["backend_config"], {})

    def test_clearing_over_a_discovered_value_writes_the_empty_value(self):
        initial = {
            "gen_temperature": 0.7,
            "served_model_id": "d",
            "port": 1,
            "metadata": json.dumps({"notes": "n", "tags": ["a"]}),
        }
        discovered = {
            "name": "x",
            "served_model_id": "d",
            "generation_defaults": {"temperature": 0.7},
            "backend_config": {"port": 1},
            "metadata": {"notes": "n", "tags": ["a"]},
        }
        cleaned = {
            "gen_temperature": None,
            "served_model_id": "",
            "port": None,
            "metadata": {},
        }
        curated = editing.build_curated(
            {"name": "x"}, cleaned, initial=initial, name="x", discovered=discovered
        )
        self.assertEqual(curated["generation_defaults"], {"temperature": ""})
        self.assertEqual(curated["served_model_id"], "")
        self.assertEqual(curated["backend_config"], {"port": 0})
        self.assertEqual(curated["metadata"], {"notes": "", "tags": []})
        merged = layers.merge_entry_dicts(discovered, curated)
        self.assertEqual(merged["generation_defaults"]["temperature"], "")
        self.assertEqual(normalize.served_id(merged["served_model_id"]), "")


class SaveTests(EditTestCase):
    def test_save_writes_curated_and_one_audit_row_with_the_diff(self):
        entry = self.entry()
        result = self.save(
            self.alice,
            display_name="Qwen2.5-VL 7B AWQ (prod)",
            roles=[*entry.roles, "ocr"],
        )
        self.assertEqual(self.curated(QWEN)["display_name"], "Qwen2.5-VL 7B AWQ (prod)")
        self.assertEqual(self.curated(QWEN)["roles"][-1], "ocr")
        rows = ActionLog.objects.filter(action=Action.EDIT)
        self.assertEqual(rows.count(), 1)
        row = rows.get()
        self.assertEqual(row.user_name, "alice")
        self.assertEqual(row.outcome, Outcome.SUCCEEDED)
        self.assertEqual(
            [c["path"] for c in row.details["diff"]], ["display_name", "roles"]
        )
        self.assertEqual(result.entry.display_name, "Qwen2.5-VL 7B AWQ (prod)")
        self.assertEqual(
            ActionLog.objects.exclude(action=Action.EDIT)
            .filter(user_name="alice")
            .count(),
            0,
        )

    def test_curated_file_is_byte_identical_outside_the_edited_entry(self):
        before_items = self.curated_items()
        self.save(self.alice, display_name="Changed")
        after = self.curated_path.read_bytes()
        expected = [
            self.curated(QWEN) if item["name"] == QWEN else item
            for item in before_items
        ]
        self.assertEqual(after, layers.dumps(expected))
        self.assertEqual(
            [i["name"] for i in self.curated_items()], [i["name"] for i in before_items]
        )

    def test_other_file_styles_are_kept(self):
        items = self.curated_items()
        items[0]["display_name"] = "Florence – große Ausgabe"
        text = json.dumps(items, indent=4, ensure_ascii=False)  # no trailing newline
        self.curated_path.write_text(text, encoding="utf-8")
        sync_registry(Actor.system("test"))
        self.save(self.alice, display_name="Changed")
        after = self.curated_path.read_text(encoding="utf-8")
        for item in items:
            if item["name"] == QWEN:
                item["display_name"] = "Changed"
        self.assertEqual(after, json.dumps(items, indent=4, ensure_ascii=False))

    def test_cleared_value_wins_over_the_discovered_value_after_merge(self):
        entry = ModelEntry.objects.get(name="siglip-large-patch16-384_(FP32)")
        self.assertEqual(entry.served_model_id, "siglip-large")
        self.assertEqual(entry.discovered_raw["served_model_id"], "siglip-large")
        self.save(self.alice, entry=entry, served_model_id="", gen_temperature=None)
        entry.refresh_from_db()
        self.assertEqual(entry.served_model_id, "")
        self.assertEqual(entry.merged["generation_defaults"]["temperature"], "")
        initial = editing.edit_form_initial(entry)
        self.assertEqual(initial["served_model_id"], "")
        self.assertIsNone(initial["gen_temperature"])

    def test_conflict_with_an_outside_edit_writes_nothing(self):
        entry = self.entry()  # the editor opens here
        self.outside_edit(QWEN, display_name="Edited in vim")
        on_disk = self.curated_path.read_bytes()
        form = bound_form(entry, display_name="Mine")
        self.assertTrue(form.is_valid())
        with self.assertRaises(EntryConflict) as ctx:
            editing.save_edit(
                entry, Actor.from_user(self.alice), form.cleaned_data, entry.fingerprint
            )
        self.assertEqual(self.curated_path.read_bytes(), on_disk)
        self.assertIn("display_name", [c["path"] for c in ctx.exception.other_change])
        row = ActionLog.objects.get(action=Action.EDIT)
        self.assertEqual(row.outcome, Outcome.FAILED)

    def test_concurrent_editors_conflict_names_the_other_user(self):
        opened = self.entry()  # both open the editor on this version
        self.save(self.bob, entry=opened, display_name="B")
        form = bound_form(opened, display_name="A")
        self.assertTrue(form.is_valid())
        with self.assertRaises(EntryConflict) as ctx:
            editing.save_edit(
                opened,
                Actor.from_user(self.alice),
                form.cleaned_data,
                opened.fingerprint,
            )
        self.assertEqual(ctx.exception.changed_by, "bob")
        self.assertIn("changed by bob", str(ctx.exception))
        self.assertEqual(self.curated(QWEN)["display_name"], "B")

    def test_editors_of_different_entries_never_block_each_other(self):
        qwen, florence = self.entry(), self.entry(FLORENCE)
        self.save(self.bob, entry=qwen, display_name="B")
        self.save(self.alice, entry=florence, display_name="A")
        self.assertEqual(self.curated(QWEN)["display_name"], "B")
        self.assertEqual(self.curated(FLORENCE)["display_name"], "A")

    def test_read_only_file_gives_the_message_and_a_failed_audit_row(self):
        before = self.curated_path.read_bytes()
        os.chmod(self.curated_path, 0o444)
        with self.assertRaises(layers.RegistryWriteError) as ctx:
            self.save(self.alice, display_name="Nope")
        self.assertIn(layers.READ_ONLY_MESSAGE, str(ctx.exception))
        self.assertEqual(self.curated_path.read_bytes(), before)
        row = ActionLog.objects.get(action=Action.EDIT)
        self.assertEqual(row.outcome, Outcome.FAILED)
        self.assertIn("read-only", row.message)
        leftovers = [
            p.name for p in self.registry_dir.iterdir() if p.name.endswith(".tmp")
        ]
        self.assertEqual(leftovers, [])


class DiscoveredOnlyEditTests(EditTestCase):
    def test_editing_a_discovered_only_entry_creates_a_marked_overlay(self):
        entry = self.entry("gpt-oss-20b_(MXFP4)")
        self.assertIsNone(entry.curated_raw)
        form = bound_form(entry)
        self.assertTrue(form.is_valid(), form.errors)
        self.assertEqual(editing.preview_edit(entry, form.cleaned_data).diff, [])
        self.save(self.alice, entry=entry, display_name="GPT OSS")
        self.assertEqual(
            self.curated("gpt-oss-20b_(MXFP4)"),
            {
                "name": "gpt-oss-20b_(MXFP4)",
                "display_name": "GPT OSS",
                "metadata": {"registry_layer": "curated"},
            },
        )
