"""Issue 15 items 1-2 in a real browser, at 1440x900 and 390x844.

1. The drawer's Endpoint and "Copy endpoint info" name where the model is served (the
   site's vLLM host/port, the configured Ollama URL), and say which source it is.
2. Another user sees what changed without reloading: a verify by alice in her browser
   and a lock and an unlock from the CLI show up in vera's open Models page (row, drawer,
   Recent actions, Last layer changes) and on her Dashboard within a few seconds.
"""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from imageworks_site import cli
from registry.models import ModelEntry
from tests.browser.conftest import login
from tests.browser.test_activation_browser import fake_vllm  # noqa: F401 - fixture
from tests.browser.test_verify_browser import FLORENCE
from tests.utils import create_model_entry

VIEWPORTS = {"desktop": (1440, 900), "phone": (390, 844)}
FEW_SECONDS = 8_000


def open_as(chromium, live_server, username: str, size: str):
    width, height = VIEWPORTS[size]
    context = chromium.new_context(viewport={"width": width, "height": height})
    context.set_default_timeout(10_000)
    page = context.new_page()
    login(page, live_server, username)
    return context, page


def run_cli(*argv: str) -> int:
    return cli.main(list(argv))


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_the_drawer_names_the_real_endpoint_and_its_source(
    chromium, live_server, personas, settings, size, artifacts_dir, axe
):
    settings.IMAGEWORKS_VLLM_HOST = "10.9.8.7"
    settings.IMAGEWORKS_VLLM_PORT = 25001
    settings.IMAGEWORKS_OLLAMA_URL = "http://ollama-box:11434"
    cfg = {"port": 24002}
    vllm = create_model_entry(
        "qwen-live",
        backend="vllm",
        backend_config=cfg,
        merged={"name": "qwen-live", "backend": "vllm", "backend_config": cfg},
    )
    ollama = create_model_entry(
        "llava-live",
        backend="ollama",
        backend_config={},
        merged={"name": "llava-live", "backend": "ollama"},
    )
    context, page = open_as(chromium, live_server, "vera", size)
    try:
        page.goto(f"{live_server.url}/models/{vllm.pk}/")
        endpoint = page.get_by_test_id("drawer-endpoint")
        expect(endpoint.get_by_test_id("drawer-endpoint-url")).to_have_text(
            "http://10.9.8.7:25001/v1"
        )
        expect(endpoint).to_contain_text("Would be served here once activated")
        expect(endpoint).to_contain_text("IMAGEWORKS_VLLM_PORT")
        copied = page.get_by_role("button", name="Copy endpoint info").get_attribute(
            "data-copy"
        )
        assert copied.startswith("base_url: http://10.9.8.7:25001/v1\n")
        assert "24002" not in copied
        # In the page's JS: a live refresh cannot detach the box mid-scroll.
        endpoint.evaluate("el => el.scrollIntoView({block: 'center'})")
        page.screenshot(path=str(artifacts_dir / f"endpoint-vllm-{size}.png"))
        axe(page, f"drawer with endpoint ({size})", include="#drawer")

        page.goto(f"{live_server.url}/models/{ollama.pk}/")
        endpoint = page.get_by_test_id("drawer-endpoint")
        expect(endpoint.get_by_test_id("drawer-endpoint-url")).to_have_text(
            "http://ollama-box:11434/v1"
        )
        expect(endpoint).to_have_attribute("data-source", "settings")
        expect(endpoint).to_contain_text("IMAGEWORKS_OLLAMA_URL")
        # The endpoint box never overflows the drawer (long URLs wrap).
        box = endpoint.bounding_box()
        drawer = page.locator("#drawer").bounding_box()
        assert box["x"] + box["width"] <= drawer["x"] + drawer["width"] + 1
    finally:
        context.close()


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_another_user_sees_changes_without_reload(
    chromium,
    live_server,
    personas,
    sample,
    settings,
    size,
    artifacts_dir,
):
    settings.IMAGEWORKS_LIVE_POLL_SECONDS = 1
    entry = ModelEntry.objects.get(name=FLORENCE)
    alice_ctx, alice = open_as(chromium, live_server, "alice", size)
    vera_ctx, vera = open_as(chromium, live_server, "vera", size)
    dash_ctx, dash = open_as(chromium, live_server, "vera", size)
    try:
        vera.goto(f"{live_server.url}/models/{entry.pk}/")
        dash.goto(f"{live_server.url}/")
        for pg in (vera, dash):
            pg.evaluate("window.__noReload = true")
        row = vera.locator(f'#models-grid tbody tr[data-pk="{entry.pk}"]')
        recent = vera.get_by_test_id("recent-actions")
        changes = vera.get_by_test_id("layer-changes")
        badges = vera.get_by_test_id("drawer-badges")
        expect(badges).to_contain_text("unlocked")
        expect(recent).not_to_contain_text("Lock")

        # alice verifies in her own browser: vera's Recent actions and drawer history follow.
        alice.goto(f"{live_server.url}/models/{entry.pk}/")
        alice.get_by_test_id("verify-button").click()
        expect(alice.locator(f"#verify-job-{entry.pk} .job-status")).to_have_attribute(
            "data-job-status", "succeeded"
        )
        expect(recent).to_contain_text("alice", timeout=FEW_SECONDS)
        expect(recent).to_contain_text("Verify", timeout=FEW_SECONDS)
        expect(vera.get_by_test_id("drawer-history")).to_contain_text(
            "Verify", timeout=FEW_SECONDS
        )

        # A lock from the command line: row, drawer, Recent actions, Last layer changes.
        locked = ModelEntry.objects.filter(
            testing=False, deprecated=False, locked=True
        ).count()
        assert run_cli("lock", FLORENCE, "--set-expected") == 0
        expect(row.locator(".lock.is-locked")).to_have_count(1, timeout=FEW_SECONDS)
        expect(badges.locator(".badge.ok", has_text="locked")).to_have_count(
            1, timeout=FEW_SECONDS
        )
        expect(recent).to_contain_text("Lock", timeout=FEW_SECONDS)
        expect(changes).to_contain_text(FLORENCE, timeout=FEW_SECONDS)
        expect(changes).to_contain_text("version_lock", timeout=FEW_SECONDS)
        expect(dash.get_by_test_id("dash-actions")).to_contain_text(
            "Lock", timeout=FEW_SECONDS
        )
        expect(dash.get_by_test_id("dash-registry")).to_contain_text(
            f"({locked + 1} locked)", timeout=FEW_SECONDS
        )
        vera.screenshot(
            path=str(artifacts_dir / f"live-after-cli-lock-{size}.png"), full_page=True
        )

        assert run_cli("unlock", FLORENCE) == 0
        expect(badges).to_contain_text("unlocked", timeout=FEW_SECONDS)
        expect(row.locator(".lock.is-locked")).to_have_count(0, timeout=FEW_SECONDS)
        for pg in (vera, dash):
            assert pg.evaluate("window.__noReload === true")  # never reloaded
        dash.screenshot(path=str(artifacts_dir / f"live-dashboard-{size}.png"))
    finally:
        for ctx in (alice_ctx, vera_ctx, dash_ctx):
            ctx.close()


