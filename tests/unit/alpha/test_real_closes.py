"""No price, no trade (DESIGN.md "Data contracts"): the kernel on closes that are not real.

Prices are hand-built: asset 0 (BTCUSDT) falls 0.05 % a bar, asset 1 rises, asset 2 zig-zags, so a
SHORT signal at bar ``ENTRY`` can only pick asset 0 (tests/unit/alpha/test_engine_step.py works
the same paths by hand). A NaN close means "no real bar": the tests check that nothing is ranked,
entered or exited on it, that a held position is marked at its last real close, and that it
leaves with DATA_END after ``data_end_bars`` bars without one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dolphin.alpha.engine import NDAlphaEngine
from dolphin.backtest import sweep as sw
from dolphin.backtest.metrics import records_sha256
from dolphin.backtest.replay import run_replay
from dolphin.core.config import resolve_overrides
from dolphin.core.records import EXIT_REASONS
from tests.kit.scans import build_scans, random_scans

ENTRY = 120
N = 300
ASSETS = ["BTCUSDT", "ETHUSDT", "XRPUSDT"]
#: Bible §7.4: a non-stop exit slips 2 bp, of which the maker-filled share (50 %) is refunded.
EXIT_SLIP = 0.0002 * (1 - 0.5)


def paths():
    t = np.arange(N)
    a0 = 100.0 * (1.0 - 0.0005 * t)
    a1 = 50.0 * (1.0 + 0.0005 * t)
    a2 = 20.0 * (1.0 + np.where(t % 2 == 0, 0.01, -0.01))
    return np.stack([a0, a1, a2], axis=1)


def signal(at=ENTRY, value=-0.035):
    vd = np.zeros(N)
    vd[at] = value
    return vd


def run(prices, vd, overrides=None, *, funding=None):
    cfg = resolve_overrides({"use_ob_edge": False, **(overrides or {})})
    eng = NDAlphaEngine(cfg, ASSETS)
    eng.begin_day("2024-01-01")
    ts = np.arange(N, dtype=np.int64) * 60_000_000_000
    eq, _ = eng.run_bars(0, ts, vd, prices, np.zeros(N, bool), np.ones(N, bool), funding=funding)
    return eng, eq


def test_the_reference_path_trades_asset_0_at_its_close():
    eng, _ = run(paths(), signal())
    t = eng.trades
    assert len(t) == 1 and t["asset"][0] == 0 and t["entry_bar"][0] == ENTRY
    assert t["entry_price"][0] == paths()[ENTRY, 0]


def test_no_entry_on_an_asset_without_a_real_close_on_the_signal_bar():
    p = paths()
    p[ENTRY, 0] = np.nan  # the only asset IRP would pick has no bar now
    eng, _ = run(p, signal())
    assert len(eng.trades) == 0


def test_a_filled_bar_inside_the_window_counts_as_a_zero_return():
    p = paths()
    p[ENTRY - 5, 0] = np.nan  # a gap inside the IRP window; the signal bar itself is real
    eng, _ = run(p, signal())
    t = eng.trades
    assert len(t) == 1 and t["asset"][0] == 0 and t["entry_price"][0] == p[ENTRY, 0]


def test_the_fallback_asset_needs_a_real_close_too():
    p = paths()
    p[ENTRY, 0] = np.nan
    eng, _ = run(p, signal(), {"use_asset_selection": False, "use_direction_confirm": False})
    assert len(eng.trades) == 0
    eng, _ = run(paths(), signal(), {"use_asset_selection": False,
                                     "use_direction_confirm": False})
    assert len(eng.trades) == 1 and eng.trades["asset"][0] == 0


def test_a_held_asset_that_stops_trading_exits_with_data_end_at_its_last_real_close():
    p = paths()
    last = ENTRY + 10  # TP (0.95 %) would need 18 bars of the 0.05 %/bar fall
    p[last + 1 :, 0] = np.nan
    eng, eq = run(p, signal(), {"data_end_bars": 30})
    t = eng.trades
    assert len(t) == 1
    assert EXIT_REASONS[t["exit_reason"][0]] == "DATA_END"
    assert t["exit_bar"][0] == last + 30  # the 30th bar without a real close
    assert t["exit_price"][0] == pytest.approx(p[last, 0] * (1 + EXIT_SLIP), rel=1e-12)
    # marked at the last real close on every bar without one: the equity does not move
    assert np.all(eq[last : last + 30] == eq[last])
    assert np.isfinite(eq).all()


def test_data_end_defaults_to_max_hold_bars():
    p = paths()
    p[ENTRY + 11 :, 0] = np.nan
    eng, _ = run(p, signal(), {"max_hold_bars": 60})
    t = eng.trades
    assert EXIT_REASONS[t["exit_reason"][0]] == "DATA_END"
    assert t["exit_bar"][0] == ENTRY + 10 + 60


def test_end_of_data_closes_at_the_last_real_close():
    p = paths()
    p[ENTRY + 11 :, 0] = np.nan
    eng, _ = run(p, signal(), {"data_end_bars": 1000})
    eng.close_open_position(N - 1, (N - 1) * 60_000_000_000)
    t = eng.trades
    assert EXIT_REASONS[t["exit_reason"][0]] == "END_OF_DATA"
    assert t["exit_price"][0] == pytest.approx(p[ENTRY + 10, 0] * (1 + EXIT_SLIP), rel=1e-12)


def test_no_exit_rule_fires_on_a_bar_without_a_real_close():
    # short from 94.0 at ENTRY: TP 0.95 % needs a close <= 94 * (1 - 0.0095) = 93.107, i.e.
    # 100 - 0.05 t <= 93.107, t >= 137.9: bar ENTRY + 18. That bar and the next have no real close
    p = paths()
    p[ENTRY + 18 : ENTRY + 20, 0] = np.nan
    eng, _ = run(p, signal())
    t = eng.trades
    assert t["exit_bar"][0] == ENTRY + 20
    assert EXIT_REASONS[t["exit_reason"][0]] == "FIXED_TP"


def test_funding_is_paid_at_each_funding_time_the_position_is_open_across():
    from dolphin.features.funding import FundingEvents

    p = paths()
    rate = 0.0001
    # one event on asset 0 at bar ENTRY (entered then: not charged), one at ENTRY + 5 (charged),
    # one on asset 1 (not held)
    lo = np.zeros(N + 1, dtype=np.int64)
    lo[ENTRY + 1 :] = 1
    lo[ENTRY + 6 :] = 3
    events = FundingEvents(np.array([0, 0, 1]), np.array([rate, rate, rate]), lo)
    eng, eq = run(p, signal(), funding=events)
    t = eng.trades[0]
    qty = t["notional"] / t["entry_price"]
    expected = -1 * rate * qty * p[ENTRY + 5, 0]  # a short receives a positive rate
    assert t["funding"] == pytest.approx(expected, rel=1e-12)
    # pnl is the price move less fees less funding
    move = -(t["exit_price"] - t["entry_price"]) / t["entry_price"] * t["notional"]
    assert t["pnl"] == pytest.approx(move - t["entry_fee"] - t["exit_fee"] - expected, rel=1e-12)
    # the mark-to-market equity carries the accrued funding before the close
    _without, eq0 = run(p, signal())
    assert eq[ENTRY + 5] - eq0[ENTRY + 5] == pytest.approx(-expected, rel=1e-9)


def _holey(seed: int) -> pd.DataFrame:
    """Random scans whose assets have missing bars, one listing late and one ending early."""
    scans = random_scans(4_000, 6, seed=seed)
    rng = np.random.default_rng(seed)
    assets = [c for c in scans.columns if c.endswith("USDT")]
    for a in assets:
        scans.loc[rng.random(len(scans)) < 0.05, a] = np.nan
    scans.loc[:800, assets[1]] = np.nan
    scans.loc[2_500:, assets[2]] = np.nan
    return scans


@pytest.mark.parametrize("seed", [1, 2])
def test_sweep_equals_replay_on_closes_with_holes_and_funding(seed):
    scans = _holey(seed)
    assets = [c for c in scans.columns if c.endswith("USDT")]
    ts = scans["timestamp"]
    funding = pd.DataFrame({
        "timestamp": np.repeat(ts.iloc[::480].to_numpy(), len(assets)),
        "symbol": np.tile(assets, len(ts.iloc[::480])),
        "funding_rate": np.random.default_rng(seed).normal(0.0, 0.0005,
                                                           len(assets) * len(ts.iloc[::480])),
    })
    data = sw.prepare(scans, funding=funding)
    for over in ({}, {"data_end_bars": 10}, {"fixed_tp_pct": 0.02, "max_hold_bars": 300}):
        cfg = resolve_overrides(over)
        replay = run_replay(scans, cfg, funding=funding)
        rec = sw.trade_records(data, cfg)
        assert len(replay.trades) > 5
        assert records_sha256(rec, data.assets) == replay.metrics["trades_sha256"]
        assert replay.metrics["funding_paid"] == pytest.approx(float(rec["funding"].sum()))
        row = sw.evaluate(data, [cfg])[0]
        assert row["max_drawdown"] == replay.metrics["max_drawdown"]
        assert row["final_capital"] == replay.metrics["final_capital"]
    assert (replay.trades["funding"] != 0).any()


def test_scan_frames_with_nan_closes_still_validate():
    p = paths()
    p[ENTRY + 11 :, 0] = np.nan
    scans = build_scans(dict(zip(ASSETS, p.T, strict=True)), signal())
    result = run_replay(scans, resolve_overrides({"use_ob_edge": False}))
    assert np.isfinite(result.equity["equity"]).all()
    assert EXIT_REASONS.index(result.trades["exit_reason"].iloc[0]) == EXIT_REASONS.index(
        "DATA_END")
