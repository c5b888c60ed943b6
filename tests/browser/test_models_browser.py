"""The Models page in real Chromium: filters, search, drawer, toggle, CSV, shortcuts."""

from __future__ import annotations

import csv
import re

import pytest
from playwright.sync_api import expect

from registry.services.sync import SyncResult
from tests.registry.page_fixtures import seed_scenario
from tests.utils import create_model_entry

# A realistic spread for the screenshot and for paging.
REALISTIC = [
    (
        "llama-3.1-8b-instruct_(AWQ)",
        "Llama 3.1 8B Instruct (AWQ)",
        "vllm",
        ["chat", "code"],
        "tools",
    ),
    (
        "mistral-small-3.2-24b_(FP8)",
        "Mistral Small 3.2 24B",
        "vllm",
        ["chat", "reasoning"],
        "tools",
    ),
    (
        "internvl3-8b_(AWQ)",
        "InternVL3 8B (AWQ)",
        "vllm",
        ["caption", "ocr", "vision_general"],
        "vision",
    ),
    ("pixtral-12b_(FP8)", "Pixtral 12B", "vllm", ["caption", "description"], "vision"),
    ("bge-m3_(FP16)", "BGE-M3 embeddings", "vllm", ["embedding"], "embedding"),
    ("whisper-large-v3_(FP16)", "Whisper large v3", "lmdeploy", ["narration"], "audio"),
    (
        "qwen3-30b-a3b_(Q4_K_M)",
        "Qwen3 30B A3B",
        "ollama",
        ["chat", "reasoning"],
        "thinking",
    ),
    ("llava-phi3_(Q4_K_M)", "LLaVA Phi-3", "ollama", ["caption"], "vision"),
    (
        "deepseek-r1-distill-qwen-14b_(AWQ)",
        "DeepSeek R1 Distill 14B",
        "vllm",
        ["reasoning"],
        "thinking",
    ),
    (
        "phi-4-mini-instruct_(FP16)",
        "Phi-4 mini",
        "lmdeploy",
        ["chat", "keywords"],
        "tools",
    ),
    (
        "minicpm-v-2.6_(INT4)",
        "MiniCPM-V 2.6",
        "vllm",
        ["caption", "keywords", "ocr"],
        "vision",
    ),
    (
        "nomic-embed-text_(F16)",
        "Nomic embed text",
        "ollama",
        ["embedding"],
        "embedding",
    ),
]


def seed_realistic():
    import hashlib

    rows = seed_scenario()
    for i, (name, display, backend, roles, cap) in enumerate(REALISTIC):
        create_model_entry(
            name,
            display_name=display,
            backend=backend,
            roles=roles,
            installed=(True, True, False, None)[i % 4] if backend != "ollama" else None,
            locked=i % 4 == 1,
            aggregate_sha256=hashlib.sha256(name.encode()).hexdigest() if i % 3 else "",
            download_path=f"/srv/models/{name}" if backend != "ollama" else "",
            **{f"cap_{cap}": True},
        )
    return rows


@pytest.fixture
def models(personas, page):
    # The health feature's cards poll and write health rows; on the test server's
    # shared in-memory SQLite that contends with these tests ("table is locked").
    # They have their own browser tests, so answer them with an empty body here.
    page.route(
        "**/health/**", lambda route: route.fulfill(status=200, body="", headers={})
    )
    return seed_realistic()


@pytest.fixture
def fake_sync(monkeypatch):
    """The live server runs in this process: replace sync with a recorder."""
    calls = []

    def sync_registry(actor=None, *, force=False, **kwargs):
        if kwargs.get("explicit", True):  # page loads run implicit syncs too
            calls.append(actor.name)
        return SyncResult(
            added=["recorded-by-the-fake"]
        )  # "Registry reloaded: 1 added…"

    monkeypatch.setattr("registry.services.sync.sync_registry", sync_registry)
    return calls


def table_names(page) -> list[str]:
    return page.locator("#models-grid tbody tr[data-pk] a.row-link").all_inner_texts()


def mark_page(page):
    page.evaluate("window.__noFullLoad = true")


def assert_no_full_load(page):
    assert page.evaluate("window.__noFullLoad === true"), "the page was reloaded"


