"""Issue 15 item 6 leftovers in a real browser (1440x900 and 390x844): a lock violation
shows both 64-hex hashes whole, is said once, and turns the table's padlock red with a
tooltip; an Ollama entry's drawer has no vLLM serving section about another model."""

from __future__ import annotations

import os
import re

import pytest
from playwright.sync_api import expect

from imageworks_site import cli
from registry.models import ModelEntry
from tests.browser.conftest import wait_for_quiet
from tests.browser.test_live_panels_browser import VIEWPORTS, open_as
from tests.browser.test_verify_browser import FLORENCE

HEX64 = re.compile(r"\b[0-9a-f]{64}\b")


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_a_lock_violation_is_whole_said_once_and_red_in_the_table(
    chromium,
    live_server,
    personas,
    sample,
    size,
    artifacts_dir,
    axe,
):
    assert cli.main(["lock", FLORENCE, "--set-expected"]) == 0
    entry = ModelEntry.objects.get(name=FLORENCE)
    with open(os.path.join(entry.model_dir, "README.md"), "a") as fh:
        fh.write("changed after the lock\n")
    context, page = open_as(chromium, live_server, "alice", size)
    try:
        page.goto(f"{live_server.url}/models/{entry.pk}/")
        # The drawer's panels load and refresh themselves after the page: a click
        # on a button being swapped out is lost, so click once they have settled.
        page.wait_for_load_state("networkidle")
        wait_for_quiet(page)
        page.get_by_test_id("verify-button").click()
        job = page.locator(f"#verify-job-{entry.pk} .job-status")
        expect(job).to_have_attribute("data-job-status", "failed", timeout=20_000)
        # The job's end refreshes the panel (and the live poll again): read it after.
        wait_for_quiet(page)
        error = job.locator(".msg-error")
        expect(error).to_contain_text("Lock violation")
        text = error.inner_text()
        assert len(HEX64.findall(text)) == 2, text  # both hashes, whole
        # Not clipped: the box shows all its text inside the drawer.
        assert error.evaluate("e => e.scrollWidth <= e.clientWidth + 1")
        drawer = page.locator("#drawer").bounding_box()
        box = error.bounding_box()
        assert box["x"] + box["width"] <= drawer["x"] + drawer["width"] + 1
        panel = page.get_by_test_id("verify-panel")
        assert panel.inner_text().count("Lock violation") == 1
        expect(panel.get_by_test_id("lock-gate")).to_have_count(0)
        expect(panel.locator(".lock.is-violated")).to_have_count(1)
        # The table's padlock turns red, with the reason on hover.
        row = page.locator(f'#models-grid tbody tr[data-pk="{entry.pk}"]')
        red = row.get_by_test_id("lock-violated")
        expect(red).to_have_count(1, timeout=8_000)
        expect(red).to_have_attribute("title", re.compile("Lock violated"))
        # The drawer's badge says it too (no green "locked" next to a violation).
        expect(page.get_by_test_id("drawer-lock-violated")).to_have_count(
            1, timeout=8_000
        )
        # Scrolled in the page's own JS: one step, no element handle that a live
        # refresh could detach between finding the box and scrolling to it.
        error.evaluate("el => el.scrollIntoView({block: 'center'})")
        page.screenshot(path=str(artifacts_dir / f"lock-violation-{size}.png"))
        axe(page, f"drawer with a lock violation ({size})", include="#drawer")
    finally:
        context.close()


def test_an_ollama_entry_has_no_vllm_section(
    chromium,
    live_server,
    personas,
    sample,
):
    entry = ModelEntry.objects.filter(backend="ollama").first()
    context, page = open_as(chromium, live_server, "alice", "desktop")
    try:
        page.goto(f"{live_server.url}/models/{entry.pk}/")
        slot = page.get_by_test_id("activation-slot")
        expect(slot).to_contain_text("Serving (ollama)")
        expect(slot).not_to_contain_text("Serving (vLLM)")
        expect(slot.get_by_test_id("vllm-status")).to_have_count(0)
    finally:
        context.close()
