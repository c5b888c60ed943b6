"""What users of Django admin and NetBox look for, in a real browser at desktop and
phone sizes: bulk actions, revert a change, the column chooser, compare two entries.

Each test runs the axe-core WCAG 2.1 AA check on the pages it opens and leaves
screenshots in ``test-artifacts/`` (not committed). Tasks run inline in tests, so a
bulk job has finished when its progress page first loads.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import expect

from registry import layers
from registry.audit import Actor
from registry.choices import Action
from registry.models import ActionLog, EntryChange, ModelEntry, TableConfig
from registry.services.columns import configurable
from registry.services.writeback import change_entry
from registry.tables import ModelEntryTable
from tests.browser.conftest import login

SIGLIP = "siglip-large-patch16-384_(FP32)"
FLORENCE = "florence-2-large_(FP16)"
QWEN = "qwen2.5-vl-7b-instruct_(AWQ)"
GEMMA = "gemma3_27.0b_(Q3_K_M)"
SIZES = {"desktop": (1440, 900), "phone": (390, 844)}


@pytest.fixture(params=list(SIZES))
def size(request, page):
    width, height = SIZES[request.param]
    page.set_viewport_size({"width": width, "height": height})
    return request.param


def no_sideways_scroll(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    viewport = page.evaluate("window.innerWidth")
    assert width <= viewport + 1, f"the page scrolls sideways: {width} > {viewport}"


def tick(page, name: str) -> None:
    page.locator(f'#models-grid tr[data-name="{name}"] input[name=select]').check()


def test_bulk_unlock_with_confirmation_and_progress(
    page, live_server, personas, sample, size, axe, artifacts_dir
):
    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/models/")
    tick(page, SIGLIP)
    tick(page, GEMMA)
    expect(page.locator("[data-selected-count]")).to_have_text("2 selected")
    axe(page, f"models page with ticked rows ({size})")
    page.locator("#bulk-action").select_option("unlock")
    page.get_by_test_id("bulk-go").click()

    confirm = page.get_by_test_id("bulk-confirm")
    expect(page.locator("h1")).to_have_text("Unlock 2 selected entries?")
    expect(confirm.locator(f'tr[data-name="{GEMMA}"]')).to_contain_text(
        "Already unlocked"
    )
    assert ModelEntry.objects.get(name=SIGLIP).locked, "the confirm page wrote"
    no_sideways_scroll(page)
    axe(page, f"bulk confirm page ({size})")
    page.screenshot(path=str(artifacts_dir / f"bulk-confirm-{size}.png"))

    page.get_by_test_id("bulk-confirm-button").click()
    progress = page.get_by_test_id("bulk-progress")
    expect(progress).to_have_attribute("data-finished", "true")
    expect(progress.locator(f'tr[data-name="{SIGLIP}"]')).to_contain_text(
        f"Unlocked {SIGLIP}"
    )
    no_sideways_scroll(page)
    axe(page, f"bulk progress page ({size})")
    page.screenshot(path=str(artifacts_dir / f"bulk-progress-{size}.png"))
    assert not ModelEntry.objects.get(name=SIGLIP).locked
    assert set(
        ActionLog.objects.filter(action="unlock").values_list("user_name", flat=True)
    ) == {"alice"}


def test_revert_a_change_from_the_drawer(
    page, live_server, personas, sample, size, axe, artifacts_dir
):
    entry = ModelEntry.objects.get(name=QWEN)
    old_name = entry.display_name

    def rename(raw):
        raw["display_name"] = "Renamed by Bob"
        return raw

    change_entry(
        Actor.from_user(personas["operator2"]),
        Action.EDIT,
        QWEN,
        layers.CURATED,
        rename,
    )
    change = EntryChange.objects.filter(entry_name=QWEN, layer="curated").first()

    login(page, live_server, "erin")
    page.goto(f"{live_server.url}/models/{entry.pk}/")
    link = page.locator(f'#drawer a[href$="/changes/{change.pk}/revert/"]').first
    link.click()
    expect(page.get_by_test_id("revert-page")).to_contain_text("Renamed by Bob")
    expect(page.locator('tr[data-path="display_name"]')).to_contain_text(old_name)
    no_sideways_scroll(page)
    axe(page, f"revert preview ({size})")
    page.screenshot(path=str(artifacts_dir / f"revert-preview-{size}.png"))

    page.get_by_test_id("revert-confirm").click()
    expect(page.get_by_test_id("messages")).to_contain_text(
        f"Reverted change #{change.pk}"
    )
    configs = Path(settings.IMAGEWORKS_REGISTRY_DIR)
    items = json.loads((configs / layers.CURATED_FILE).read_text())
    assert next(i for i in items if i["name"] == QWEN)["display_name"] == old_name
    row = ActionLog.objects.filter(action="edit", user_name="erin").get()
    assert row.details["revert_of"] == change.pk


def test_column_chooser_is_remembered_and_the_drawer_keeps_the_fields(
    page, live_server, personas, sample, size, axe, artifacts_dir
):
    login(page, live_server, "vera")
    page.goto(f"{live_server.url}/models/")
    page.get_by_test_id("columns-button").click()
    dialog = page.get_by_test_id("columns-dialog")
    expect(dialog).to_be_visible()
    axe(page, f"column chooser ({size})", include="#columns-dialog")
    page.screenshot(path=str(artifacts_dir / f"columns-dialog-{size}.png"))
    dialog.locator('input[name=show][value="display_name"]').uncheck()
    dialog.locator('input[name=show][value="roles"]').uncheck()
    dialog.locator('li[data-column="locked"] [data-move="-1"]').click()
    dialog.locator('li[data-column="locked"] [data-move="-1"]').click()
    dialog.get_by_test_id("columns-save").click()

    headers = page.locator("#models-grid thead th")
    # every configurable column but the two hidden ones, plus the checkbox and the name
    count = len(configurable(ModelEntryTable))
    expect(headers).to_have_count(count)
    classes = page.eval_on_selector_all(
        "#models-grid thead th", "els => els.map(e => e.classList[0])"
    )
    assert classes[:4] == ["col-select", "col-name", "col-backend", "col-lock"], classes
    assert "col-display" not in classes and "col-roles" not in classes, classes
    assert TableConfig.objects.get(user=personas["viewer"]).columns[:2] == [
        "backend",
        "locked",
    ]
    page.reload()
    expect(headers).to_have_count(count)

    qwen = ModelEntry.objects.get(name=QWEN)
    page.locator(f'#models-grid tr[data-name="{QWEN}"] a.row-link').click()
    expect(page.get_by_test_id("drawer-display-name")).to_have_text(qwen.display_name)
    expect(page.locator("#drawer dt", has_text="Roles")).to_be_visible()
    no_sideways_scroll(page)
    axe(page, f"models page with chosen columns and drawer ({size})")
    page.screenshot(path=str(artifacts_dir / f"columns-drawer-{size}.png"))


def test_compare_two_entries(
    page, live_server, personas, sample, size, axe, artifacts_dir
):
    login(page, live_server, "vera")
    page.goto(f"{live_server.url}/models/")
    tick(page, QWEN)
    page.get_by_test_id("compare-go").click()
    expect(page.get_by_test_id("messages")).to_contain_text("Tick exactly two rows")
    tick(page, QWEN)
    tick(page, FLORENCE)
    page.get_by_test_id("compare-go").click()
    expect(page.get_by_test_id("compare-page")).to_be_visible()
    expect(page.get_by_test_id("compare-count")).to_contain_text("differ")
    expect(page.locator('tr[data-path="display_name"]')).to_have_attribute(
        "data-same", "false"
    )
    no_sideways_scroll(page)
    axe(page, f"compare page ({size})")
    page.screenshot(path=str(artifacts_dir / f"compare-{size}.png"), full_page=True)
    page.get_by_test_id("compare-toggle").click()
    expect(page.locator('tr[data-same="true"]')).to_have_count(0)
    expect(page.locator('tr[data-same="false"]').first).to_be_visible()
    axe(page, f"compare page, differences only ({size})")
    page.screenshot(path=str(artifacts_dir / f"compare-diff-{size}.png"))
