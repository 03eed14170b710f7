"""One Prefect temporary local API for the whole flows package (it takes ~15 s to start)."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture(scope="session")
def harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness():
        yield


@pytest.fixture
def store_url():
    """A fresh embedded store, shared by a flow's tasks and hooks in this process."""
    from dolphin.flows import hooks

    url = f"memory://flows-{uuid.uuid4().hex[:8]}"
    yield url
    hooks.close_stores()
