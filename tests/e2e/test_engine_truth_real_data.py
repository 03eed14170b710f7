"""Engine truth on every shared bar set: no trade on a price that does not exist.

For each file in ``shared/data/bars`` the production commands run end to end (``dolphin scan``,
``backtest``, ``backtest --parity``, ``backtest --engine nautilus --parity`` on the set's last
five days, a 50-combination ``sweep``) and every trade is checked against the BAR FILE itself
(not the scans): it enters on a bar where its asset has a real bar, at that bar's close; it
exits on a real bar, or with
``DATA_END``/``END_OF_DATA`` at the asset's last real close. ``metrics.json`` must parse as
strict JSON. Funding on the 2023-07 perps is recomputed by hand for one trade from the funding
file and the bars, and a reckless config must show non-OK MC-Forewarner days.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from dolphin.cli import main as dolphin
from tests.kit.paths import ALL_BAR_FILES, SHARED_DATA, USDM_1M_2023, require

FUNDING_2023 = SHARED_DATA / "funding" / "binance_usdm_funding_2023-07.parquet"
CLOSE_AT_LAST_REAL = {"DATA_END", "END_OF_DATA"}
#: How much of each set the NautilusTrader parity leg replays (its end).
NAUTILUS_SPAN = pd.Timedelta(days=5)


def _strict_json(path):
    def refuse(name):
        raise ValueError(f"{path}: non-standard JSON constant {name}")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.fixture(scope="module", params=ALL_BAR_FILES, ids=lambda p: p.stem)
def bar_set(request, tmp_path_factory):
    """(bars file, scans file, long closes indexed by (symbol, timestamp), work dir)."""
    bars = require(request.param)
    work = tmp_path_factory.mktemp(bars.stem)
    scans = work / "scans.parquet"
    assert dolphin(["scan", "--bars", str(bars), "--out", str(scans)]) == 0
    long = pd.read_parquet(bars, columns=["timestamp", "symbol", "close"])
    long["symbol"] = long["symbol"].astype(str)
    return bars, scans, long, work


def _bar_ns(long: pd.DataFrame) -> int:
    ts = long.loc[long["symbol"] == long["symbol"].iloc[0], "timestamp"]
    return int(ts.diff().mode().iloc[0].value)


def _last_real_close(long: pd.DataFrame, asset: str, at: pd.Timestamp) -> float:
    rows = long[(long["symbol"] == asset) & (long["timestamp"] <= at)]
    return float(rows["close"].iloc[-1])


def check_trades_against_bars(trades: pd.DataFrame, long: pd.DataFrame, *, exact_exit: bool):
    """Assert every trade enters and exits only where its asset has a real bar (see module)."""
    real = long.set_index(["symbol", "timestamp"])["close"]
    for t in trades.itertuples(index=False):
        entry = real.get((t.asset, t.entry_time))
        assert entry is not None, f"entry on {t.asset} at {t.entry_time}: no real bar"
        assert t.entry_price == pytest.approx(entry, rel=1e-12)
        if t.exit_reason in CLOSE_AT_LAST_REAL:
            ref = _last_real_close(long, t.asset, t.exit_time)
        else:
            ref = real.get((t.asset, t.exit_time))
            assert ref is not None, f"{t.exit_reason} exit on {t.asset} at {t.exit_time}: no bar"
        if exact_exit:  # parity costs: no slippage, the fill is the close itself
            assert t.exit_price == pytest.approx(ref, rel=1e-12), t
        else:  # §7.4 exit slippage is at most 5 bp
            assert abs(t.exit_price / ref - 1) <= 5.01e-4, t
    for col in ("pnl", "exit_price", "notional", "capital_after", "funding"):
        assert np.isfinite(trades[col].to_numpy(dtype=float)).all(), col


def test_backtest_trades_only_on_real_closes(bar_set):
    _bars, scans, long, work = bar_set
    out = work / "bt"
    assert dolphin(["backtest", "--scans", str(scans), "--out", str(out)]) == 0
    metrics = _strict_json(out / "metrics.json")
    trades = pd.read_parquet(out / "trades.parquet")
    equity = pd.read_parquet(out / "equity.parquet")
    assert np.isfinite(equity["equity"]).all()
    check_trades_against_bars(trades, long, exact_exit=False)
    assert metrics["trades"] == len(trades)
    assert metrics["forewarner"] != "off"  # attached by default
    daily = pd.read_parquet(out / "daily.parquet")
    assert set(daily["mc_status"]) <= {"OK", "ORANGE", "RED"}
    assert (daily["mc_model_set"] == metrics["forewarner"]).all()
    assert (out / "report.html").read_text().count("funding not modelled") >= 1


def test_parity_backtests_are_identical_and_exact_on_real_closes(bar_set):
    _bars, scans, long, work = bar_set
    internal, naut = work / "parity", work / "nautilus"
    assert dolphin(["backtest", "--scans", str(scans), "--out", str(internal), "--parity"]) == 0
    check_trades_against_bars(pd.read_parquet(internal / "trades.parquet"), long,
                              exact_exit=True)
    _strict_json(internal / "metrics.json")
    # the NautilusTrader leg on the set's last days, where its symbols' data ends at different
    # times (at least NAUTILUS_SPAN, reaching back to the whole run's third-last entry; a week
    # of the 2023-07 perps and the committed sample run whole in
    # tests/integration/adapters/test_nautilus_parity.py)
    frame = pd.read_parquet(scans)
    entries = pd.read_parquet(internal / "trades.parquet")["entry_time"]
    start = frame["timestamp"].max() - NAUTILUS_SPAN
    if len(entries) >= 3:
        start = min(start, entries.iloc[-3] - pd.Timedelta(hours=1))
    tail = work / "scans_tail.parquet"
    frame[frame["timestamp"] > start].to_parquet(tail)
    assert dolphin(["backtest", "--scans", str(tail), "--out", str(naut), "--engine",
                    "nautilus", "--parity"]) == 0
    parity = _strict_json(naut / "parity.json")
    assert parity["trades_b"] > 0
    assert parity["identical"], {k: parity[k] for k in ("trades_a", "trades_b", "matched",
                                                         "max_rel_pnl_diff")}
    _strict_json(naut / "metrics.json")
    assert (naut / "report.html").exists()
    fills = pd.read_parquet(naut / "fills.parquet")  # the venue's fills as records
    assert len(fills) == 2 * parity["trades_b"]
    assert (pd.read_parquet(naut / "denials.parquet")["reason"].isin(
        ["unknown_input", "reduce_only", "order_rate", "max_order_notional", "max_position",
         "max_leverage"])).all()


def test_a_50_combination_sweep_finishes_and_matches_backtest(bar_set):
    from dolphin.backtest.gates import load_gate
    from dolphin.backtest.replay import run_replay
    from dolphin.backtest.sweep_run import expand_grid, load_grid
    from dolphin.core.config import DolphinConfig

    _bars, scans, _long, work = bar_set
    grid = work / "grid.yml"
    grid.write_text("fixed_tp_pct: [0.005, 0.0075, 0.0095, 0.0125, 0.015]\n"
                    "max_hold_bars: [30, 60, 120, 240, 480]\n"
                    "vel_div_threshold: [-0.02, -0.03]\n")
    out = work / "sweep.parquet"
    assert dolphin(["sweep", "--scans", str(scans), "--grid", str(grid), "--out", str(out),
                    "--no-progress", "--forewarner"]) == 0
    rows = pd.read_parquet(out)
    assert len(rows) == 50
    combos = expand_grid(load_grid(grid), DolphinConfig())
    frame = pd.read_parquet(scans)
    by_id = rows.set_index("config_id")
    for k in (0, 37):  # sampled combinations against the real backtest with the same gate
        cfg = combos.configs[k]
        replay = run_replay(frame, cfg, mc_gate=load_gate(cfg))
        assert by_id.loc[cfg.id, "trades_sha256"] == replay.metrics["trades_sha256"]


def _by_hand_funding(trade, funding: pd.DataFrame, long: pd.DataFrame, bar: int) -> float:
    """Recompute one trade's funding from the files: every F with entry close < F <= exit
    close pays direction x rate x qty x the asset's last real close at the bar holding F."""
    bar_td = pd.Timedelta(bar)
    entry_close, exit_close = trade.entry_time + bar_td, trade.exit_time + bar_td
    rows = funding[(funding["symbol"] == trade.asset) & (funding["timestamp"] > entry_close)
                   & (funding["timestamp"] <= exit_close)]
    d = -1.0 if trade.direction == "SHORT" else 1.0
    qty = trade.notional / trade.entry_price
    total = 0.0
    for f in rows.itertuples(index=False):
        # the first bar whose close (open + bar) is at or after F
        open_ts = pd.Timestamp(math.ceil((f.timestamp.value - bar) / bar) * bar, tz="UTC")
        total += d * f.funding_rate * qty * _last_real_close(long, trade.asset, open_ts)
    return total


