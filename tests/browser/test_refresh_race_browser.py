"""Live panel refreshes: a change is never lost, a dialog is never swapped away.

A live change that lands while a panel is already refreshing is not lost.

When an activation ends, the slot watch fires ``slotChanged`` and the live poll
``actionsChanged`` within a second of each other; each triggers the drawer's and the
table's refresh. htmx drops the second trigger (``hx-sync drop``) or queues it on the
element that the first answer replaces, where it never runs, so a panel whose first
answer was read before the second change stayed stale until some later change: CI
once saw bob's drawer keep "Activation in progress" after the row said Active.

Here the first refresh's answer is read from the server and held, the row changes,
the second event fires, then the held (stale) answer is delivered: the panel must
still end up showing the change, with no further event and no reload.

The same holds while the operator's own filter request is in flight: the table's
refresh yields to it (``hx-sync="#model-filters:drop"``), then catches up.

A live refresh never replaces a panel under an open confirm dialog (CI once saw the
Stop dialog vanish under the operator's click): it waits until the dialog closes.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from registry.models import ModelEntry
from registry.version import bump
from tests.browser.conftest import login
from tests.browser.test_verify_browser import FLORENCE


def pump_until(page, done, timeout_ms: int = 10_000) -> bool:
    """Wait for *done()* while Playwright runs this page's route handlers (they run only
    inside Playwright calls, so a plain sleep would never let them hold a request)."""
    for _ in range(timeout_ms // 50):
        if done():
            return True
        page.wait_for_timeout(50)
    return done()


def hold_first(page, trigger_id: str) -> list:
    """Route /models/: the first request sent by the element *trigger_id* is read from
    the server at once (before any later change) and held; the list gets
    ``(route, answer)``. Every other request goes through."""
    held = []

    def handler(route):
        if route.request.headers.get("hx-trigger") == trigger_id and not held:
            held.append((route, route.fetch()))
        else:
            route.continue_()

    page.route("**/models/**", handler)
    return held


def lock_then_deliver_the_stale_answer(page, entry, held) -> None:
    """Lock *entry* and fire ``entryChanged`` while the held answer (read before the
    lock) waits, then deliver it."""
    ModelEntry.objects.filter(pk=entry.pk).update(locked=True)
    bump(listing=False)
    page.evaluate(f"htmx.trigger(document.body, 'entryChanged', {{pk: {entry.pk}}})")
    page.wait_for_timeout(300)
    route, stale = held[0]
    route.fulfill(response=stale)


@pytest.mark.parametrize("panel", ["drawer", "table"])
def test_a_change_during_a_refresh_reaches_the_panel(
    page, live_server, personas, sample, panel
):
    entry = ModelEntry.objects.get(name=FLORENCE)
    login(page, live_server, "alice")
    # Only the events fired below: the live poll would notice the change on its own.
    page.route("**/live/**", lambda route: route.fulfill(status=304))
    page.goto(f"{live_server.url}/models/{entry.pk}/")
    page.evaluate("window.__noFullLoad = true")
    row = page.locator(f'#models-grid tbody tr[data-pk="{entry.pk}"]')
    badges = page.get_by_test_id("drawer-badges")
    expect(badges).to_contain_text("unlocked")
    expect(row.locator(".lock.is-locked")).to_have_count(0)

    trigger_id = f"drawer-badges-{entry.pk}" if panel == "drawer" else "table-refresh"
    held = hold_first(page, trigger_id)
    page.evaluate("htmx.trigger(document.body, 'slotChanged', {})")
    assert pump_until(page, lambda: held), "the first refresh was not sent"
    lock_then_deliver_the_stale_answer(page, entry, held)

    if panel == "drawer":
        expect(badges.locator(".badge.ok", has_text="locked")).to_have_count(1)
    else:
        expect(row.locator(".lock.is-locked")).to_have_count(1)
    assert page.evaluate("window.__noFullLoad === true")


def test_a_live_refresh_waits_until_the_open_dialog_closes(
    page, live_server, personas, sample
):
    entry = ModelEntry.objects.get(name=FLORENCE)
    login(page, live_server, "alice")
    page.route("**/live/**", lambda route: route.fulfill(status=304))
    page.goto(f"{live_server.url}/models/{entry.pk}/")
    badges = page.get_by_test_id("drawer-badges")
    expect(badges).to_contain_text("unlocked")
    lock_dialog = page.get_by_test_id("lock-dialog")

    # 1. The refreshes are already in flight when the dialog opens: their answers (the
    # badges and the Hash & lock panel, which holds the dialog) wait.
    panels = {f"drawer-badges-{entry.pk}", f"verify-panel-{entry.pk}"}
    held = []

    def hold_first_refresh(route):
        panel = route.request.headers.get("hx-trigger")
        if panel in panels:
            panels.discard(panel)
            held.append((route, route.fetch()))
            return
        route.continue_()

    page.route("**/models/**", hold_first_refresh)
    ModelEntry.objects.filter(pk=entry.pk).update(testing=True)
    bump(listing=False)
    page.evaluate(f"htmx.trigger(document.body, 'entryChanged', {{pk: {entry.pk}}})")
    assert pump_until(page, lambda: len(held) == 2), "the refreshes were not sent"
    page.get_by_test_id("lock-button").click()
    expect(lock_dialog).to_be_visible()
    for route, answer in held:
        route.fulfill(response=answer)
    page.wait_for_timeout(1000)
    expect(lock_dialog).to_be_visible()
    expect(badges.locator(".tag-testing")).to_have_count(0)
    lock_dialog.get_by_role("button", name="Cancel").click()
    expect(badges.locator(".tag-testing")).to_have_count(1)

    # 2. The dialog is open when the change arrives: the refresh is not even sent.
    page.get_by_test_id("lock-button").click()
    expect(lock_dialog).to_be_visible()
    ModelEntry.objects.filter(pk=entry.pk).update(deprecated=True)
    bump(listing=False)
    page.evaluate(f"htmx.trigger(document.body, 'entryChanged', {{pk: {entry.pk}}})")
    page.wait_for_timeout(1000)
    expect(lock_dialog).to_be_visible()
    expect(badges.locator(".tag-deprecated")).to_have_count(0)
    lock_dialog.get_by_role("button", name="Cancel").click()
    expect(badges.locator(".tag-deprecated")).to_have_count(1)


def test_a_change_during_the_operators_own_filter_request_reaches_the_table(
    page, live_server, personas, sample
):
    """The table's live refresh yields to the operator's filter request (hx-sync drop);
    if that answer was read before the change, the table must still catch up."""
    entry = ModelEntry.objects.get(name=FLORENCE)
    login(page, live_server, "alice")
    page.route("**/live/**", lambda route: route.fulfill(status=304))
    page.goto(f"{live_server.url}/models/")
    page.evaluate("window.__noFullLoad = true")
    row = page.locator(f'#models-grid tbody tr[data-pk="{entry.pk}"]')
    expect(row.locator(".lock.is-locked")).to_have_count(0)
    held = hold_first(page, "model-filters")
    page.locator("#model-filters select[name=backend]").select_option("vllm")
    assert pump_until(page, lambda: held), "the filter request was not sent"
    lock_then_deliver_the_stale_answer(page, entry, held)

    expect(row.locator(".lock.is-locked")).to_have_count(1)
    expect(page.locator("#model-filters select[name=backend]")).to_have_value("vllm")
    assert page.evaluate("window.__noFullLoad === true")
