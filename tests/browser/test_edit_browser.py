"""S3 (edit with diff preview and confirm) and S4 (import wizard) in a real browser."""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from registry import layers
from registry.audit import Actor
from registry.sample import write_sample_registry
from registry.services.sync import sync_registry
from tests.browser.conftest import login

QWEN = "qwen2.5-vl-7b-instruct_(AWQ)"
QWEN3VL = "qwen3-vl-8b-instruct_(FP8)"
GPTOSS = "gpt-oss-20b_(MXFP4)"


@pytest.fixture
def registry(settings, tmp_path, transactional_db):
    folder = tmp_path / "configs"
    settings.IMAGEWORKS_REGISTRY_DIR = folder
    settings.IMAGEWORKS_STAGING_DIR = tmp_path / "_staging"
    write_sample_registry(folder, tmp_path / "models", force=True)
    sync_registry(Actor.system("test"), force=True)
    return folder


def curated(folder, name):
    items = json.loads((folder / layers.CURATED_FILE).read_text())
    return next(i for i in items if i["name"] == name)


def open_editor(page, live_server, name=QWEN):
    from registry.models import ModelEntry

    pk = ModelEntry.objects.get(name=name).pk
    page.goto(f"{live_server.url}/models/{pk}/")
    page.get_by_test_id("edit-entry").click()
    dialog = page.locator("#edit-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#id_display_name")).to_have_value(re.compile(".+"))
    return dialog


def test_edit_preview_confirm_updates_the_table_and_the_file(
    page, live_server, personas, registry
):
    from registry.models import ActionLog

    login(page, live_server, "erin")
    dialog = open_editor(page, live_server)
    expect(dialog.locator("#id_gen_top_k")).to_have_value("")  # unset stays blank
    dialog.locator("#id_display_name").fill("Qwen2.5-VL 7B AWQ (prod)")
    dialog.locator("input[name=roles][value=ocr]").check()
    dialog.get_by_test_id("edit-preview").click()
    diff = dialog.get_by_test_id("edit-diff")
    expect(diff).to_be_visible()
    expect(diff.locator("tbody tr")).to_have_count(2)
    expect(diff).to_contain_text("display_name")
    expect(diff).to_contain_text('"ocr"')
    assert curated(registry, QWEN)["display_name"] == "Qwen2.5-VL 7B (AWQ)"  # not yet
    dialog.get_by_test_id("edit-confirm").click()
    expect(dialog.get_by_test_id("edit-saved")).to_contain_text(f"Saved {QWEN}")
    expect(page.locator("#messages")).to_contain_text(f"Saved {QWEN}")
    assert curated(registry, QWEN)["display_name"] == "Qwen2.5-VL 7B AWQ (prod)"
    assert curated(registry, QWEN)["roles"][-1] == "ocr"
    row = ActionLog.objects.get(action="edit")
    assert [c["path"] for c in row.details["diff"]] == ["display_name", "roles"]
    page.goto(f"{live_server.url}/models/")
    expect(page.locator("table").first).to_contain_text("Qwen2.5-VL 7B AWQ (prod)")


def test_cancel_writes_nothing(page, live_server, personas, registry):
    from registry.models import ActionLog

    before = (registry / layers.CURATED_FILE).read_bytes()
    login(page, live_server, "erin")
    dialog = open_editor(page, live_server)
    dialog.locator("#id_display_name").fill("Something else")
    dialog.get_by_test_id("edit-preview").click()
    expect(dialog.get_by_test_id("edit-diff")).to_be_visible()
    dialog.get_by_test_id("edit-cancel").click()
    expect(dialog).to_be_hidden()
    assert (registry / layers.CURATED_FILE).read_bytes() == before
    assert not ActionLog.objects.filter(action="edit").exists()


