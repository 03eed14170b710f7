"""The backtest flow on Prefect's temporary local API equals the replay it wraps."""

from __future__ import annotations

import json

from dolphin.backtest.replay import run_replay
from dolphin.core.config import DolphinConfig
from tests.kit.scans import random_scans


def test_the_flow_writes_what_the_replay_computes(harness, tmp_path):
    from dolphin.flows.backtest import backtest_flow

    scans = random_scans(2 * 1440, 4, seed=4)
    path = tmp_path / "scans.parquet"
    scans.to_parquet(path)
    out = backtest_flow(str(path), str(tmp_path / "bt"), forewarner=False)
    expected = run_replay(scans, DolphinConfig()).metrics
    assert out["metrics"]["trades_sha256"] == expected["trades_sha256"]
    written = json.loads((tmp_path / "bt" / "metrics.json").read_text())
    assert written["trades_sha256"] == expected["trades_sha256"]
    assert written["forewarner"] == "off"
