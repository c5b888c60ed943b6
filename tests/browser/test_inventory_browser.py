"""Disk & reconcile in a real browser: the report with a fix preview, the reclaim plan
preview, the trash and restore, at 1440x900 and 390x844 (screenshots in
test-artifacts/inventory-*.png)."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from inventory.choices import TrashState
from inventory.models import TrashItem
from inventory.services import run_scan
from registry.audit import Actor
from registry.models import ActionLog, ModelEntry
from tests.browser.conftest import login
from tests.inventory.helpers import Library

SIZES = {"desktop": (1440, 900), "phone": (390, 844)}


@pytest.fixture
def library(settings, tmp_path, transactional_db):
    lib = Library(tmp_path)
    settings.IMAGEWORKS_REGISTRY_DIR = lib.registry_dir
    settings.IMAGEWORKS_STAGING_DIR = tmp_path / "_staging"
    settings.IMAGEWORKS_MODEL_ROOTS = [lib.root]
    settings.IMAGEWORKS_OLLAMA_MODELS_DIR = ""
    settings.IMAGEWORKS_TRASH_DIR = ""
    settings.IMAGEWORKS_HEALTH_CARD_REFRESH = 0
    lib.old = lib.model("weights/org/old-model", size=120_000)
    lib.keep = lib.model("weights/org/keep", size=60_000)
    lib.folder(
        "weights/org/half", {"config.json": "{}", "model.safetensors.incomplete": 900}
    )
    lib.model("downloads/nobody-uses-this", size=45_000)
    lib.vllm("old-model_(AWQ)", lib.old)
    lib.vllm("keep_(FP16)", lib.keep)
    lib.vllm("half_(FP8)", lib.root / "weights/org/half")
    lib.vllm("gone_(Q4)", lib.root / "weights/org/gone")
    lib.save()
    run_scan(Actor.system("tests"), refresh_backends=False)
    return lib


def shoot(page, artifacts_dir, name: str) -> None:
    """Screenshot at both sizes; the page must not scroll sideways at either."""
    for label, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        page.wait_for_timeout(150)
        scroll = page.evaluate("document.documentElement.scrollWidth")
        assert scroll <= width + 1, f"{name} at {label}: scrolls sideways ({scroll}px)"
        page.screenshot(path=str(artifacts_dir / f"inventory-{name}-{label}.png"))
    page.set_viewport_size({"width": 1440, "height": 900})


def test_report_filter_and_mark_deprecated(
    page, live_server, personas, library, artifacts_dir
):
    page.set_viewport_size({"width": 1440, "height": 900})
    login(page, live_server, "erin")
    page.get_by_role("link", name="Disk & reconcile").click()
    findings = page.get_by_test_id("findings")
    expect(findings).to_contain_text("nobody-uses-this")
    expect(findings).to_contain_text(
        "Unfinished download: model.safetensors.incomplete"
    )
    expect(page.get_by_test_id("finding-count")).to_have_text("3")
    shoot(page, artifacts_dir, "report")

    # Scan now: a background job (run inline by the test settings) with its status.
    library.model("downloads/another-orphan", size=1000)
    page.get_by_test_id("scan-button").click()
    job = page.get_by_test_id("scan-job")
    expect(job.locator("[data-job-status]")).to_have_attribute(
        "data-job-status", "succeeded"
    )
    job.get_by_test_id("scan-done").click()
    expect(page.get_by_test_id("finding-count")).to_have_text("4")
    expect(findings).to_contain_text("another-orphan")

    # The kind filter swaps the table in place and keeps a real URL.
    page.select_option("#id_kind", "path_missing")
    expect(page.get_by_test_id("finding-count")).to_have_text("1")
    expect(page).to_have_url(
        f"{live_server.url}/models/reconcile/?kind=path_missing&severity=&q="
    )
    expect(findings).not_to_contain_text("nobody-uses-this")

    page.get_by_role("link", name="Edit…").click()
    dialog = page.get_by_test_id("fix-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_test_id("fix-message")).to_contain_text("does not exist")
    expect(dialog.get_by_test_id("fix-diff")).to_contain_text('"deprecated": true')
    shoot(page, artifacts_dir, "fix-preview")
    dialog.get_by_test_id("fix-confirm-mark_deprecated").click()
    expect(page.locator("#messages")).to_contain_text("gone_(Q4) is marked deprecated")
    assert ModelEntry.objects.get(name="gone_(Q4)").deprecated
    assert ActionLog.objects.filter(user_name="erin", entry_name="gone_(Q4)").exists()


def test_plan_preview_trash_and_restore(
    page, live_server, personas, library, artifacts_dir
):
    page.set_viewport_size({"width": 1440, "height": 900})
    login(page, live_server, "erin")
    page.goto(f"{live_server.url}/models/reclaim/")
    page.get_by_label("Select old-model_(AWQ)").check()
    page.get_by_label(f"Select {library.root / 'downloads/nobody-uses-this'}").check()
    page.get_by_test_id("preview-button").click()
    plan = page.get_by_test_id("plan")
    expect(plan.get_by_test_id("plan-freed")).to_have_text("161.1\xa0KB")
    expect(plan.get_by_test_id("plan-item")).to_have_count(2)
    assert library.old.exists()  # the preview moved nothing
    shoot(page, artifacts_dir, "plan-preview")

    plan.get_by_test_id("confirm-button").click()
    expect(page).to_have_url(f"{live_server.url}/models/trash/")
    expect(page.locator("#messages")).to_contain_text("Moved 2 folder(s) to the trash")
    table = page.get_by_test_id("trash-table")
    expect(table).to_contain_text("old-model_(AWQ)")
    assert not library.old.exists()
    assert ModelEntry.objects.get(name="old-model_(AWQ)").deprecated
    shoot(page, artifacts_dir, "trash")

    item = TrashItem.objects.get(entry_names=["old-model_(AWQ)"])
    page.get_by_test_id(f"restore-{item.pk}").click()
    expect(page.locator("#messages")).to_contain_text(f"Restored {library.old}")
    assert (library.old / "model.safetensors").exists()
    item.refresh_from_db()
    assert item.state == TrashState.RESTORED
    assert not ModelEntry.objects.get(name="old-model_(AWQ)").deprecated

    # Emptying is a separate, confirmed page.
    page.get_by_test_id("empty-trash").click()
    expect(page.get_by_test_id("empty-list")).to_contain_text("nobody-uses-this")
    shoot(page, artifacts_dir, "empty-confirm")
    page.get_by_test_id("empty-confirm").check()
    page.get_by_test_id("empty-submit").click()
    expect(page.locator("#messages")).to_contain_text("Deleted 1 folder(s) for good")
    assert not os.listdir(library.root / ".imageworks-trash")
