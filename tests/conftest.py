"""Session-wide fixtures. Builders and helpers live in ``tests/kit``."""

from __future__ import annotations

import pytest

from tests.kit.paths import SHARED_DATA, require


@pytest.fixture(scope="session")
def shared_data():
    """The shared real-data folder; fails (never skips) when absent."""
    return require(SHARED_DATA)
