"""Real-browser fixtures: Debian's Chromium driven by Playwright against live_server.

Never run ``playwright install``: the machine is offline; we use /usr/bin/chromium.
Outside CI the browser tests skip when Chromium is missing; in CI (CI=true) a
missing browser is a failure, so a broken setup can never pass silently.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; Django's ORM calls made
# by the test itself (fixtures, assertions) are still synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("IMAGEWORKS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium():
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        if os.environ.get("CI"):
            pytest.fail(
                f"Chromium not found at {CHROMIUM}; .ci/run must install Debian's chromium"
            )
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, live_server, transactional_db):
    # Depends on the server and the database so that it closes first: a page left
    # open keeps polling (htmx) while the test database is flushed, and SQLite then
    # reports "database table is locked" in the teardown.
    context = chromium.new_context(
        viewport={"width": 1280, "height": 800}, accept_downloads=True
    )
    context.set_default_timeout(10_000)
    pg = context.new_page()
    yield pg
    context.close()


@pytest.fixture
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def personas(transactional_db):
    from tests.base import make_user

    return {
        "admin": make_user("root", superuser=True),
        "operator": make_user("alice", "operator"),
        "operator2": make_user("bob", "operator"),
        "editor": make_user("erin", "editor"),
        "viewer": make_user("vera", "viewer"),
    }


def login(page, live_server, username: str, password: str | None = None) -> None:
    """Sign in through the real login page."""
    from tests.base import PASSWORD

    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password or PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("domcontentloaded")


@pytest.fixture
def logged_in_page(page, live_server, personas):
    """``logged_in_page("operator")`` -> a Playwright page signed in with that persona."""

    def _login(role: str = "operator"):
        login(page, live_server, personas[role].username)
        return page

    return _login
