"""The step kernel through NDAlphaEngine: hand-worked entries, each exit rule, postures, ACB."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dolphin.alpha import layout as lay
from dolphin.alpha.engine import NDAlphaEngine
from dolphin.alpha.interfaces import McReport
from dolphin.core.config import AlphaConfig, resolve_overrides
from dolphin.core.records import EXIT_REASONS
from dolphin.risk.acb import AcbDay

ENTRY = 120  # the signal bar (lookback 100 is passed)
N = 300
NO_EDGE = {"use_ob_edge": False}


def paths(after: str = "fall"):
    """Asset 0 falls 0.05 %/bar to ENTRY then ``after``; asset 1 rises; asset 2 zig-zags."""
    t = np.arange(N)
    a0 = 100.0 * (1.0 - 0.0005 * np.minimum(t, ENTRY))
    tail = np.arange(N) - ENTRY
    if after == "fall":
        a0 = np.where(t > ENTRY, a0[ENTRY] * (1.0 - 0.0005 * tail), a0)
    elif after == "rise":
        a0 = np.where(t > ENTRY, a0[ENTRY] * (1.0 + 0.001 * tail), a0)
    a1 = 50.0 * (1.0 + 0.0005 * t)
    a2 = 20.0 * (1.0 + np.where(t % 2 == 0, 0.01, -0.01))
    return np.stack([a0, a1, a2], axis=1)


def run(prices, vd, overrides=None, *, posture="APEX", acb=None, gaps=(), hell=False, step=False):
    cfg = resolve_overrides({**NO_EDGE, **(overrides or {})})
    eng = NDAlphaEngine(cfg, ["BTCUSDT", "ETHUSDT", "XRPUSDT"], hell=hell)
    eng.begin_day("2024-01-01", acb=acb, posture=posture)
    n = len(vd)
    ts = np.arange(n, dtype=np.int64) * 60_000_000_000
    gap = np.zeros(n, dtype=bool)
    gap[list(gaps)] = True
    if step:
        for i in range(n):
            eng.step_bar(i, int(ts[i]), vd[i], prices[i], data_gap=gap[i])
    else:
        eng.run_bars(0, ts, vd, prices, gap, np.ones(n, dtype=bool))
    return eng


def signal(at=ENTRY, value=-0.035):
    vd = np.zeros(N)
    vd[at] = value
    return vd


def expected_entry(capital=25_000.0, rsm=1.0, trend=1.3):
    # strength 0.5: lev 0.5 + 0.125 * 4.5; fraction (0.02 + 0.5 * 0.18) * 0.55 / 0.95 * trend
    lev = (0.5 + 0.125 * 4.5) * rsm
    frac = 0.11 * 0.55 / 0.95 * trend
    return frac, lev, capital * frac * lev


def test_entry_and_fixed_tp_exit_hand_worked():
    p = paths("fall")
    eng = run(p, signal())
    tr = eng.trades
    assert len(tr) == 1
    t = tr[0]
    frac, lev, notional = expected_entry()
    assert (t["asset"], t["direction"], t["entry_bar"], t["bucket"]) == (0, -1, ENTRY, 2)
    assert t["fraction"] == pytest.approx(frac)
    assert t["leverage"] == pytest.approx(lev)
    assert t["notional"] == pytest.approx(notional)
    assert t["confidence"] == pytest.approx(0.70)
    pe = p[ENTRY, 0]
    drop = (pe - p[:, 0]) / pe
    exit_bar = int(np.argmax((np.arange(N) > ENTRY) & (drop >= 0.0095)))
    assert t["exit_bar"] == exit_bar
    assert EXIT_REASONS[t["exit_reason"]] == "FIXED_TP"
    px = p[exit_bar, 0] * (1.0 + 0.0002 * 0.5)  # 2 bps, half refunded (SP slippage)
    assert t["exit_price"] == pytest.approx(px)
    assert t["entry_fee"] == pytest.approx(0.000314 * notional)
    assert t["exit_fee"] == pytest.approx(0.00035 * notional)
    pnl = (pe - px) / pe * notional - 0.000314 * notional - 0.00035 * notional
    assert t["pnl"] == pytest.approx(pnl)
    assert eng.capital == pytest.approx(25_000.0 + pnl)


def test_no_entry_before_lookback():
    eng = run(paths("fall"), signal(at=98))
    assert len(eng.trades) == 0


def test_no_signal_no_trade_and_weak_signal_is_not_enough():
    assert len(run(paths("fall"), signal(value=-0.02)).trades) == 0  # strict inequality
    assert len(run(paths("fall"), signal(value=-0.0201)).trades) == 1


def test_max_hold_exit_after_120_bars():
    eng = run(paths("flat"), signal())
    t = eng.trades[0]
    assert EXIT_REASONS[t["exit_reason"]] == "MAX_HOLD"
    assert t["exit_bar"] - t["entry_bar"] == 120


def test_stop_loss_exit_with_market_slippage():
    p = paths("rise")
    eng = run(p, signal(), {"stop_pct": 0.005, "use_sp_fees": False})
    t = eng.trades[0]
    assert EXIT_REASONS[t["exit_reason"]] == "STOP_LOSS"
    rise = (p[:, 0] - p[ENTRY, 0]) / p[ENTRY, 0]
    assert t["exit_bar"] == int(np.argmax((np.arange(N) > ENTRY) & (rise >= 0.005)))
    assert t["exit_price"] == pytest.approx(p[t["exit_bar"], 0] * 1.0005)
    assert t["entry_fee"] == 0.0 and t["exit_fee"] == 0.0


def test_dc_contradiction_skips_entry_and_can_be_disabled():
    p = paths("fall")
    p[ENTRY, 0] = p[ENTRY - 7, 0] * 1.001  # +10 bps over the 7-bar lookback: contradicts SHORT
    p[ENTRY - 6 : ENTRY, 0] = p[ENTRY - 7, 0]  # IRP still sees a clean fall before
    assert len(run(p, signal()).trades) == 0
    assert len(run(p, signal(), {"dc_skip_contradicts": False}).trades) == 1


def test_irp_finds_no_asset_means_no_trade():
    p = paths("fall")
    p[:, 0] = 100.0 * (1.0 + 0.0005 * np.arange(N))  # everything rises or zig-zags
    assert len(run(p, signal()).trades) == 0


def test_stalker_caps_leverage_at_two():
    acb = AcbDay("2024-01-01", boost=1.693, beta=0.8, signals=3.0)
    eng = run(paths("fall"), signal(value=-0.06), posture="STALKER", acb=acb)
    assert eng.trades[0]["leverage"] == pytest.approx(2.0)
    assert eng.trades[0]["posture"] == 1
    eng = run(paths("fall"), signal(value=-0.06), acb=acb)
    assert eng.trades[0]["leverage"] == pytest.approx(6.0)  # abs cap: 5 * 1.693 * 1.8 > 6


def test_acb_regime_size_mult_scales_leverage():
    # rsm = 1.347 * (1 + 0.2 * 0.5**3) = 1.347 * 1.025
    acb = AcbDay("2024-01-01", boost=1.347, beta=0.2, signals=1.0)
    eng = run(paths("fall"), signal(), acb=acb)
    assert eng.trades[0]["leverage"] == pytest.approx((0.5 + 0.125 * 4.5) * 1.347 * 1.025)


@pytest.mark.parametrize("posture", ["TURTLE", "HIBERNATE"])
def test_turtle_and_hibernate_block_entries(posture):
    assert len(run(paths("fall"), signal(), posture=posture).trades) == 0


def test_hibernate_mid_day_forces_exit_next_bar():
    cfg = resolve_overrides(NO_EDGE)
    eng = NDAlphaEngine(cfg, ["BTCUSDT", "ETHUSDT", "XRPUSDT"])
    eng.begin_day("2024-01-01")
    p, vd = paths("flat"), signal()
    for i in range(ENTRY + 3):
        eng.step_bar(i, i, vd[i], p[i])
    assert eng.in_position
    eng.set_posture("HIBERNATE")
    closed = eng.step_bar(ENTRY + 3, ENTRY + 3, 0.0, p[ENTRY + 3])
    assert EXIT_REASONS[closed[0]["exit_reason"]] == "HIBERNATE_HALT"


def test_subday_acb_drop_forces_exit_only_on_big_drop():
    cfg = resolve_overrides(NO_EDGE)
    p, vd = paths("flat"), signal()
    for old, new, fires in [(1.35, 1.05, True), (1.35, 1.15, False), (1.20, 1.0, False)]:
        eng = NDAlphaEngine(cfg, ["BTCUSDT", "ETHUSDT", "XRPUSDT"])
        eng.begin_day("2024-01-01", acb=AcbDay("2024-01-01", old, 0.2, 1.0))
        for i in range(ENTRY + 2):
            eng.step_bar(i, i, vd[i], p[i])
        eng.update_acb_boost(new, 0.2)
        closed = eng.step_bar(ENTRY + 2, ENTRY + 2, 0.0, p[ENTRY + 2])
        assert (len(closed) == 1) is fires
        if fires:
            assert EXIT_REASONS[closed[0]["exit_reason"]] == "SUBDAY_ACB_NORMALIZATION"


def test_data_gap_blocks_entries_for_the_short_window():
    assert len(run(paths("fall"), signal(), gaps=[ENTRY - 49]).trades) == 0
    assert len(run(paths("fall"), signal(), gaps=[ENTRY - 50]).trades) == 1


def test_mc_red_halts_and_orange_halves_size():
    class Gate:
        def __init__(self, report):
            self.report = report

        def assess(self, date, max_leverage):
            return self.report

    cfg = resolve_overrides(NO_EDGE)
    p, vd = paths("fall"), signal()
    ts = np.arange(N, dtype=np.int64)
    out = {}
    for name, rep in [("red", McReport(0.3, 0.0)), ("orange", McReport(0.0, -0.5))]:
        eng = NDAlphaEngine(cfg, ["BTCUSDT", "ETHUSDT", "XRPUSDT"], mc_gate=Gate(rep))
        eng.begin_day("2024-01-01")
        eng.run_bars(0, ts, vd, p, np.zeros(N, bool), np.ones(N, bool))
        out[name] = eng
    assert len(out["red"].trades) == 0
    assert out["red"].end_day().mc_status == "RED"
    # rsm 0.5: leverage 1.0625 * 0.5 = 0.53125 (above the 0.5 floor)
    assert out["orange"].trades[0]["leverage"] == pytest.approx(1.0625 * 0.5)


def test_one_position_at_a_time_and_no_reentry_on_exit_bar():
    vd = np.where(np.arange(N) >= ENTRY, -0.035, 0.0)
    eng = run(paths("fall"), vd)
    tr = eng.trades
    assert len(tr) >= 2
    for a, b in itertools.pairwise(tr):
        assert b["entry_bar"] > a["exit_bar"]


def test_step_bar_and_run_bars_give_identical_trades():
    vd = np.where(np.arange(N) % 7 == 0, -0.04, 0.0)
    a = run(paths("fall"), vd, {"use_ob_edge": True})
    b = run(paths("fall"), vd, {"use_ob_edge": True}, step=True)
    assert a.trades.tobytes() == b.trades.tobytes()
    assert len(a.trades) > 1


def test_hell_friction_is_seeded_and_drops_entries():
    vd = np.where(np.arange(N) >= ENTRY, -0.035, 0.0)
    default = run(paths("fall"), vd)
    h1 = run(paths("fall"), vd, hell=True)
    h2 = run(paths("fall"), vd, hell=True)
    assert h1.trades.tobytes() == h2.trades.tobytes()
    assert len(h1.trades) < len(default.trades)
    fees = set(np.round(h1.trades["exit_fee"] / h1.trades["notional"], 6))
    assert fees <= {0.0002, 0.0005}
    assert np.allclose(h1.trades["entry_fee"] / h1.trades["notional"], 0.0002)


def test_legacy_ob_edge_is_seeded_and_roughly_40_percent():
    vd = np.where(np.arange(N) % 3 == 0, -0.04, 0.0)
    p = np.tile(paths("fall")[:, :1], (1, 3)) * np.array([1.0, 1.0001, 1.0002])
    cfg = resolve_overrides({"max_hold_bars": 1})
    eng = NDAlphaEngine(cfg, ["A", "B", "C"])
    eng.begin_day("2024-01-01")
    n = len(vd)
    ts = np.arange(n, dtype=np.int64) * 60_000_000_000  # 1m bars: the gate's order rate is real
    eng.run_bars(0, ts, vd, p, np.zeros(n, bool), np.ones(n, bool))
    edges = eng.trades["ob_edge_pct"]
    assert len(edges) > 20
    assert set(np.round(edges, 8)) <= {0.0, 0.0005}
    assert 0.15 < (edges > 0).mean() < 0.65


def test_state_layout_is_consistent():
    assert lay.N_PARAMS == 39  # P_DATA_END_BARS is the last slot
    assert lay.P_DATA_END_BARS == lay.N_PARAMS - 1
    assert lay.S_STREAK_RING + 5 == lay.N_STATE
    assert AlphaConfig().irp_window_bars <= lay.HIST_LEN


@pytest.mark.parametrize(
    ("field", "value", "slot"),
    [
        ("irp_window_bars", 40, lay.P_IRP_WINDOW),
        ("gap_window_bars", 20, lay.P_GAP_WINDOW),
        ("bucket_min_trades", 9, lay.P_BUCKET_MIN_TRADES),
        ("hell_entry_fill", 0.3, lay.P_HELL_ENTRY_FILL),
        ("hell_maker_exit_fill", 0.2, lay.P_HELL_MAKER_EXIT_FILL),
        ("data_end_bars", 33, lay.P_DATA_END_BARS),
    ],
)
def test_result_shaping_parameters_are_config_fields_covered_by_the_id(field, value, slot):
    base = resolve_overrides({})
    cfg = resolve_overrides({field: value})
    assert cfg.id != base.id
    assert lay.build_params(cfg.alpha)[slot] == value


def test_data_end_bars_zero_means_max_hold_bars():
    cfg = resolve_overrides({"max_hold_bars": 77})
    assert lay.build_params(cfg.alpha)[lay.P_DATA_END_BARS] == 77
