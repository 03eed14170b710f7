"""End to end with the survival controller attached: real 2021-04 scans -> `dolphin backtest
--survival`. The replay's own drawdown drives the capital category; the mid-April sell-off takes
the champion past 5.4 % drawdown, so the posture leaves APEX and STALKER trades appear."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dolphin.backtest.replay import run_replay
from dolphin.cli import main
from dolphin.core.config import DolphinConfig
from dolphin.features.exf import ExfTable
from tests.kit.scans import spot_2021_scans


@pytest.fixture(scope="module")
def april_scans():
    """Production scans of 2021-04-10..27 (the mid-April drawdown)."""
    return spot_2021_scans("2021-04-10", "2021-04-28")


def test_survival_attached_without_degradation_changes_nothing(april_scans):
    head = april_scans.iloc[:3000]  # two days before any drawdown
    plain = run_replay(head, DolphinConfig())
    guarded = run_replay(head, DolphinConfig(), survival=True)
    assert (guarded.equity["posture"] == "APEX").all()
    assert guarded.equity["rm"].between(0.9, 1.0).all()
    pd.testing.assert_frame_equal(plain.trades, guarded.trades)


def test_drawdown_moves_the_posture_and_the_trades_record_it(april_scans):
    res = run_replay(april_scans, DolphinConfig(), survival=True)
    eq = res.equity
    dd = 1.0 - eq["equity"] / eq["equity"].cummax()
    assert set(eq["posture"]) >= {"APEX", "STALKER"}
    first = int(np.argmax(eq["posture"].to_numpy() != "APEX"))
    assert dd.iloc[first - 1] > 0.05  # the posture follows the drawdown of the bars before it
    stalker = res.trades[res.trades["posture"] == "STALKER"]
    assert len(stalker) > 0
    assert (stalker["leverage"] <= DolphinConfig().alpha.stalker_max_leverage + 1e-12).all()
    assert res.metrics["final_capital"] == pytest.approx(
        25_000.0 + res.trades["pnl"].sum(), rel=1e-12
    )


def test_cli_backtest_with_survival_writes_postures(april_scans, tmp_path, shared_data):
    src = tmp_path / "scans.parquet"
    april_scans.to_parquet(src)
    out = tmp_path / "out"
    args = ["backtest", "--scans", str(src), "--out", str(out), "--survival"]
    args += ["--factors", str(shared_data / "indices")]
    assert main(args) == 0
    trades = pd.read_parquet(out / "trades.parquet")
    equity = pd.read_parquet(out / "equity.parquet")
    html = (out / "report.html").read_text()
    assert "STALKER" in set(trades["posture"])
    assert {"rm", "posture", "denial"} <= set(equity.columns)
    assert "Posture changes" in html and "Survival Rm" in html
    assert json.loads((out / "metrics.json").read_text())["trades"] == len(trades)
    # 2021-04 has no DVOL in the shared indices: the environmental sensor is not registered
    assert ExfTable.from_dir(shared_data / "indices").table(["2021-04-15"])["dvol_btc"].isna().all()
