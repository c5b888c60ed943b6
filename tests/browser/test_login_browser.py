"""First browser test: sign in through the real login page and see the Models shell."""

import re

from playwright.sync_api import expect

from tests.browser.conftest import login


def test_it_logs_in_and_shows_the_models_page(page, live_server, personas):
    page.goto(f"{live_server.url}/models/")
    # Anonymous users land on the login page first.
    expect(page).to_have_url(re.compile(r"/login/\?next=/models/"))
    login(page, live_server, "alice")
    expect(page).to_have_url(re.compile(r"/models/"))
    expect(page.locator("h1")).to_have_text("Models")
    expect(page.get_by_test_id("role")).to_have_text("operator")


def test_a_wrong_password_shows_a_plain_error(page, live_server, personas):
    login(page, live_server, "alice", "not-the-password")
    expect(page.get_by_role("alert")).to_contain_text("Unknown user or wrong password")
    expect(page).to_have_url(re.compile(r"/login/"))