def test_a_poll_with_nothing_changed_is_a_304(chromium, live_server, personas):
    context, page = open_as(chromium, live_server, "vera", "desktop")
    try:
        statuses: list[int] = []
        page.on(
            "response",
            lambda r: statuses.append(r.status) if "/live/" in r.url else None,
        )
        page.goto(f"{live_server.url}/models/")
        # The first polls may see the health check the backend cards ran on load.
        page.wait_for_timeout(4_000)
        assert statuses[0] == 200  # the baseline
        settled = len(statuses)
        page.wait_for_timeout(5_000)
        quiet = statuses[settled:]
        assert len(quiet) >= 2 and set(quiet) == {304}, json.dumps(statuses)
    finally:
        context.close()


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_health_headline_is_the_configured_server(
    chromium, live_server, personas, settings, size, artifacts_dir, axe
):
    from tests.backends.vllm_helpers import free_port
    from tests.fakes.fake_ollama import FakeOllama

    fake = FakeOllama(installed=["llava:7b"]).start()
    dead = free_port()
    try:
        settings.IMAGEWORKS_OLLAMA_URL = fake.url
        settings.IMAGEWORKS_TRITON_URL = f"http://127.0.0.1:{free_port()}"
        # The dead addresses refuse at once; the live fake may answer late on a busy
        # CI host, and a timed-out first check would stay on the card past the wait.
        settings.IMAGEWORKS_HEALTH_TIMEOUT = 3.0
        long_base = (
            f"http://127.0.0.1:{dead}/a-rather-long-proxy-prefix-for-an-old-ollama-box"
            "/that-nobody-switched-off-in-the-registry-yet/v1"
        )
        create_model_entry(
            "llava-here",
            backend="ollama",
            backend_config={},
            served_model_id="llava:7b",
            merged={"name": "llava-here", "backend": "ollama"},
        )
        create_model_entry(
            "qwen-elsewhere",
            backend="ollama",
            backend_config={"base_url": long_base},
            merged={
                "name": "qwen-elsewhere",
                "backend": "ollama",
                "backend_config": {"base_url": long_base},
            },
        )
        context, page = open_as(chromium, live_server, "vera", size)
        try:
            page.goto(f"{live_server.url}/models/")
            card = page.locator("#card-ollama")
            expect(card.get_by_test_id("health-status-ollama")).to_have_text(
                "Ready", timeout=10_000
            )
            expect(card.get_by_test_id("health-others-ollama")).to_contain_text(
                "1 not ready"
            )
            expect(page.locator("#card-triton")).to_be_visible()
            expect(
                page.locator("#card-triton").get_by_test_id("health-status-triton")
            ).to_have_text("Offline", timeout=10_000)
            page.screenshot(path=str(artifacts_dir / f"health-models-{size}.png"))

            page.goto(f"{live_server.url}/health/")
            hcard = page.get_by_test_id("health-card-ollama")
            expect(hcard).to_have_attribute("data-status", "online", timeout=10_000)
            expect(hcard.get_by_test_id("health-primary-ollama")).to_contain_text(
                "IMAGEWORKS_OLLAMA_URL"
            )
            expect(hcard).to_contain_text("Entries' own servers")
            expect(hcard).to_contain_text("qwen-elsewhere")
            error = hcard.locator(".health-error")
            expect(error).to_contain_text("a-rather-long-proxy-prefix")
            outer = hcard.bounding_box()
            inner = error.bounding_box()
            assert inner["x"] + inner["width"] <= outer["x"] + outer["width"] + 1
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= VIEWPORTS[size][0], width  # nothing overflows the page
            hcard.scroll_into_view_if_needed()
            page.screenshot(
                path=str(artifacts_dir / f"health-cards-{size}.png"), full_page=True
            )
            axe(page, f"health cards ({size})")
        finally:
            context.close()
    finally:
        fake.stop()


