"""Screenshots of the main pages at 1280x800 (kept in test-artifacts/ and looked at).

Also checks what a screenshot cannot: no page scrolls sideways at 1280 px, no emoji
(Chromium on the CI box has no emoji font: they render as boxes), and the Dashboard's
Active model card with and without an active model (S1 steps 2 and 7).
"""

from __future__ import annotations

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from backends.choices import ActivationState
from backends.models import Activation
from registry.audit import Actor, record
from registry.choices import Action, Outcome
from tests.browser.conftest import login
from tests.registry.page_fixtures import seed_scenario

# Pictographic emoji that need an emoji font (dingbats like ⟳ or × are fine).
EMOJI = re.compile("[\U0001f300-\U0001faff\u2705\u274c\u23f1]")


@pytest.fixture
def scenario(personas, settings, tmp_path):
    settings.IMAGEWORKS_REGISTRY_DIR = tmp_path / "configs"  # missing: sync is a no-op
    settings.IMAGEWORKS_STAGING_DIR = tmp_path / "_staging"
    settings.IMAGEWORKS_HEALTH_CARD_REFRESH = 0  # no probing from card GETs here
    rows = seed_scenario()
    alice = Actor(name="alice", source="web")
    record(alice, Action.VERIFY, entry=rows["florence"], message="Verified: 3 files")
    record(alice, Action.LOCK, entry=rows["siglip"], message="Locked siglip")
    record(
        Actor(name="bob", source="web"),
        Action.ACTIVATE,
        entry=rows["qwen"],
        outcome=Outcome.FAILED,
        message="Activation failed: CUDA out of memory",
    )
    return rows


def check_page(page, name: str, artifacts_dir) -> None:
    page.wait_for_load_state("networkidle")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280, f"{name}: the page scrolls sideways ({width}px)"
    text = page.evaluate("document.body.innerText")
    assert not EMOJI.search(text), f"{name}: emoji in the page: {EMOJI.findall(text)}"
    page.screenshot(path=str(artifacts_dir / f"{name}.png"))


def test_screenshots_of_the_main_pages(
    page, live_server, scenario, artifacts_dir, monkeypatch
):
    login(page, live_server, "alice")

    page.goto(f"{live_server.url}/")
    card = page.get_by_test_id("active-model")
    expect(card).to_contain_text("No active model")
    check_page(page, "dashboard-no-active-model", artifacts_dir)

    page.goto(f"{live_server.url}/models/")
    expect(page.locator("#card-vllm .be-counts")).to_be_visible()
    check_page(page, "models-page-1280", artifacts_dir)

    qwen = scenario["qwen"]
    page.goto(f"{live_server.url}/models/{qwen.pk}/")
    drawer = page.locator("#drawer .drawer-body")
    expect(drawer.get_by_test_id("verify-panel")).to_be_visible()
    expect(drawer.get_by_test_id("activation-slot")).to_be_visible()
    check_page(page, "models-drawer-vllm", artifacts_dir)
    page.locator("#drawer").evaluate("el => el.scrollTo(0, 10000)")
    page.mouse.wheel(0, 600)
    page.screenshot(path=str(artifacts_dir / "models-drawer-vllm-lower.png"))

    page.goto(f"{live_server.url}/actions/")
    expect(page.locator("table.actions-table")).to_be_visible()
    check_page(page, "actions-page", artifacts_dir)

    page.goto(f"{live_server.url}/health/")
    expect(page.locator(".health-slot").first).to_be_visible()
    check_page(page, "health-overview", artifacts_dir)

    # With an active model, the Dashboard card names it (logical name, served id, port).
    # pid 4242 is not ours: keep the service from cleaning the row up as dead.
    monkeypatch.setattr("backends.vllm.status.adopt_or_clean", lambda *a, **k: None)
    Activation.objects.create(
        entry=qwen,
        logical_name=qwen.name,
        served_model_id="qwen2.5-vl-7b-awq",
        state=ActivationState.RUNNING,
        port=24001,
        pid=4242,
        user_name="alice",
        ready_at=timezone.now(),
    )
    page.goto(f"{live_server.url}/")
    expect(card).to_contain_text(qwen.name)
    expect(card).to_contain_text("24001")
    check_page(page, "dashboard-active-model", artifacts_dir)