def test_validation_blocks_the_preview(page, live_server, personas, registry):
    login(page, live_server, "erin")
    dialog = open_editor(page, live_server)
    dialog.locator("#id_port").fill("70000")
    dialog.locator("#id_metadata").fill("{bad json")
    dialog.get_by_test_id("edit-preview").click()
    expect(dialog.get_by_test_id("error-port")).to_have_text("Port must be 1–65535")
    expect(dialog.get_by_test_id("error-metadata")).to_contain_text("Invalid JSON")
    expect(dialog.get_by_test_id("edit-confirm")).to_have_count(0)


def test_outside_edit_between_opening_and_confirming_is_a_conflict(
    page, live_server, personas, registry
):
    login(page, live_server, "erin")
    dialog = open_editor(page, live_server)
    dialog.locator("#id_display_name").fill("Mine")
    dialog.get_by_test_id("edit-preview").click()
    expect(dialog.get_by_test_id("edit-diff")).to_be_visible()
    # Someone edits the file by hand meanwhile.
    path = registry / layers.CURATED_FILE
    items = json.loads(path.read_text())
    for item in items:
        if item["name"] == QWEN:
            item["display_name"] = "Edited by hand"
    path.write_bytes(layers.dumps(items))
    on_disk = path.read_bytes()
    dialog.get_by_test_id("edit-confirm").click()
    conflict = dialog.get_by_test_id("edit-conflict")
    expect(conflict).to_contain_text("since you opened it")
    expect(conflict).to_contain_text("Nothing was written")
    assert path.read_bytes() == on_disk
    conflict.get_by_test_id("edit-reopen").click()
    expect(dialog.locator("#id_display_name")).to_have_value("Edited by hand")


def test_viewer_sees_no_edit_button(page, live_server, personas, registry):
    from registry.models import ModelEntry

    login(page, live_server, "vera")
    page.goto(f"{live_server.url}/models/{ModelEntry.objects.get(name=QWEN).pk}/")
    expect(page.get_by_test_id("edit-entry")).to_have_count(0)
    expect(page.get_by_test_id("edit-entry-disabled")).to_be_disabled()


def test_import_wizard_end_to_end(page, live_server, personas, registry):
    from registry.models import ActionLog, ModelEntry

    login(page, live_server, "erin")
    page.goto(f"{live_server.url}/models/")
    page.get_by_role("link", name="Import from downloads").click()
    listing = page.get_by_test_id("import-list")
    expect(listing.locator("tbody tr")).to_have_count(2)
    expect(listing).to_contain_text(QWEN3VL)
    expect(listing).to_contain_text(GPTOSS)
    page.get_by_label(f"Select {QWEN3VL}").check()
    page.get_by_label(f"Select {GPTOSS}").check()
    page.get_by_test_id("import-next").click()
    rows = page.get_by_test_id("import-row")
    expect(rows).to_have_count(2)
    first = page.locator(f'[data-testid=import-row][data-name="{GPTOSS}"]')
    first.locator("input[name$=served_model_id]").fill("")
    page.get_by_test_id("import-next").click()
    expect(first.get_by_test_id("error-served_model_id")).to_contain_text(
        "served model id is required"
    )
    first.locator("input[name$=served_model_id]").fill("openai/gpt-oss-20b")
    first.locator("input[name$=roles]").fill("reasoning, chat")
    page.get_by_test_id("import-next").click()
    summary = page.get_by_test_id("import-summary")
    expect(summary).to_contain_text("2 entries to import")
    expect(page.get_by_test_id("import-diff")).to_contain_text(QWEN3VL)
    page.get_by_test_id("import-confirm").click()
    expect(page.locator("#messages")).to_contain_text("Imported 2 entries")
    assert ModelEntry.objects.get(name=GPTOSS).in_curated
    assert curated(registry, GPTOSS)["roles"] == ["reasoning", "chat"]
    assert ActionLog.objects.filter(action="import").count() == 2
    page.goto(f"{live_server.url}/models/import/")
    expect(page.get_by_test_id("import-empty")).to_have_text(
        "No discovered entries without a curated overlay."
    )
