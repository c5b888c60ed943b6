"""Shared helpers of the hardening tests: a synced sample registry in a temp folder."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from django.test import override_settings


class TempRegistryMixin:
    """Point the registry and staging folders at a fresh temp dir for one test class.

    Use on a ``TestCase``: the folders are set up before ``setUpTestData``.
    """

    @classmethod
    def setUpClass(cls):
        cls.tmp_root = Path(tempfile.mkdtemp(prefix="iw-hardening-"))
        cls.registry_dir = cls.tmp_root / "configs"
        cls.models_dir = cls.tmp_root / "models"
        cls._dirs_override = override_settings(
            IMAGEWORKS_REGISTRY_DIR=cls.registry_dir,
            IMAGEWORKS_STAGING_DIR=cls.tmp_root / "_staging",
            IMAGEWORKS_LOG_DIR=cls.tmp_root / "logs",
            IMAGEWORKS_MODEL_ROOTS=[],
        )
        cls._dirs_override.enable()
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls._dirs_override.disable()
            shutil.rmtree(cls.tmp_root, ignore_errors=True)


def sync_sample(registry_dir: Path, models_dir: Path):
    """Write the sample registry (forced) and mirror it into the database."""
    from registry.audit import Actor
    from registry.sample import write_sample_registry
    from registry.services.sync import sync_registry

    write_sample_registry(registry_dir, models_dir, force=True)
    result = sync_registry(Actor.system("tests"), force=True)
    assert result.ok, result.summary()
    return result


def edit_post_data(entry) -> dict:
    """The edit form's POST data for ``entry`` as it stands (a no-change submit)."""
    from registry.forms.edit import ModelEntryEditForm

    form = ModelEntryEditForm(entry=entry)
    data: dict = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif isinstance(value, list | tuple):
            data[name] = [str(v) for v in value]
        elif value is None:
            data[name] = ""
        else:
            data[name] = str(value)
    return data
