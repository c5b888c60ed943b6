"""Real-browser fixtures: Debian's Chromium driven by Playwright against live_server.

Never run ``playwright install``: the machine is offline; we use /usr/bin/chromium.
Outside CI the browser tests skip when Chromium is missing; in CI (CI=true) a
missing browser is a failure, so a broken setup can never pass silently.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
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


_QUIET_WATCH = """() => {
  if (window.__quiet) return;
  const q = window.__quiet = {inflight: 0, last: performance.now()};
  const send = XMLHttpRequest.prototype.send;
  XMLHttpRequest.prototype.send = function (...args) {
    q.inflight++;
    this.addEventListener("loadend", () => {
      q.inflight--;
      // Polls answering "nothing changed" (204, 304) change nothing on the page.
      if (this.status !== 204 && this.status !== 304) q.last = performance.now();
    });
    return send.apply(this, args);
  };
  document.addEventListener("htmx:afterSettle", () => { q.last = performance.now(); });
}"""


def wait_for_quiet(page, quiet_ms: int = 2500, timeout: float = 20_000) -> None:
    """Wait until the page's panels have stopped refreshing themselves.

    One change fires several live refreshes (the action's own answer, the job's end,
    then the live poll); an assertion that reads a value once (``inner_text``,
    ``bounding_box``) must not read a panel between two of them. Waits until no
    request is in flight and none has brought content or settled a swap for
    *quiet_ms*: longer than the live poll's 2 s, so the poll's own wave of refreshes
    (the change seen from ``/live/``) has come. Polls that answer 204 or 304 do not
    count. Counts requests from the first call on: call it once before a quick action.
    """
    page.evaluate(_QUIET_WATCH)
    page.wait_for_function(
        "ms => window.__quiet.inflight === 0"
        " && performance.now() - window.__quiet.last > ms",
        arg=quiet_ms,
        timeout=timeout,
    )


@pytest.fixture
def logged_in_page(page, live_server, personas):
    """``logged_in_page("operator")`` -> a Playwright page signed in with that persona."""

    def _login(role: str = "operator"):
        login(page, live_server, personas[role].username)
        return page

    return _login


# --- Accessibility: axe-core, run inside the page ------------------------------------
# The npm package is pinned by tests/browser/axe/package-lock.json and installed with
# `npm ci` by scripts/test and .ci/run. Outside CI a missing install skips the axe checks
# (the rest of each test still runs) with a warning that says why; in CI it fails, like a
# missing browser.
AXE_JS = (
    Path(__file__).resolve().parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
)
WCAG_21_AA = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
BLOCKING_IMPACTS = ("serious", "critical")


class AxeSkipped(UserWarning):
    """The accessibility checks did not run (axe-core is not installed)."""


@pytest.fixture(scope="session")
def axe_source() -> str | None:
    if AXE_JS.exists():
        return AXE_JS.read_text(encoding="utf-8")
    reason = (
        f"axe-core is not installed ({AXE_JS} is missing): accessibility checks skipped;"
        " run `npm ci --prefix tests/browser/axe` (scripts/test does when npm is installed)"
    )
    if os.environ.get("CI"):
        pytest.fail(reason)
    warnings.warn(AxeSkipped(reason), stacklevel=1)
    return None


@pytest.fixture
def axe(axe_source):
    """``axe(page, "what")``: WCAG 2.1 A/AA rules on the page as it is now; fails on any
    serious or critical violation and returns all violations (for the minor ones)."""

    def check(page, what: str, *, include: str | None = None) -> list[dict]:
        if axe_source is None:
            return []  # skipped, with the AxeSkipped warning above
        if not page.evaluate("typeof window.axe === 'object'"):
            page.add_script_tag(content=axe_source)
        violations = page.evaluate(
            """async ([include, tags]) => {
                const result = await axe.run(include ? { include: [include] } : document,
                    { runOnly: { type: "tag", values: tags }, resultTypes: ["violations"] });
                return result.violations.map(v => ({
                    id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.slice(0, 4).map(n => n.target.join(" ") + " -> " +
                        (n.failureSummary || "").replace(/\\s+/g, " ").slice(0, 200)),
                }));
            }""",
            [include, WCAG_21_AA],
        )
        blocking = [v for v in violations if v["impact"] in BLOCKING_IMPACTS]
        assert not blocking, f"axe ({what}): " + "\n".join(
            f"[{v['impact']}] {v['id']}: {v['help']}\n    " + "\n    ".join(v["nodes"])
            for v in blocking
        )
        return violations

    return check


@pytest.fixture
def sample(settings, tmp_path, transactional_db):
    """The sample registry (real little model folders, files an hour old), synced;
    returns the models folder (the registry is ``settings.IMAGEWORKS_REGISTRY_DIR``)."""
    from registry.audit import Actor
    from registry.sample import write_sample_registry
    from registry.services.sync import sync_registry

    settings.IMAGEWORKS_REGISTRY_DIR = tmp_path / "configs"
    settings.IMAGEWORKS_STAGING_DIR = tmp_path / "_staging"
    settings.IMAGEWORKS_MODEL_ROOTS = []
    models = tmp_path / "models"
    write_sample_registry(settings.IMAGEWORKS_REGISTRY_DIR, models, force=True)
    old = time.time() - 3600
    for path in models.rglob("*"):
        if path.is_file():
            os.utime(path, (old, old))
    sync_registry(Actor.system("test"), force=True)
    return models
