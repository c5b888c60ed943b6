"""A backend card follows its server: red when the fake Ollama stops, green when it
comes back, without reloading the page (htmx polling + stale re-check)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.fakes.fake_ollama import FakeOllama


@pytest.mark.browser
def test_ollama_card_turns_red_and_green_without_reload(
    logged_in_page, live_server, settings
):
    fake = FakeOllama(installed=["qwen3:8b"], loaded=["qwen3:8b"]).start()
    try:
        settings.IMAGEWORKS_OLLAMA_URL = fake.url
        settings.IMAGEWORKS_HEALTH_TIMEOUT = 0.5
        settings.IMAGEWORKS_HEALTH_CARD_POLL = 1  # the card polls every second
        settings.IMAGEWORKS_HEALTH_CARD_REFRESH = (
            0.5  # and re-checks results older than that
        )
        page = logged_in_page("viewer")
        page.goto(f"{live_server.url}/health/")
        card = page.get_by_test_id("health-card-ollama")
        expect(card).to_have_attribute("data-status", "online", timeout=10_000)
        expect(card.locator(".dot").first).to_have_class("dot green")
        expect(card).to_contain_text("qwen3:8b")
        # Mark the page: a reload would lose this property.
        page.evaluate("window.__noReload = true")

        fake.stop()
        expect(card).to_have_attribute("data-status", "offline", timeout=10_000)
        expect(card.locator(".dot").first).to_have_class("dot red")
        expect(card).to_contain_text("connection refused")

        fake.start()  # same port
        expect(card).to_have_attribute("data-status", "online", timeout=10_000)
        expect(card.locator(".dot").first).to_have_class("dot green")
        assert page.evaluate("window.__noReload") is True
    finally:
        fake.stop()


@pytest.mark.browser
def test_check_now_button_refreshes_the_card(logged_in_page, live_server, settings):
    fake = FakeOllama(installed=["qwen3:8b"]).start()
    try:
        settings.IMAGEWORKS_OLLAMA_URL = fake.url
        settings.IMAGEWORKS_HEALTH_TIMEOUT = 0.5
        settings.IMAGEWORKS_HEALTH_CARD_REFRESH = 0  # no automatic re-check
        page = logged_in_page("viewer")
        page.goto(f"{live_server.url}/health/")
        card = page.get_by_test_id("health-card-ollama")
        expect(card).to_have_attribute("data-status", "unknown", timeout=10_000)
        expect(card).to_contain_text("Never checked")
        page.get_by_test_id("health-check-ollama").click()
        expect(card).to_have_attribute("data-status", "online", timeout=10_000)
    finally:
        fake.stop()
