"""S1 in a real browser: Activate a vLLM entry, see Activating… then Active, then Stop.

The fake vLLM server (tests/fakes/fake_vllm.py) stands in for vLLM; it becomes ready
after FAKE_VLLM_READY_DELAY seconds. Test settings run q2 tasks inline
(``Q_CLUSTER["sync"]``), so with live_server the activation runs inside alice's POST:
her request is busy until the fake is ready. The rest of the site keeps answering on
other threads, which is what this test watches: alice's own row and a second browser
(bob, another operator) see Activating… and then Active through the slot watch
(``backends:slot_watch``), without reloading. Timeouts are generous (a slow CI box), but
nothing waits for a fixed sleep.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from backends.vllm import server
from tests.backends.activation_fixtures import make_entry
from tests.backends.vllm_helpers import (
    FAKE_ENV,
    FAKE_LAUNCHER,
    fake_processes,
    free_port,
    kill_fakes,
    wait_until,
)
from tests.browser.conftest import login

READY_DELAY_S = 5
MODEL = "qwen2.5-vl-7b-instruct_(AWQ)"
OTHER = "florence-2-large_(FP16)"
_SECONDS = re.compile(r"^\d+s$")


@pytest.fixture
def fake_vllm(settings, tmp_path, monkeypatch, transactional_db):
    settings.IMAGEWORKS_VLLM_LAUNCHER = FAKE_LAUNCHER
    settings.IMAGEWORKS_VLLM_PORT = free_port()
    settings.IMAGEWORKS_VLLM_HOST = "127.0.0.1"
    settings.IMAGEWORKS_VLLM_ADMIN_URL = ""
    settings.IMAGEWORKS_VLLM_START_TIMEOUT = 30.0
    settings.IMAGEWORKS_VLLM_STOP_GRACE = 1.0
    settings.IMAGEWORKS_STAGING_DIR = tmp_path / "_staging"
    settings.IMAGEWORKS_LOG_DIR = tmp_path / "logs"
    settings.IMAGEWORKS_MODEL_ROOTS = []
    settings.IMAGEWORKS_REGISTRY_DIR = tmp_path / "no-registry"  # page-load sync: no-op
    # The fake's knobs pass through the allow-list in tests only.
    settings.IMAGEWORKS_VLLM_ENV_ALLOWLIST = ["PATH", *FAKE_ENV]
    # Cards must not re-check (and reconcile) the slot from GETs during the test.
    settings.IMAGEWORKS_HEALTH_CARD_REFRESH = 0
    monkeypatch.setenv("FAKE_VLLM_READY_DELAY", str(READY_DELAY_S))
    weights = tmp_path / "weights"
    entries = {name: make_entry(name, weights) for name in (MODEL, OTHER)}
    yield entries
    kill_fakes()
    server._POPENS.clear()


def row(page, entry):
    return page.locator(f'#models-grid tbody tr[data-pk="{entry.pk}"]')


def test_activate_shows_activating_then_active_for_everyone_then_stop(
    chromium, live_server, personas, fake_vllm, artifacts_dir
):
    entry, other = fake_vllm[MODEL], fake_vllm[OTHER]
    contexts = []

    def new_page(user: str):
        ctx = chromium.new_context(viewport={"width": 1280, "height": 800})
        ctx.set_default_timeout(15_000)
        contexts.append(ctx)
        pg = ctx.new_page()
        login(pg, live_server, user)
        return pg

    try:
        # bob watches the Models page with another vLLM entry open in his drawer.
        bob = new_page("bob")
        bob.goto(f"{live_server.url}/models/{other.pk}/")
        expect(bob.get_by_test_id("activate-button")).to_be_enabled()
        expect(row(bob, entry).get_by_test_id("active-badge")).to_have_count(0)

        alice = new_page("alice")
        alice.goto(f"{live_server.url}/models/{entry.pk}/")
        alice.get_by_test_id("activate-button").click()
        dialog = alice.get_by_test_id("activate-dialog")
        expect(dialog).to_be_visible()
        expect(dialog.get_by_test_id("activate-cli")).to_contain_text(
            "imageworks-models activate-model"
        )
        expect(dialog.get_by_test_id("activate-cli")).to_contain_text(MODEL)
        dialog.get_by_test_id("confirm-activate").click()

        # Activating… with a spinner and elapsed seconds, in alice's row and bob's.
        for pg in (alice, bob):
            badge = row(pg, entry).get_by_test_id("activating-badge")
            expect(badge).to_contain_text("Activating…")
            expect(badge.locator(".spinner")).to_have_count(1)
            expect(badge.locator(".elapsed")).to_have_text(_SECONDS)
        banner = bob.get_by_test_id("activation-banner")
        expect(banner).to_contain_text("Activation in progress (alice:")
        expect(banner).to_contain_text(MODEL)
        # bob cannot start another activation meanwhile, and is told why.
        expect(bob.get_by_test_id("activate-button")).to_be_disabled()
        expect(bob.get_by_test_id("activate-reason")).to_contain_text(
            "Activation in progress (alice"
        )
        bob.screenshot(
            path=str(artifacts_dir / "activation-in-progress-other-user.png")
        )

        # Active, everywhere, without a reload.
        for pg in (alice, bob):
            expect(row(pg, entry).get_by_test_id("active-badge")).to_have_text(
                "Active", timeout=30_000
            )
            expect(pg.get_by_test_id("activation-banner")).to_have_count(0)
        expect(bob.get_by_test_id("activate-button")).to_be_enabled()
        expect(alice.get_by_test_id("drawer-active")).to_be_visible()
        assert len(fake_processes()) == 1
        alice.screenshot(path=str(artifacts_dir / "activation-active-drawer.png"))

        # Stop from alice's drawer: the Active badge clears for both.
        alice.get_by_test_id("stop-button").click()
        for pg in (alice, bob):
            expect(row(pg, entry).get_by_test_id("active-badge")).to_have_count(
                0, timeout=30_000
            )
        assert wait_until(lambda: not fake_processes(), timeout=10)

        # The Dashboard says so too.
        alice.goto(f"{live_server.url}/")
        expect(alice.get_by_test_id("active-model")).to_contain_text("No active model")
    finally:
        for ctx in contexts:
            ctx.close()