def test_filtering_and_searching_narrow_the_table_without_a_page_load(
    logged_in_page, live_server, models
):
    page = logged_in_page("operator")
    page.goto(f"{live_server.url}/models/")
    mark_page(page)
    assert len(table_names(page)) == 18

    page.select_option("#id_backend", "ollama")
    expect(page.locator("[data-testid=match-count]")).to_have_text("4")
    assert set(table_names(page)) == {
        "gemma3_27.0b_(Q3_K_M)",
        "qwen3-30b-a3b_(Q4_K_M)",
        "llava-phi3_(Q4_K_M)",
        "nomic-embed-text_(F16)",
    }
    expect(page).to_have_url(re.compile(r"/models/\?backend=ollama$"))

    page.select_option("#id_backend", "")
    page.fill("#id_q", "florance")  # a typo
    expect(page.locator("[data-testid=match-count]")).to_have_text("1")
    assert table_names(page) == ["florence-2-large_(FP16)"]
    expect(page).to_have_url(re.compile(r"q=florance"))
    expect(page).not_to_have_url(re.compile(r"backend="))  # empty fields dropped

    page.fill("#id_q", "qwen")
    expect(page.locator("[data-testid=match-count]")).to_have_text("4")
    names = table_names(page)  # name prefixes first, then the substring hit
    assert all(name.startswith("qwen") for name in names[:3])
    assert names[3] == "deepseek-r1-distill-qwen-14b_(AWQ)"
    assert_no_full_load(page)

    # The URL is shareable: loading it directly gives the same view.
    page.goto(page.url)
    expect(page.locator("#id_q")).to_have_value("qwen")
    expect(page.locator("[data-testid=match-count]")).to_have_text("4")


def test_sorting_and_paging_swap_the_table_and_keep_real_links(
    logged_in_page, live_server, models
):
    page = logged_in_page("operator")
    page.goto(f"{live_server.url}/models/?per_page=25")
    mark_page(page)
    # The page-size change swaps the table: click the header of the new one, not a
    # header the swap is about to replace (a click there is lost on a busy machine).
    with page.expect_response(lambda r: "per_page=25" in r.url and "/models/" in r.url):
        page.select_option("select[name=per_page]", "25")
    header = page.locator("th a.sort", has_text="Logical Name")
    assert header.get_attribute("href").startswith("/models/?")
    header.click()
    expect(page).to_have_url(re.compile(r"sort=name"))
    try:
        expect(page.locator("th[aria-sort=ascending]")).to_have_count(1)
    except AssertionError:
        print("URL", page.url)
        print(page.locator("#models-table").inner_html()[:1500])
        raise
    page.locator("th a.sort", has_text="Logical Name").click()
    expect(page.locator("th[aria-sort=descending]")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"sort=-name"))
    names = table_names(page)
    assert names == sorted(names, reverse=True)
    assert_no_full_load(page)


@pytest.mark.smoke
def test_selecting_a_row_opens_the_drawer_with_its_own_url(
    logged_in_page, live_server, models
):
    page = logged_in_page("operator")
    page.goto(f"{live_server.url}/models/?backend=vllm")
    mark_page(page)
    row = page.locator("#models-grid tr", has_text="qwen2.5-vl-7b-instruct_(AWQ)")
    row.locator("td.col-backend").click()
    drawer = page.locator("#drawer .drawer-body")
    expect(drawer).to_be_visible()
    expect(drawer.locator(".drawer-title")).to_have_text("qwen2.5-vl-7b-instruct_(AWQ)")
    expect(page).to_have_url(
        re.compile(rf"/models/{models['qwen'].pk}/\?backend=vllm$")
    )
    expect(row).to_have_class(re.compile(r"\bselected\b"))
    expect(drawer).to_contain_text("Provenance")
    expect(drawer).to_contain_text("Copy endpoint info")
    assert_no_full_load(page)

    # Loading that URL directly renders the page with the drawer open.
    page.goto(page.url)
    expect(page.locator("#drawer .drawer-title")).to_have_text(
        "qwen2.5-vl-7b-instruct_(AWQ)"
    )
    page.locator("[data-close-drawer]").click()
    expect(page.locator("#drawer .drawer-body")).to_have_count(0)


def test_the_testing_toggle_shows_and_hides_testing_entries(
    logged_in_page, live_server, models
):
    page = logged_in_page("operator")
    page.goto(f"{live_server.url}/models/")
    expect(page.get_by_test_id("testing-hidden")).to_have_text(
        "2 testing models hidden"
    )
    assert "testmodel-alpha" not in table_names(page)
    page.check("#id_testing")
    expect(page.locator("[data-testid=match-count]")).to_have_text("20")
    assert {"testmodel-alpha", "lab-experiment_(FP8)"} <= set(table_names(page))
    expect(page.locator(".tag-testing")).to_have_count(2)
    expect(page).to_have_url(re.compile(r"testing=1"))
    page.reload()
    expect(page.locator("#id_testing")).to_be_checked()
    page.uncheck("#id_testing")
    expect(page.locator("[data-testid=match-count]")).to_have_text("18")
    assert "testmodel-alpha" not in table_names(page)


