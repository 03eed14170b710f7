"""Session-wide fixtures. Builders and helpers live in ``tests/kit``."""

from __future__ import annotations

import pytest

from tests.kit.paths import SHARED_DATA, require


@pytest.fixture(autouse=True)
def _private_runs_index(tmp_path_factory, monkeypatch):
    """Commands run by a test index their runs in a temporary file, never the checkout's
    ``runs/index.jsonl`` (subprocesses inherit the variable)."""
    monkeypatch.setenv("DOLPHIN_RUNS_INDEX", str(tmp_path_factory.getbasetemp() / "runs.jsonl"))


@pytest.fixture(scope="session")
def shared_data():
    """The shared real-data folder; fails (never skips) when absent."""
    return require(SHARED_DATA)
