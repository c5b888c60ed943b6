"""entryChanged refreshes the table row and the drawer's own lines (gap 1).

Verify, then lock, from the drawer: without a reload the row's Hash and Lock cells and
the drawer's badges and facts follow, while the page keeps its filters, its scroll
position and the selected row.
"""

from __future__ import annotations

import os
import re

from playwright.sync_api import expect

from registry import hashing
from registry.models import ModelEntry
from tests.browser.conftest import login
from tests.browser.test_verify_browser import FLORENCE

SELECTED = re.compile(r"\bselected\b")


def test_verify_and_lock_refresh_the_row_and_the_drawer(
    page,
    live_server,
    personas,
    sample,
):
    entry = ModelEntry.objects.get(name=FLORENCE)
    with open(os.path.join(entry.model_dir, "README.md"), "a") as fh:
        fh.write("patched\n")
    new_hash = hashing.hash_directory(entry.model_dir).aggregate_sha256

    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/models/{entry.pk}/?backend=vllm")
    page.evaluate("window.__noFullLoad = true")
    row = page.locator(f'#models-grid tbody tr[data-pk="{entry.pk}"]')
    expect(row).to_have_class(SELECTED)
    badges = page.get_by_test_id("drawer-badges")
    expect(badges).to_contain_text("unlocked")

    page.get_by_test_id("verify-button").click()
    expect(row.locator("td.col-hash")).to_contain_text(new_hash[:12])
    expect(page.locator(f"#drawer-kv-{entry.pk}")).to_contain_text(new_hash[:20])

    page.get_by_test_id("lock-button").click()
    page.get_by_test_id("lock-dialog").get_by_test_id("confirm-lock").click()
    expect(row.locator(".lock.is-locked")).to_have_count(1)
    expect(badges.locator(".badge.ok", has_text="locked")).to_have_count(1)
    expect(page.locator(f"#drawer-kv-{entry.pk}")).to_contain_text("Expected hash")

    # Same view, same selection, no full page load.
    assert "backend=vllm" in page.url
    expect(row).to_have_class(SELECTED)
    assert page.evaluate("window.__noFullLoad === true")
