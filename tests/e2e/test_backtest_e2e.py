"""End to end on real data: 2021-04 Binance spot 1m closes -> simple scans -> `dolphin backtest`.

The backtest runs on the production scanner's output; ``simple_scans`` (plain numpy λ_max / N over
50 and 750 bars) is an independent cross-check of its vel_div.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dolphin.backtest.replay import run_replay
from dolphin.cli import main
from dolphin.core.config import DolphinConfig
from tests.kit.paths import SPOT_1M_2021, require
from tests.kit.scans import spot_2021_scans


def _lambda_share(r: np.ndarray) -> float:
    keep = r.std(axis=0) > 0
    c = np.corrcoef(r[:, keep], rowvar=False)
    return float(np.linalg.eigvalsh(c)[-1] / keep.sum())


def simple_scans(start: str, end: str) -> pd.DataFrame:
    bars = pd.read_parquet(require(SPOT_1M_2021), columns=["timestamp", "symbol", "close"])
    bars = bars[(bars["timestamp"] >= start) & (bars["timestamp"] < end)]
    wide = bars.pivot(index="timestamp", columns="symbol", values="close").sort_index()
    wide.columns = wide.columns.astype(str)
    grid = pd.date_range(wide.index[0], wide.index[-1], freq="1min")
    wide = wide.reindex(grid)
    gap = wide.isna().mean(axis=1).to_numpy() > 0.5
    wide = wide.ffill()
    logp = np.log(wide.to_numpy())
    rets = np.diff(logp, axis=0, prepend=logp[:1])
    n = len(wide)
    out = {}
    for w in (50, 750):
        lam = np.full(n, np.nan)
        for t in range(w, n):
            lam[t] = _lambda_share(np.nan_to_num(rets[t - w + 1 : t + 1]))
        out[w] = lam
    df = pd.DataFrame(
        {"timestamp": wide.index, "scan_number": np.arange(n), "n_assets": wide.shape[1]}
    )
    for w in (50, 150, 300, 750):
        lam = out.get(w, np.full(n, np.nan))
        df[f"v{w}_lambda_max"] = lam
        df[f"v{w}_lambda_max_velocity"] = np.r_[np.nan, np.diff(lam)]
    df["vel_div"] = df["v50_lambda_max_velocity"] - df["v750_lambda_max_velocity"]
    df["instability_50"] = np.nan
    df["instability_150"] = np.nan
    df["data_gap"] = gap
    return pd.concat([df.reset_index(drop=True), wide.reset_index(drop=True)], axis=1)


@pytest.fixture(scope="module")
def real_scans():
    """Scans of 2021-04-05..07 from the production scanner (``dolphin.scanner.scan_prices``)."""
    return spot_2021_scans("2021-04-05", "2021-04-08")


def test_simple_and_production_scans_agree_on_vel_div(real_scans):
    simple = simple_scans("2021-04-05", "2021-04-08")
    a = simple["vel_div"].to_numpy()
    b = real_scans["vel_div"].to_numpy()
    both = np.isfinite(a) & np.isfinite(b)
    assert both.sum() > 3000
    assert np.corrcoef(a[both], b[both])[0, 1] > 0.9


def test_real_scans_have_signals_and_trade(real_scans):
    vd = real_scans["vel_div"].to_numpy()
    assert np.isfinite(vd[800:]).all()
    assert (vd < -0.02).sum() > 10
    res = run_replay(real_scans, DolphinConfig())
    assert len(res.trades) > 0
    assert res.trades["asset"].str.endswith("USDT").all()
    assert res.metrics["final_capital"] == pytest.approx(
        25_000.0 + res.trades["pnl"].sum(), rel=1e-12
    )


def test_cli_on_real_data_with_real_factors(real_scans, tmp_path, shared_data):
    src = tmp_path / "scans.parquet"
    real_scans.to_parquet(src)
    out = tmp_path / "out"
    args = [
        "backtest",
        "--scans",
        str(src),
        "--factors",
        str(shared_data / "indices"),
        "--out",
        str(out),
    ]
    assert main(args) == 0
    m = json.loads((out / "metrics.json").read_text())
    daily = pd.read_parquet(out / "daily.parquet")
    # 2021-04: F&G exists but DVOL/funding/taker histories start later -> absent, never invented
    assert daily["exf_fng"].notna().all()
    assert (daily["absent_factors"] == "funding_btc,dvol_btc,taker").all()
    assert (daily["boost"] == 1.0).all()  # F&G alone is unconfirmed
    assert m["trades"] == len(pd.read_parquet(out / "trades.parquet"))
    assert main(args) == 0
    assert json.loads((out / "metrics.json").read_text())["trades_sha256"] == m["trades_sha256"]
