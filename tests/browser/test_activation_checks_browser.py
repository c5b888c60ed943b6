"""Issue 13 in a real browser, at 1440x900 and on a phone (390x844): "Check before
activating" lists each check with its fix; the Activate dialog offers the override
(checkbox + reason) only when checks failed; the Stop dialog names who started the
model and, with requests in flight, offers waiting or stopping now with a reason;
the GPU card shows our model's memory. Screenshots go to test-artifacts/.

The fake vLLM and the fake nvidia-smi stand in for the GPU host. Test settings run
q2 jobs inline, so a POST returns when its job has finished.
"""

from __future__ import annotations

import json
import urllib.request

import pytest
from playwright.sync_api import expect

from backends.models import Activation
from backends.vllm import server, service
from registry.audit import Actor
from registry.choices import Outcome
from registry.models import ActionLog
from tests.backends.activation_fixtures import make_entry
from tests.backends.model_files import fake_gpus, nvidia_smi_command, truncate
from tests.backends.vllm_helpers import FAKE_ENV, FAKE_LAUNCHER, free_port, kill_fakes
from tests.browser.conftest import login

SIZES = {"desktop": (1440, 900), "phone": (390, 844)}
#: For what waits on the server (preflight reads files and runs the fake nvidia-smi):
#: generous on a loaded CI box; nothing waits for a fixed sleep.
SLOW = 20_000
GOOD, BROKEN = "qwen2.5-vl-7b-instruct_(AWQ)", "gemma-3-12b_(truncated)"


def confirm_and_wait(pg, button, path: str) -> None:
    """Click ``button`` and wait for its POST's answer.

    The POST answers once its (inline) job has finished and its audit row is
    complete. The drawer's slot watch may show the new state a moment earlier,
    between the process change and the audit row's finish, so a test that reads
    the audit row waits for this answer rather than for the drawer.
    """
    with pg.expect_response(
        lambda r: r.request.method == "POST" and path in r.url, timeout=30_000
    ):
        button.click()


@pytest.fixture
def gpu_host(settings, tmp_path, monkeypatch, transactional_db, personas):
    """A fake vLLM launcher, a fake GPU, a good entry and one with a truncated shard."""
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
    settings.IMAGEWORKS_VLLM_ENV_ALLOWLIST = ["PATH", *FAKE_ENV]
    settings.IMAGEWORKS_HEALTH_CARD_REFRESH = 0
    settings.IMAGEWORKS_NVIDIA_SMI = nvidia_smi_command()
    gpus = tmp_path / "gpus.json"
    fake_gpus(
        gpus,
        used_mib=900,
        processes=[
            {
                "pid": 4242,
                "gpu_uuid": "GPU-fake-0",
                "process_name": "/usr/bin/Xorg",
                "used_memory": 480,
            }
        ],
    )
    monkeypatch.setenv("FAKE_NVIDIA_SMI_STATE", str(gpus))
    monkeypatch.setenv("FAKE_VLLM_READY_DELAY", "0.3")
    monkeypatch.setenv("FAKE_VLLM_GPU_STATE", str(gpus))
    monkeypatch.setenv("FAKE_VLLM_GPU_MIB", "17000")
    weights = tmp_path / "weights"
    good = make_entry(GOOD, weights, shards=2)
    broken = make_entry(BROKEN, weights, shards=2)
    truncate(weights / BROKEN / "model-00002-of-00002.safetensors", by=512)
    yield {"good": good, "broken": broken, "port": settings.IMAGEWORKS_VLLM_PORT}
    kill_fakes()
    server._POPENS.clear()


def open_page(chromium, live_server, size: str, user: str = "alice"):
    width, height = SIZES[size]
    ctx = chromium.new_context(viewport={"width": width, "height": height})
    ctx.set_default_timeout(15_000)
    pg = ctx.new_page()
    login(pg, live_server, user)
    return ctx, pg