def test_csv_export_downloads_the_filtered_rows(logged_in_page, live_server, models):
    page = logged_in_page("viewer")
    page.goto(f"{live_server.url}/models/")
    page.select_option("#id_backend", "vllm")
    page.fill("#id_q", "qwen")
    expect(page.locator("[data-testid=match-count]")).to_have_text("3")
    with page.expect_download() as info:
        page.click("#export-csv")
    download = info.value
    assert re.fullmatch(r"models-\d{8}-\d{4}\.csv", download.suggested_filename)
    with open(download.path(), encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:3] == ["Logical Name", "Display Name", "Backend"]
    assert [r[0] for r in rows[1:]] == table_names(page)


def test_shortcuts_work_and_do_nothing_while_typing(
    logged_in_page, live_server, models, fake_sync
):
    page = logged_in_page("operator")
    page.goto(f"{live_server.url}/models/")
    messages = page.locator("#messages")

    # l / a with nothing selected
    page.keyboard.press("l")
    expect(messages).to_contain_text("Select a model first")
    page.keyboard.press("a")

    # f focuses search; r/l/a typed there are just text
    page.keyboard.press("f")
    expect(page.locator("#id_q")).to_be_focused()
    page.keyboard.type("sigrla")
    expect(page.locator("#id_q")).to_have_value("sigrla")
    assert fake_sync == []
    expect(page.locator("dialog[open]")).to_have_count(0)
    page.fill("#id_q", "siglip")
    expect(page.locator("[data-testid=match-count]")).to_have_text("1")

    # Esc leaves the box and keeps the query; ? opens the overlay
    page.keyboard.press("Escape")
    expect(page.locator("#id_q")).not_to_be_focused()
    expect(page.locator("#id_q")).to_have_value("siglip")
    page.keyboard.press("?")
    expect(page.locator("#shortcuts-help")).to_be_visible()
    expect(page.locator("#shortcuts-help")).to_contain_text("Reload the registry")
    page.keyboard.press("Escape")
    expect(page.locator("#shortcuts-help")).to_be_hidden()

    # a on an Ollama entry: not eligible
    page.fill("#id_q", "gemma")
    page.keyboard.press("Escape")
    page.locator("#models-grid tr", has_text="gemma3").locator("td.col-backend").click()
    expect(page.locator("#drawer .drawer-body")).to_be_visible()
    page.keyboard.press("a")
    expect(messages).to_contain_text("Only vLLM models can be activated")

    # l on a vLLM entry opens the lock confirmation (the verify feature's dialog)
    page.fill("#id_q", "florence")
    page.keyboard.press("Escape")
    page.locator("#models-grid tr", has_text="florence").locator(
        "td.col-backend"
    ).click()
    expect(page.locator("#drawer .drawer-title")).to_have_text(
        "florence-2-large_(FP16)"
    )
    page.keyboard.press("l")
    expect(page.locator("dialog[open]")).to_have_count(1)
    page.keyboard.press("Escape")

    # r reloads (POST) and reports what changed
    page.keyboard.press("r")
    expect(messages).to_contain_text("Registry reloaded: 1 added")
    assert fake_sync == ["alice"]
    expect(page.locator("#id_q")).to_have_value(
        "florence"
    )  # came back to the same view


def test_a_viewer_sees_actions_disabled_and_a_direct_post_is_refused(
    logged_in_page, live_server, models, fake_sync
):
    page = logged_in_page("viewer")
    page.goto(f"{live_server.url}/models/{models['florence'].pk}/")
    expect(page.locator("#drawer .drawer-body")).to_be_visible()
    expect(page.locator("[data-shortcut=reload]")).to_be_disabled()
    expect(page.locator("#drawer [data-shortcut=lock]:enabled")).to_have_count(0)
    expect(page.locator("#drawer [data-testid=activate-button]")).to_be_disabled()
    page.keyboard.press("l")
    expect(page.locator("#messages")).to_contain_text("Not permitted")
    page.keyboard.press("r")
    expect(page.locator("#messages")).to_contain_text("Not permitted")

    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(
        f"{live_server.url}/models/reload/",
        headers={"X-CSRFToken": token, "Referer": f"{live_server.url}/models/"},
    )
    assert response.status == 403
    assert fake_sync == []


def test_screenshot_of_the_models_page(
    logged_in_page, live_server, models, artifacts_dir
):
    page = logged_in_page("operator")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{live_server.url}/models/")
    expect(page.locator("#card-vllm .be-counts")).to_be_visible()
    expect(
        page.locator(".models-lower .timeline, .models-lower .diff-layer").first
    ).to_be_visible()
    page.screenshot(path=str(artifacts_dir / "models-page.png"))
    page.locator("#models-grid tr", has_text="qwen2.5-vl-7b").locator(
        "td.col-backend"
    ).click()
    expect(page.locator("#drawer .drawer-body")).to_be_visible()
    page.wait_for_timeout(300)
    page.screenshot(path=str(artifacts_dir / "models-page-drawer.png"))
