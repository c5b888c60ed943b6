"""Suite-wide fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fresh_per_version_values():
    """Each test starts without this process's per-version values (search index,
    filter choices): a rolled-back test database may repeat a version stamp."""
    from registry.version import forget

    forget()
    yield
