"""kill -9 between the layer write and the snapshot write (issue 17, section 3).

The console script runs with an audit hook that SIGKILLs it the moment it is about
to rename its new snapshot into place (``tests/hardening/hooked_cli.py``): the layer
holds the change, ``model_registry.json`` does not, and the snapshot's temp file is
left behind. The next sync or write must notice that the snapshot is not the merge of
the layers, rewrite it and say so in the action log (a repair), and remove temp files
that no live writer owns.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.hardening.broken import DISCOVERED_FILE, SNAPSHOT_FILE
from tests.hardening.sites import CliSite

SIGLIP = "siglip-large-patch16-384_(FP32)"  # locked in the sample
INTERNVL = "internvl2-8b_(AWQ)"  # locked in the sample
OUR_TEMP = re.compile(r"^\.model_registry[\w.-]*\.json\.\w+\.tmp$")

pytestmark = pytest.mark.slow


def _entry(path: Path, name: str) -> dict:
    return next(i for i in json.loads(path.read_bytes()) if i.get("name") == name)


def _locked(item: dict) -> bool:
    return bool((item.get("version_lock") or {}).get("locked"))


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if OUR_TEMP.match(p.name))


def _merge_of_layers(site: CliSite) -> bytes:
    """What the snapshot must hold: ``imageworks-models export`` merges the layers."""
    out = site.run("export")
    assert out.returncode == 0, out.stderr
    return out.stdout.encode()


def _actions(site: CliSite) -> list[dict]:
    path = Path(site.env["IMAGEWORKS_STAGING_DIR"]) / "gui_registry_actions.json"
    return json.loads(path.read_text()) if path.exists() else []


@pytest.fixture
def crashed(tmp_path):
    """A site whose CLI was killed after writing the layer, before the snapshot."""
    site = CliSite(tmp_path)
    before_actions = len(_actions(site))
    killed = site.run(
        "unlock",
        SIGLIP,
        module="tests.hardening.hooked_cli",
        HOOK_KILL_BEFORE_RENAME_TO=SNAPSHOT_FILE,
    )
    assert killed.returncode == -9, killed.stdout + killed.stderr
    registry = site.registry
    # The crash landed where intended: layer new, snapshot old, its temp file left.
    assert not _locked(_entry(registry / DISCOVERED_FILE, SIGLIP))
    assert _locked(_entry(registry / SNAPSHOT_FILE, SIGLIP))
    assert _temps(registry), "the killed writer left no temp file"
    site.actions_before = before_actions
    return site


def _repaired(site: CliSite) -> None:
    snapshot = (site.registry / SNAPSHOT_FILE).read_bytes()
    assert snapshot == _merge_of_layers(site), "the snapshot is still stale"
    assert not _locked(_entry(site.registry / SNAPSHOT_FILE, SIGLIP))


def _repair_rows(site: CliSite) -> list[dict]:
    return [
        row
        for row in _actions(site)[site.actions_before :]
        if "repair" in f"{row.get('action')} {row.get('summary')}".lower()
        and SNAPSHOT_FILE in (row.get("summary") or "")
    ]


def test_the_next_sync_repairs_the_snapshot(crashed):
    result = crashed.run("sync")
    assert result.returncode == 0, result.stderr
    _repaired(crashed)


def test_the_repair_by_sync_is_audited(crashed):
    assert crashed.run("sync").returncode == 0
    rows = _repair_rows(crashed)
    assert len(rows) == 1, _actions(crashed)[crashed.actions_before :]
    assert rows[0]["status"] == "succeeded"


def test_the_next_write_repairs_the_snapshot(crashed):
    result = crashed.run("unlock", INTERNVL)
    assert result.returncode == 0, result.stderr
    _repaired(crashed)
    assert not _locked(_entry(crashed.registry / SNAPSHOT_FILE, INTERNVL))


def test_the_repair_by_a_write_is_audited(crashed):
    assert crashed.run("unlock", INTERNVL).returncode == 0
    assert len(_repair_rows(crashed)) == 1, _actions(crashed)[crashed.actions_before :]


@pytest.mark.parametrize("command", [("sync",), ("unlock", INTERNVL)])
def test_temp_files_of_dead_writers_are_cleaned(crashed, command):
    registry = crashed.registry
    stale = _temps(registry)
    time.sleep(0.05)  # older than any writer that starts from now on
    # A temp file that is not ours, and one that looks ours but is a folder, stay.
    (registry / "other-tool.tmp").write_text("not ours\n")
    result = crashed.run(*command)
    assert result.returncode == 0, result.stderr
    left = _temps(registry)
    assert not set(stale) & set(left), f"dead writers' temp files left: {left}"
    assert (registry / "other-tool.tmp").exists(), "removed a file that is not ours"


def test_a_kill_leaves_the_next_commands_working(crashed):
    """Guard for the tests above: after the crash the CLI works as usual."""
    listed = crashed.run("list", "--json", "--all")
    assert listed.returncode == 0, listed.stderr
    names = {row["name"]: row for row in json.loads(listed.stdout)}
    assert not names[SIGLIP]["locked"]  # the mirror follows the layer, not the snapshot
