"""Another tool rewrites the discovered layer while we write it (issue 17, section 4).

Deterministic: ``tests/hardening/hooked_cli.py`` makes the other tool's write land in
the worst place, after our writer has read the layer and while it writes its temp
file. Our writer must check the file's hash again right before its rename and, when
the file moved, re-apply its change to the new version: both changes survive.
The statistical race against a live server is in ``test_contention.py``.
"""

from __future__ import annotations

import json

import pytest

from tests.hardening.broken import DISCOVERED_FILE, SNAPSHOT_FILE
from tests.hardening.sites import CliSite

SIGLIP = "siglip-large-patch16-384_(FP32)"
QWEN3VL = "qwen3-vl-8b-instruct_(FP8)"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    return CliSite(tmp_path_factory.mktemp("outside-writer"))


def _item(site: CliSite, name: str, file: str = DISCOVERED_FILE) -> dict:
    items = json.loads((site.registry / file).read_bytes())
    return next(i for i in items if i.get("name") == name)


def _write_during_ours(site: CliSite, command: tuple, entry: str, value: str):
    return site.run(
        *command,
        module="tests.hardening.hooked_cli",
        HOOK_OUTSIDE_WRITE_AT_TEMP=DISCOVERED_FILE,
        HOOK_OUTSIDE_ENTRY=entry,
        HOOK_OUTSIDE_VALUE=value,
    )


@pytest.mark.parametrize("other", [QWEN3VL, SIGLIP], ids=["other-entry", "same-entry"])
def test_a_write_by_another_tool_during_ours_is_kept(site, other):
    assert site.run("lock", SIGLIP).returncode == 0  # start locked
    value = f"written during unlock ({other})"
    result = _write_during_ours(site, ("unlock", SIGLIP), other, value)
    assert result.returncode == 0, result.stdout + result.stderr
    assert _item(site, other)["metadata"].get("outside_tool") == value, (
        "the other tool's write was lost"
    )
    assert _item(site, SIGLIP)["version_lock"]["locked"] is False, "our write was lost"
    # The snapshot is the merge of both versions.
    exported = site.run("export")
    assert (site.registry / SNAPSHOT_FILE).read_bytes() == exported.stdout.encode()


def test_a_write_by_another_tool_between_our_writes_is_kept(site):
    """Outside the write window (between two commands) nothing is ever lost."""
    items = json.loads((site.registry / DISCOVERED_FILE).read_bytes())
    for item in items:
        if item["name"] == QWEN3VL:
            item.setdefault("metadata", {})["outside_tool"] = "between"
    (site.registry / DISCOVERED_FILE).write_text(json.dumps(items, indent=2) + "\n")
    assert site.run("unlock", SIGLIP).returncode == 0
    assert _item(site, QWEN3VL)["metadata"]["outside_tool"] == "between"
    assert _item(site, SIGLIP)["version_lock"]["locked"] is False