def test_funding_on_the_2023_perps_matches_a_hand_recomputation(tmp_path):
    bars = require(USDM_1M_2023)
    scans = tmp_path / "scans.parquet"
    assert dolphin(["scan", "--bars", str(bars), "--out", str(scans)]) == 0
    out = tmp_path / "bt"
    assert dolphin(["backtest", "--scans", str(scans), "--out", str(out), "--funding",
                    str(require(FUNDING_2023))]) == 0
    metrics = _strict_json(out / "metrics.json")
    trades = pd.read_parquet(out / "trades.parquet")
    assert metrics["funding_modelled"] is True
    assert metrics["funding_paid"] == pytest.approx(trades["funding"].sum())
    assert (trades["funding"] != 0).sum() > 0
    long = pd.read_parquet(bars, columns=["timestamp", "symbol", "close"])
    long["symbol"] = long["symbol"].astype(str)
    funding = pd.read_parquet(FUNDING_2023)
    funding["symbol"] = funding["symbol"].astype(str)
    t = trades.loc[trades["funding"].abs().idxmax()]
    assert t["funding"] == pytest.approx(_by_hand_funding(t, funding, long, _bar_ns(long)),
                                         rel=1e-9)
    zero = trades.loc[trades["funding"] == 0].head(3)
    for _, z in zero.iterrows():
        assert _by_hand_funding(z, funding, long, _bar_ns(long)) == 0.0
    assert "funding paid" in (out / "report.html").read_text()


def test_a_reckless_config_shows_non_ok_forewarner_days(tmp_path):
    bars = require(USDM_1M_2023)
    scans = tmp_path / "scans.parquet"
    assert dolphin(["scan", "--bars", str(bars), "--out", str(scans)]) == 0
    cfg = tmp_path / "reckless.yml"
    cfg.write_text("max_leverage: 20\nabs_max_leverage: 20\nfraction: 0.5\n")
    out = tmp_path / "bt"
    assert dolphin(["backtest", "--scans", str(scans), "--out", str(out), "--config",
                    str(cfg)]) == 0
    daily = pd.read_parquet(out / "daily.parquet")
    assert (daily["mc_status"] != "OK").all()
    off = tmp_path / "off"
    assert dolphin(["backtest", "--scans", str(scans), "--out", str(off), "--config", str(cfg),
                    "--no-forewarner"]) == 0
    assert _strict_json(off / "metrics.json")["forewarner"] == "off"
    assert (pd.read_parquet(off / "daily.parquet")["mc_status"] == "OK").all()
