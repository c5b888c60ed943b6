"""Suite-wide fixtures."""

from __future__ import annotations

import os

import pytest

# The fake nvidia-smi is a Python script: on a loaded two-core CI machine one read can
# take longer than the 3 s a real nvidia-smi gets (the measured-memory step then sees
# "unknown"). Subprocesses (the site under browser tests) inherit this.
os.environ.setdefault("IMAGEWORKS_NVIDIA_SMI_TIMEOUT", "30")


@pytest.fixture(autouse=True)
def _fresh_per_version_values():
    """Each test starts without this process's per-version values (search index,
    filter choices): a rolled-back test database may repeat a version stamp."""
    from registry.version import forget

    forget()
    yield