@pytest.mark.parametrize("size", list(VIEWPORTS))
def test_an_activation_from_the_cli_shows_ready_everywhere_at_once(
    chromium,
    live_server,
    personas,
    fake_vllm,  # noqa: F811
    settings,
    monkeypatch,
    size,
    artifacts_dir,
):
    from backends.vllm import service
    from registry.audit import Actor
    from tests.browser.test_activation_browser import MODEL

    monkeypatch.setenv("FAKE_VLLM_READY_DELAY", "1")
    settings.IMAGEWORKS_LIVE_POLL_SECONDS = 1
    entry = fake_vllm[MODEL]
    dash_ctx, dash = open_as(chromium, live_server, "vera", size)
    models_ctx, models = open_as(chromium, live_server, "vera", size)
    try:
        dash.goto(f"{live_server.url}/")
        models.goto(f"{live_server.url}/models/{entry.pk}/")
        card = dash.get_by_test_id("active-model")
        expect(card).to_have_attribute("data-status", "not_configured")
        vllm_card = models.locator("#card-vllm")
        expect(vllm_card.get_by_test_id("health-status-vllm")).to_have_text(
            "Not configured"
        )
        for pg in (dash, models):
            pg.evaluate("window.__noReload = true")

        answer = service.request_activation(entry, Actor.cli(), wait=True)
        assert answer.outcome == service.RequestOutcome.DONE, answer.message
        # Checked at once: Ready, never "Not configured" next to the active model.
        expect(card).to_have_attribute("data-status", "online", timeout=FEW_SECONDS)
        expect(card).to_contain_text(MODEL)
        expect(vllm_card.get_by_test_id("health-status-vllm")).to_have_text(
            "Ready", timeout=FEW_SECONDS
        )
        expect(vllm_card).to_contain_text(MODEL)
        endpoint = models.get_by_test_id("drawer-endpoint")
        expect(endpoint).to_have_attribute(
            "data-source", "activation", timeout=FEW_SECONDS
        )
        expect(endpoint).to_contain_text("Served now")
        expect(endpoint.get_by_test_id("drawer-endpoint-url")).to_have_text(
            f"http://127.0.0.1:{settings.IMAGEWORKS_VLLM_PORT}/v1"
        )
        dash.screenshot(
            path=str(artifacts_dir / f"live-activated-dashboard-{size}.png")
        )
        models.screenshot(path=str(artifacts_dir / f"live-activated-models-{size}.png"))

        answer = service.request_stop(Actor.cli(), wait=True)
        assert answer.outcome == service.RequestOutcome.DONE, answer.message
        expect(card).to_have_attribute(
            "data-status", "not_configured", timeout=FEW_SECONDS
        )
        expect(vllm_card.get_by_test_id("health-status-vllm")).to_have_text(
            "Not configured", timeout=FEW_SECONDS
        )
        expect(endpoint).to_have_attribute(
            "data-source", "settings", timeout=FEW_SECONDS
        )
        for pg in (dash, models):
            assert pg.evaluate("window.__noReload === true")
    finally:
        dash_ctx.close()
        models_ctx.close()
