"""API tokens in Chromium: from the user menu, create one, use it once, revoke it."""

import httpx
from playwright.sync_api import expect


def test_a_token_made_on_the_page_works_until_it_is_revoked(
    logged_in_page, live_server, artifacts_dir
):
    page = logged_in_page("operator")
    page.get_by_role("link", name="API tokens").click()
    expect(page.locator("h1")).to_have_text("API tokens")
    page.fill("#id_label", "laptop script")
    page.select_option("#id_scope", "read")
    page.get_by_role("button", name="Create token").click()
    secret = page.get_by_test_id("token-secret").inner_text().strip()
    assert secret.startswith("iwk_")
    page.screenshot(path=str(artifacts_dir / "tokens-page.png"), full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280, f"the tokens page scrolls sideways ({width} px)"

    headers = {"Authorization": f"Bearer {secret}"}
    me = httpx.get(f"{live_server.url}/api/v1/me", headers=headers, trust_env=False)
    assert me.json()["token_label"] == "laptop script"

    page.reload()
    expect(page.get_by_test_id("token-secret")).to_have_count(0)
    row = page.get_by_test_id("token-table").locator("tr", has_text="laptop script")
    expect(row).to_contain_text("active")
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_test_id("token-table")).to_contain_text("revoked")
    gone = httpx.get(f"{live_server.url}/api/v1/me", headers=headers, trust_env=False)
    assert gone.status_code == 401


def test_the_swagger_page_renders_with_no_internet(page, live_server, artifacts_dir):
    outside = []

    def only_local(route):
        if route.request.url.startswith(live_server.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(f"{live_server.url}/api/v1/docs")
    expect(page.locator(".swagger-ui .title")).to_contain_text(
        "ImageWorks Registry Console API"
    )
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    expect(page.get_by_text("/v1/select", exact=True)).to_be_visible()
    page.screenshot(path=str(artifacts_dir / "api-docs.png"))
    assert outside == [], f"the Swagger page asked the internet for {outside}"
