"""Stored XSS in a real browser: hostile registry content (tests/hardening/xss_payloads.py)
is loaded on every page that shows it; no dialog opens and the ``window.__xss``
sentinel the payloads would set stays undefined."""

from __future__ import annotations

import pytest

from tests.browser.conftest import login
from tests.hardening import xss_payloads as xp


@pytest.fixture
def hostile(settings, tmp_path, transactional_db):
    settings.IMAGEWORKS_REGISTRY_DIR = tmp_path / "configs"
    settings.IMAGEWORKS_STAGING_DIR = tmp_path / "_staging"
    settings.IMAGEWORKS_LOG_DIR = tmp_path / "logs"
    return xp.seed(tmp_path / "configs", tmp_path / "models")


def _watch(page) -> list[str]:
    dialogs: list[str] = []

    def on_dialog(dialog):
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    return dialogs


def _assert_clean(page, dialogs, where: str) -> None:
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(200)  # let image errors and htmx swaps settle
    assert dialogs == [], f"{where}: a dialog opened: {dialogs}"
    assert page.evaluate("typeof window.__xss") == "undefined", (
        f"{where}: payload ran (window.__xss={page.evaluate('window.__xss')})"
    )
    assert page.locator("img[src=x], svg[onload]").count() == 0, where


def test_no_payload_runs_on_any_page(page, live_server, personas, hostile):
    entry, job = hostile["entry"], hostile["job"]
    dialogs = _watch(page)
    login(page, live_server, "root")
    pages = [
        "/",
        "/models/",
        f"/models/?q={xp.IMG}",
        f"/models/{entry.pk}/",
        f"/models/{entry.pk}/edit/",
        "/actions/",
        f"/jobs/{job.pk}/",
        "/backends/vllm/activations/",
    ]
    for path in pages:
        page.goto(f"{live_server.url}{path}")
        _assert_clean(page, dialogs, path)
    # the drawer shows the hostile values as text
    page.goto(f"{live_server.url}/models/{entry.pk}/")
    page.wait_for_load_state("networkidle")
    text = page.locator("body").inner_text()
    assert "<svg onload=" in text
    assert 'x"><img src=x onerror=alert(1)>' in text


def test_opening_the_drawer_and_hovering_runs_nothing(
    page, live_server, personas, hostile
):
    dialogs = _watch(page)
    login(page, live_server, "erin")
    page.goto(f"{live_server.url}/models/")
    page.wait_for_load_state("networkidle")
    link = page.locator("a.row-link", has_text="xss/")
    link.hover()
    link.click()
    page.wait_for_load_state("networkidle")
    for element in page.locator("#drawer [title], #drawer .chip").all()[:30]:
        if element.is_visible():
            element.hover()
    _assert_clean(page, dialogs, "drawer via htmx")
    edit = page.get_by_test_id("edit-entry")
    if edit.count():
        edit.click()
        page.wait_for_load_state("networkidle")
        _assert_clean(page, dialogs, "edit dialog")
