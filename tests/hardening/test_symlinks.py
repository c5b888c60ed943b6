"""Symlinked registry files (issue 17, section 2).

People keep the layer files in a repository and link them into the registry folder.
Every writer must write THROUGH the link: the link stays a link (same text), the
file it points to gets the new bytes, no temp file is left on either side, and the
timestamped backup is a regular file in the registry folder holding the old bytes
(the repository checkout gains no files). Writers: the editor (one-entry splice),
unlock (discovered layer), the import wizard (a whole-layer write), the CLI, and a
sync that repairs a stale snapshot.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from django.test import Client

from tests.hardening.broken import (
    CURATED_FILE,
    DISCOVERED_FILE,
    SNAPSHOT_FILE,
    form_fields,
)
from tests.hardening.sites import CliSite

QWEN = "qwen2.5-vl-7b-instruct_(AWQ)"
SIGLIP = "siglip-large-patch16-384_(FP32)"
IMPORTABLE = "gpt-oss-20b_(MXFP4)"
FILES = (CURATED_FILE, DISCOVERED_FILE, SNAPSHOT_FILE)


def link_registry(root: Path, relative: bool = True) -> tuple[Path, Path]:
    """A sample registry in ``root/repo/configs`` linked file by file into
    ``root/configs``; returns ``(registry folder, repository folder)``."""
    from registry.sample import write_sample_registry

    repo = root / "repo" / "configs"
    registry = root / "configs"
    write_sample_registry(repo, root / "models", force=True)
    registry.mkdir()
    for name in FILES:
        target = repo / name
        link = registry / name
        link.symlink_to(os.path.relpath(target, registry) if relative else target)
    return registry, repo


class Links:
    """The links as they were, to check them after a write."""

    def __init__(self, registry: Path, repo: Path):
        self.registry = registry
        self.repo = repo
        self.text = {name: (registry / name).readlink() for name in FILES}
        self.old = {name: (repo / name).read_bytes() for name in FILES}
        self.repo_files = sorted(p.name for p in repo.iterdir())

    def target(self, name: str) -> Path:
        return self.repo / name

    def item(self, name: str, entry: str) -> dict:
        items = json.loads(self.target(name).read_bytes())
        return next(i for i in items if i.get("name") == entry)

    def check(self, written: str) -> None:
        """Links kept, targets regular files, no temps, a backup beside the link."""
        for name in FILES:
            link = self.registry / name
            assert link.is_symlink(), f"{name} is no longer a link"
            assert link.readlink() == self.text[name], f"{name} points elsewhere"
            assert self.target(name).is_file() and not self.target(name).is_symlink()
        assert self.target(written).read_bytes() != self.old[written], (
            f"the repository's {written} was not updated"
        )
        temps = [
            p.name
            for folder in (self.registry, self.repo)
            for p in folder.iterdir()
            if p.name.endswith(".tmp")
        ]
        assert temps == [], temps
        assert sorted(p.name for p in self.repo.iterdir()) == self.repo_files, (
            "files were added to the repository checkout"
        )
        stem = written.removesuffix(".json")
        backups = sorted(self.registry.glob(f"{stem}.*.bak.json"))
        assert backups, f"no backup of {written} in the registry folder"
        assert not backups[-1].is_symlink()
        assert backups[-1].read_bytes() == self.old[written]


@pytest.fixture
def linked(db, settings, tmp_path, request):
    from django.core.management import call_command

    registry, repo = link_registry(tmp_path, relative=getattr(request, "param", True))
    settings.IMAGEWORKS_REGISTRY_DIR = registry
    settings.IMAGEWORKS_STAGING_DIR = tmp_path / "_staging"
    settings.IMAGEWORKS_MODEL_ROOTS = []
    call_command("registry_sync", "--force", stdout=open(os.devnull, "w"))  # noqa: SIM115
    return Links(registry, repo)


@pytest.fixture
def admin_client(db):
    from tests.base import make_user

    client = Client()
    client.force_login(make_user("root", superuser=True))
    return client


def _pk(name: str) -> int:
    from registry.models import ModelEntry

    return ModelEntry.objects.values_list("pk", flat=True).get(name=name)


@pytest.mark.parametrize("linked", [True, False], indirect=True, ids=["rel", "abs"])
def test_an_edit_writes_through_the_links(linked, admin_client):
    pk = _pk(QWEN)
    page = admin_client.get(f"/models/{pk}/edit/")
    data = form_fields(page.content, "/edit/preview/")
    data["display_name"] = ["Edited through a link"]
    preview = admin_client.post(f"/models/{pk}/edit/preview/", data)
    confirm = admin_client.post(
        f"/models/{pk}/edit/confirm/", form_fields(preview.content, "/edit/preview/")
    )
    assert confirm.status_code == 302, confirm.content[:500]
    linked.check(CURATED_FILE)
    assert linked.item(CURATED_FILE, QWEN)["display_name"] == "Edited through a link"
    assert linked.item(SNAPSHOT_FILE, QWEN)["display_name"] == "Edited through a link"


def test_unlock_writes_through_the_links(linked, admin_client):
    response = admin_client.post(f"/models/{_pk(SIGLIP)}/unlock/")
    assert response.status_code == 302
    linked.check(DISCOVERED_FILE)
    assert linked.item(DISCOVERED_FILE, SIGLIP)["version_lock"]["locked"] is False
    assert linked.item(SNAPSHOT_FILE, SIGLIP)["version_lock"]["locked"] is False


def test_an_import_writes_through_the_links(linked, admin_client):
    admin_client.get("/models/import/")
    step2 = admin_client.post("/models/import/fields/", {"names": [IMPORTABLE]})
    review = admin_client.post(
        "/models/import/review/", form_fields(step2.content, "review")
    )
    done = admin_client.post(
        "/models/import/confirm/", form_fields(review.content, "/import/confirm/")
    )
    assert done.status_code == 302, done.content[:500]
    linked.check(CURATED_FILE)
    assert linked.item(CURATED_FILE, IMPORTABLE)


@pytest.mark.slow
def test_the_cli_writes_through_the_links(tmp_path):
    registry, repo = link_registry(tmp_path)
    site = CliSite(tmp_path)
    links = Links(registry, repo)
    result = site.run("unlock", SIGLIP)
    assert result.returncode == 0, result.stderr
    links.check(DISCOVERED_FILE)
    assert links.item(SNAPSHOT_FILE, SIGLIP)["version_lock"]["locked"] is False


@pytest.mark.slow
def test_a_sync_repairs_a_linked_snapshot_through_the_link(tmp_path):
    registry, repo = link_registry(tmp_path)
    site = CliSite(tmp_path)
    # Another tool changes the discovered layer (in the repository) and not the
    # snapshot; the next sync must rewrite the snapshot, through its link.
    items = json.loads((repo / DISCOVERED_FILE).read_bytes())
    for item in items:
        if item["name"] == SIGLIP:
            item["version_lock"]["locked"] = False
    (repo / DISCOVERED_FILE).write_text(json.dumps(items, indent=2) + "\n")
    links = Links(registry, repo)
    assert site.run("sync").returncode == 0
    assert (registry / SNAPSHOT_FILE).is_symlink()
    assert links.item(SNAPSHOT_FILE, SIGLIP)["version_lock"]["locked"] is False
    assert (repo / SNAPSHOT_FILE).read_bytes() == site.run("export").stdout.encode()


def test_a_linked_registry_folder_keeps_working(settings, tmp_path, admin_client):
    """The whole folder linked (configs -> repo/configs): renames happen in the
    repository folder, the folder link is untouched."""
    from django.core.management import call_command

    from registry.sample import write_sample_registry

    repo = tmp_path / "repo" / "configs"
    write_sample_registry(repo, tmp_path / "models", force=True)
    registry = tmp_path / "configs"
    registry.symlink_to(repo, target_is_directory=True)
    settings.IMAGEWORKS_REGISTRY_DIR = registry
    settings.IMAGEWORKS_STAGING_DIR = tmp_path / "_staging"
    call_command("registry_sync", "--force", stdout=open(os.devnull, "w"))  # noqa: SIM115
    response = admin_client.post(f"/models/{_pk(SIGLIP)}/unlock/")
    assert response.status_code == 302
    assert registry.is_symlink()
    items = json.loads((repo / DISCOVERED_FILE).read_bytes())
    assert (
        next(i for i in items if i["name"] == SIGLIP)["version_lock"]["locked"] is False
    )
    assert not [p for p in repo.iterdir() if p.name.endswith(".tmp")]
