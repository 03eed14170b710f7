"""Parity on real data: real Binance 1m closes -> scans -> both engines.

The committed spot sample and a week of the shared USDT-M perpetual set (whose exchangeInfo
tick sizes are zero-padded, e.g. "0.00010") are both replayed.

Two Nautilus backtests run, each in its own process (one engine per process): the parity cost
model must give identical trades and PnL to 1e-6 relative; realistic fills must be fully
explained by the parity report.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from dolphin.cli import main
from tests.kit.paths import SAMPLE, USDM_1M_2023, require


@pytest.fixture(scope="module")
def sample_scans(tmp_path_factory):
    out = tmp_path_factory.mktemp("scans") / "scans.parquet"
    bars = require(SAMPLE / "bars_1m_sample.parquet")
    assert main(["scan", "--bars", str(bars), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def perp_scans(tmp_path_factory):
    root = tmp_path_factory.mktemp("perp")
    bars = pd.read_parquet(require(USDM_1M_2023))
    week = bars[(bars["timestamp"] >= "2023-07-10") & (bars["timestamp"] < "2023-07-17")]
    week.to_parquet(root / "bars.parquet")
    out = root / "scans.parquet"
    assert main(["scan", "--bars", str(root / "bars.parquet"), "--out", str(out)]) == 0
    return out


def _backtest(scans, out, *extra):
    cmd = [sys.executable, "-m", "dolphin", "backtest", "--scans", str(scans), "--out", str(out),
           *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.parametrize("scans_fixture", ["sample_scans", "perp_scans"])
def test_parity_mode_gives_identical_trades_and_pnl(scans_fixture, request, tmp_path):
    scans = request.getfixturevalue(scans_fixture)
    _backtest(scans, tmp_path / "int", "--parity")
    _backtest(scans, tmp_path / "nt", "--engine", "nautilus", "--parity")
    a = pd.read_parquet(tmp_path / "int" / "trades.parquet")
    b = pd.read_parquet(tmp_path / "nt" / "trades.parquet")
    assert len(a) >= 20 and len(a) == len(b)
    key = ["entry_bar", "exit_bar", "asset", "direction"]
    pd.testing.assert_frame_equal(a[key], b[key])
    rel = ((a["pnl"] - b["pnl"]).abs() / a["pnl"].abs()).max()
    assert rel < 1e-6
    assert abs(b["capital_after"].iloc[-1] / a["capital_after"].iloc[-1] - 1) < 1e-9
    parity = json.loads((tmp_path / "nt" / "parity.json").read_text())
    assert parity["identical"] and parity["matched"] == len(a)
    for name in ("equity.parquet", "daily.parquet", "metrics.json", "report.html"):
        assert (tmp_path / "nt" / name).exists()


def test_realistic_fills_are_quantified_by_the_parity_report(sample_scans, tmp_path):
    out = _backtest(sample_scans, tmp_path / "nt", "--engine", "nautilus")
    rep = json.loads((tmp_path / "nt" / "parity.json").read_text())
    assert "parity identical=False" in out and not rep["identical"]
    explained = sum(rep["explained"].values())
    assert explained == pytest.approx(rep["pnl_b"] - rep["pnl_a"], abs=1e-6)
    assert rep["explained"]["fees"] < 0 or rep["explained"]["ob_edge"] < 0
    assert rep["mean_entry_px_bps"] != 0.0  # the one-tick spread moves every fill
