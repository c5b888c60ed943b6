"""S2 in a real browser: Verify shows the job and the new hash; Lock through the dialog.

Tasks run inline in tests (``Q_CLUSTER["sync"]``), so the verify job has finished by
the time its status partial arrives: the browser sees the final progress (100 %,
bytes) and the refreshed hash, not the intermediate polling steps (the polling itself
is covered by the job-status view tests).
"""

from __future__ import annotations

import os
import re

from playwright.sync_api import expect

from registry import hashing
from registry.models import ActionLog, ModelEntry
from tests.browser.conftest import login

FLORENCE = "florence-2-large_(FP16)"


def test_verify_then_lock_from_the_drawer(page, live_server, personas, sample):
    entry = ModelEntry.objects.get(name=FLORENCE)
    folder = entry.model_dir
    old_hash = entry.aggregate_sha256
    # The files changed since the recorded hash: Verify must show the new one.
    with open(os.path.join(folder, "README.md"), "a") as fh:
        fh.write("patched\n")
    new_hash = hashing.hash_directory(folder).aggregate_sha256
    assert new_hash != old_hash

    login(page, live_server, "alice")
    page.goto(f"{live_server.url}/models/{entry.pk}/")
    panel = page.get_by_test_id("verify-panel")
    expect(panel.get_by_test_id("lock-state")).to_contain_text("Unlocked")
    expect(panel.get_by_test_id("verify-hash")).to_have_text(old_hash[:12])

    panel.get_by_test_id("verify-button").click()
    job = page.locator(f"#verify-job-{entry.pk} .job-status")
    expect(job).to_have_attribute("data-job-status", "succeeded")
    expect(job.get_by_role("progressbar")).to_have_attribute("aria-valuenow", "100")
    expect(job).to_contain_text("KB")  # bytes done / total
    # entryChanged -> the slot re-fetched itself with the new hash.
    hash_cell = page.get_by_test_id("verify-hash")
    expect(hash_cell).to_have_text(new_hash[:12])
    expect(hash_cell).to_have_attribute("title", new_hash)
    expect(page.get_by_test_id("verify-last")).to_contain_text("by alice")

    # `l` opens the confirmation dialog (it never locks directly).
    page.locator("body").click(position={"x": 5, "y": 300})
    page.keyboard.press("l")
    dialog = page.get_by_test_id("lock-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_test_id("cli-equivalent")).to_have_text(
        "imageworks-models lock 'florence-2-large_(FP16)' --set-expected"
    )
    assert not ModelEntry.objects.get(pk=entry.pk).locked
    dialog.get_by_test_id("confirm-lock").click()
    expect(page.get_by_test_id("lock-state")).to_contain_text("Locked")
    expect(page.get_by_test_id("verify-expected")).to_have_text(new_hash[:12])
    expect(page.get_by_test_id("unlock-button")).to_be_visible()

    entry.refresh_from_db()
    assert entry.locked and entry.expected_sha256 == new_hash
    rows = list(
        ActionLog.objects.filter(entry_name=FLORENCE)
        .exclude(action="sync")
        .values_list("action", "user_name", "outcome")
    )
    assert rows == [("lock", "alice", "succeeded"), ("verify", "alice", "succeeded")]


def test_viewer_sees_the_buttons_disabled_with_the_reason(
    page, live_server, personas, sample
):
    entry = ModelEntry.objects.get(name="siglip-large-patch16-384_(FP32)")
    login(page, live_server, "vera")
    page.goto(f"{live_server.url}/models/{entry.pk}/")
    panel = page.get_by_test_id("verify-panel")
    expect(panel.get_by_test_id("lock-state")).to_contain_text("Locked")
    expect(panel.get_by_test_id("verify-button")).to_be_disabled()
    expect(panel.get_by_test_id("verify-button")).to_have_attribute(
        "data-reason", "Verifying needs the operator role"
    )
    expect(page.locator('[data-shortcut="lock"]')).to_be_disabled()
    expect(page).to_have_url(re.compile(rf"/models/{entry.pk}/"))