def no_sideways_scroll(pg, size: str) -> None:
    width = pg.evaluate("document.documentElement.scrollWidth")
    assert width <= SIZES[size][0], f"{size}: the page scrolls sideways ({width}px)"


def stage(port: int, **counts) -> None:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/_control",
        data=json.dumps(counts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(req, timeout=5).close()


@pytest.mark.parametrize("size", list(SIZES))
def test_check_button_and_the_override(
    chromium, live_server, gpu_host, artifacts_dir, axe, size
):
    broken = gpu_host["broken"]
    ctx, pg = open_page(chromium, live_server, size)
    try:
        pg.goto(f"{live_server.url}/models/{broken.pk}/")
        fit = pg.get_by_test_id("fit")
        expect(fit).to_have_attribute("data-verdict", "fits", timeout=SLOW)
        expect(fit.get_by_test_id("fit-estimate")).to_contain_text("Fits: weights")

        pg.get_by_test_id("preflight-button").click()
        report = pg.get_by_test_id("preflight")
        expect(report).to_have_attribute("data-ok", "false", timeout=SLOW)
        expect(report).to_contain_text("1 check failed")
        failed = report.locator('[data-status="fail"]')
        expect(failed).to_have_count(1)
        expect(failed).to_contain_text("model-00002-of-00002.safetensors is truncated")
        expect(failed).to_contain_text("(512 missing)")
        expect(failed).to_contain_text(
            "Fix: Download the named file(s) again, then run Verify."
        )
        report.scroll_into_view_if_needed()
        no_sideways_scroll(pg, size)
        axe(pg, f"drawer with the preflight report ({size})")
        pg.screenshot(path=str(artifacts_dir / f"preflight-report-{size}.png"))

        pg.get_by_test_id("activate-button").click()
        dialog = pg.get_by_test_id("activate-dialog")
        expect(dialog.get_by_test_id("preflight-failed")).to_contain_text(
            "1 check failed", timeout=SLOW
        )
        override = dialog.get_by_test_id("override-preflight")
        expect(override).to_be_visible()
        reason = dialog.get_by_test_id("reason")
        expect(reason).to_be_visible()
        axe(pg, f"activate dialog with the override ({size})", include="dialog[open]")
        pg.screenshot(path=str(artifacts_dir / f"activate-override-{size}.png"))

        # Without the checkbox and the reason the browser does not submit.
        dialog.get_by_test_id("confirm-activate").click()
        expect(dialog).to_be_visible()
        assert not Activation.objects.exists()

        override.check()
        reason.fill("shard 2 is re-downloading; testing the first half")
        confirm_and_wait(
            pg, dialog.get_by_test_id("confirm-activate"), "/vllm/activate/"
        )
        expect(pg.get_by_test_id("drawer-active")).to_be_visible(timeout=30_000)
        row = ActionLog.objects.filter(action="activate").first()
        assert row.outcome == Outcome.SUCCEEDED
        assert row.user_name == "alice"
        assert (
            row.details["reason"] == "shard 2 is re-downloading; testing the first half"
        )
        assert row.details["preflight"]["overridden"] is True
    finally:
        ctx.close()
        service.stop(Actor.system("tester"))


@pytest.mark.parametrize("size", list(SIZES))
def test_stop_dialog_with_requests_in_flight(
    chromium, live_server, gpu_host, artifacts_dir, axe, size
):
    good = gpu_host["good"]
    # As the CLI does: activate, then measure what the server holds on the GPU.
    service.request_activation(good, Actor.system("bob"), wait=True)
    stage(gpu_host["port"], running=2, waiting=1)
    ctx, pg = open_page(chromium, live_server, size)
    try:
        pg.goto(f"{live_server.url}/models/{good.pk}/")
        expect(pg.get_by_test_id("fit-measured")).to_contain_text(
            "Measured 16.6 GiB on GPU 0", timeout=SLOW
        )
        pg.get_by_test_id("stop-button").click()
        dialog = pg.get_by_test_id("stop-dialog")
        expect(dialog).to_be_visible()
        expect(dialog).to_contain_text(f"Stop {GOOD}?")
        expect(dialog.get_by_test_id("stop-who")).to_contain_text("Started by bob at")
        in_flight = dialog.get_by_test_id("in-flight")
        expect(in_flight).to_have_attribute("data-busy", "true", timeout=SLOW)
        expect(in_flight).to_contain_text("2 requests running, 1 waiting")
        expect(dialog.get_by_test_id("in-flight-wait")).to_be_checked()
        expect(dialog.get_by_test_id("drain-seconds")).to_have_value("60")
        axe(pg, f"stop dialog with requests in flight ({size})", include="dialog[open]")
        pg.screenshot(path=str(artifacts_dir / f"stop-dialog-in-flight-{size}.png"))

        dialog.get_by_test_id("in-flight-now").check()
        dialog.get_by_test_id("reason").fill("GPU needed for a training run")
        confirm_and_wait(pg, dialog.get_by_test_id("confirm-stop"), "/vllm/stop/")
        expect(pg.get_by_test_id("drawer-active")).to_have_count(0, timeout=30_000)
        row = ActionLog.objects.filter(action="stop").first()
        assert row.details["reason"] == "GPU needed for a training run"
        assert "2 requests running, 1 waiting cut off" in row.message
    finally:
        ctx.close()


def test_stop_dialog_waits_until_idle(chromium, live_server, gpu_host):
    good = gpu_host["good"]
    service.activate(good, Actor.system("bob"))
    ctx, pg = open_page(chromium, live_server, "desktop")
    try:
        pg.goto(f"{live_server.url}/models/{good.pk}/")
        stage(gpu_host["port"], running=1, idle_after=4)  # it finishes in 4 s
        pg.get_by_test_id("stop-button").click()
        dialog = pg.get_by_test_id("stop-dialog")
        expect(dialog.get_by_test_id("in-flight")).to_contain_text(
            "1 request running", timeout=SLOW
        )
        dialog.get_by_test_id("drain-seconds").fill("20")
        dialog.get_by_test_id("reason").fill("end of the day")
        confirm_and_wait(pg, dialog.get_by_test_id("confirm-stop"), "/vllm/stop/")
        expect(pg.get_by_test_id("drawer-active")).to_have_count(0, timeout=30_000)
        row = ActionLog.objects.filter(action="stop").first()
        assert row.details["drain"]["idle"] is True, row.details
        assert "after its requests finished" in row.message
    finally:
        ctx.close()


@pytest.mark.parametrize("size", list(SIZES))
def test_gpu_card_and_panel(chromium, live_server, gpu_host, artifacts_dir, axe, size):
    service.activate(gpu_host["good"], Actor.system("bob"))
    ctx, pg = open_page(chromium, live_server, size, user="vera")
    try:
        pg.goto(f"{live_server.url}/models/")
        card = pg.get_by_test_id("gpu-card")
        expect(card.get_by_test_id("gpu-memory")).to_contain_text(
            "17.5 GiB used of 24.0 GiB", timeout=SLOW
        )
        expect(card.get_by_test_id("gpu-ours")).to_contain_text(GOOD)
        expect(card).to_contain_text("Xorg")
        no_sideways_scroll(pg, size)
        axe(pg, f"models page with the GPU card ({size})", include="#card-gpus")
        card.screenshot(path=str(artifacts_dir / f"gpu-card-{size}.png"))
        pg.screenshot(path=str(artifacts_dir / f"models-with-gpu-card-{size}.png"))

        pg.goto(f"{live_server.url}/health/")
        panel = pg.get_by_test_id("gpu-panel")
        expect(panel.get_by_test_id("gpu-ours")).to_contain_text(
            "our model", timeout=SLOW
        )
        no_sideways_scroll(pg, size)
        pg.screenshot(
            path=str(artifacts_dir / f"health-gpu-panel-{size}.png"), full_page=True
        )
    finally:
        ctx.close()
        service.stop(Actor.system("tester"))
