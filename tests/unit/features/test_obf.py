"""OB features (docs/obf.md): each feature on hand-built books and trades, worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dolphin.alpha import layout
from dolphin.core.errors import (
    ConfigError,
    DataError,
    DuplicateTimestampError,
    MissingColumnError,
    UnsortedTimestampError,
)
from dolphin.features.obf import (
    BOOK_COLS,
    NEUTRAL_ASSET_ROW,
    NEUTRAL_MACRO,
    OB_FRAME_COLUMNS,
    OBF_FEATURES,
    OBF_MACRO,
    ObfBank,
    ObfParams,
    book_row,
    cycles_frame,
    read_ob_features,
    validate_ob_features,
    write_ob_features,
)

S = 1_000_000_000
T0 = 1_700_000_000 * S  # a multiple of 5 s: cascade buckets line up with whole seconds
IMB, MA5, PERS, WV, DQ, FILL = (OBF_FEATURES.index(n) for n in OBF_FEATURES)
CASCADE, REGIME, MULT = range(3)


def row(bid_depth: float, ask_depth: float, *, bid_qty: float = 1.0, ask_qty: float = 1.0,
        crossed: float = 0.0, mid: float = 100.0) -> np.ndarray:
    """A book_row built by hand (mid, bid depth, ask depth, best qtys, crossed)."""
    return np.array([mid, bid_depth, ask_depth, bid_qty, ask_qty, crossed])


def run(bank: ObfBank, seq, symbol: str = "BTCUSDT", start: int = T0, step: int = S // 2):
    """Cycle ``bank`` once per item of ``seq`` (a book row, or None for no row); return cycles."""
    out = []
    for k, r in enumerate(seq):
        out.append(bank.cycle(start + k * step, {} if r is None else {symbol: r}))
    return out


def feat(cycle, col: int, symbol: str = "BTCUSDT") -> float:
    return float(cycle.per_asset[cycle.symbols.index(symbol), col])


def imb_row(imbalance: float, total: float = 100.0) -> np.ndarray:
    """A row with this imbalance: bid = total·(1 + x)/2, ask = total·(1 − x)/2."""
    return row(total * (1 + imbalance) / 2, total * (1 - imbalance) / 2)


# --------------------------------------------------------------------------- book_row


def test_book_row_sums_notional_within_the_band_only():
    bids = np.array([[100.0, 1.0], [99.8, 2.0], [99.0, 5.0]])
    asks = np.array([[100.2, 1.5], [100.4, 1.0], [101.5, 3.0]])
    got = book_row(bids, asks, 50.0)
    # mid = (100 + 100.2)/2 = 100.1; band 50 bps: bids >= 100.1·0.995 = 99.5995 (100, 99.8 in;
    # 99.0 out), asks <= 100.1·1.005 = 100.6005 (100.2, 100.4 in; 101.5 out)
    # bid depth = 100·1 + 99.8·2 = 299.6; ask depth = 100.2·1.5 + 100.4·1 = 150.3 + 100.4 = 250.7
    assert got.shape == (BOOK_COLS,)
    np.testing.assert_allclose(got, [100.1, 299.6, 250.7, 1.0, 1.5, 0.0], rtol=1e-14)


def test_book_row_band_grows_with_band_bps():
    bids = [[100.0, 1.0], [99.0, 5.0]]  # lists are accepted too
    asks = [[100.2, 1.5], [101.5, 3.0]]
    # band 200 bps: bids >= 100.1·0.98 = 98.098 (both), asks <= 102.102 (both)
    # bid depth = 100 + 99·5 = 595; ask depth = 150.3 + 101.5·3 = 150.3 + 304.5 = 454.8
    got = book_row(bids, asks, 200.0)
    np.testing.assert_allclose(got[1:3], [595.0, 454.8], rtol=1e-14)


def test_book_row_flags_a_crossed_book_and_nans_an_empty_side():
    crossed = book_row(np.array([[100.0, 1.0]]), np.array([[99.9, 2.0]]), 50.0)
    assert crossed[5] == 1.0 and crossed[0] == pytest.approx(99.95)
    locked = book_row(np.array([[100.0, 1.0]]), np.array([[100.0, 2.0]]), 50.0)
    assert locked[5] == 1.0  # best ask == best bid is crossed too
    empty = book_row(np.zeros((0, 2)), np.array([[100.0, 1.0]]), 50.0)
    assert empty.shape == (BOOK_COLS,) and np.isnan(empty).all()
    assert np.isnan(book_row(np.array([[100.0, 1.0]]), np.zeros((0, 2)), 50.0)).all()


# --------------------------------------------------------------------------- imbalance family


def test_imbalance_ma5_and_persistence_from_the_first_cycles():
    bank = ObfBank()
    c = run(bank, [row(60, 40), row(30, 70), row(50, 50)])
    # cycle 1: imb = (60 − 40)/100 = 0.2; ma5 = 0.2 (one value); persistence 1/1
    assert feat(c[0], IMB) == pytest.approx(0.2) and feat(c[0], MA5) == pytest.approx(0.2)
    assert feat(c[0], PERS) == 1.0
    # cycle 2: imb = (30 − 70)/100 = −0.4; ma5 = (0.2 − 0.4)/2 = −0.1; signs (+, −) vs −: 1/2
    assert feat(c[1], IMB) == pytest.approx(-0.4) and feat(c[1], MA5) == pytest.approx(-0.1)
    assert feat(c[1], PERS) == 0.5
    # cycle 3: imb 0; ma5 = (0.2 − 0.4 + 0)/3 = −0.0667; only −0.4 shares the sign: 1/3
    assert feat(c[2], MA5) == pytest.approx(-0.2 / 3) and feat(c[2], PERS) == pytest.approx(1 / 3)


def test_imbalance_ma5_keeps_the_last_five_valid_cycles():
    bank = ObfBank()
    c = run(bank, [imb_row(x) for x in (0.2, -0.4, 0.0, 0.5, 0.5, 0.5, 0.5)])
    # last five: 0, .5, .5, .5, .5 -> ma5 = 2/5 = 0.4; persistence over all seven (fewer than
    # ten): positive ones 0.2 and four 0.5 = 5 of 7
    assert feat(c[-1], MA5) == pytest.approx(0.4)
    assert feat(c[-1], PERS) == pytest.approx(5 / 7)


def test_persistence_looks_at_the_last_ten_valid_cycles():
    bank = ObfBank()
    c = run(bank, [imb_row(x) for x in [-0.2, -0.2] + [0.1] * 9])
    # 11 cycles: the last ten are one −0.2 and nine 0.1; ma5 = 0.1 -> 9/10 agree
    assert feat(c[-1], MA5) == pytest.approx(0.1) and feat(c[-1], PERS) == pytest.approx(0.9)
    c = run(bank, [imb_row(0.1)], start=T0 + 100 * S)
    # 12th: both −0.2 have left the window -> 10/10
    assert feat(c[-1], PERS) == 1.0


def test_persistence_is_zero_when_ma5_is_zero():
    bank = ObfBank()
    c = run(bank, [imb_row(0.2), imb_row(-0.2)])
    # ma5 = (0.2 − 0.2)/2 = 0 -> no sign to persist
    assert feat(c[-1], MA5) == pytest.approx(0.0, abs=1e-15) and feat(c[-1], PERS) == 0.0


# --------------------------------------------------------------------------- withdrawal


def test_withdrawal_velocity_is_the_relative_change_over_ten_valid_cycles():
    bank = ObfBank()
    depths = [100.0 + k for k in range(1, 12)] + [50.0]  # cycles 1..11: 101..111; 12th: 50
    c = run(bank, [row(d / 2, d / 2) for d in depths])
    # cycles 1..10 have no depth 10 cycles back: 0 (no opinion)
    assert all(feat(x, WV) == 0.0 for x in c[:10])
    # cycle 11: depth 111 vs cycle 1's 101 -> 111/101 − 1 = 0.0990099
    assert feat(c[10], WV) == pytest.approx(111 / 101 - 1)
    # cycle 12: depth 50 vs cycle 2's 102 -> 50/102 − 1 = −0.5098 (thinning)
    assert feat(c[11], WV) == pytest.approx(50 / 102 - 1)


def test_withdrawal_lookback_counts_valid_cycles_only():
    bank = ObfBank()
    seq = [row(50, 50)] * 10 + [None, row(1, 0, crossed=1.0), None] + [row(35, 35)]
    c = run(bank, seq)
    assert not any(x.valid.any() for x in c[10:13])
    # the 11th VALID cycle compares with the 1st: 70/100 − 1 = −0.30
    assert feat(c[13], WV) == pytest.approx(-0.30)


# --------------------------------------------------------------------------- depth quality


def test_depth_quality_against_the_assets_own_rolling_mean():
    p = ObfParams(depth_window=4, depth_min_cycles=3, withdrawal_lookback=2)
    bank = ObfBank(p)
    c = run(bank, [row(d / 2, d / 2) for d in (100, 200, 300, 100, 400)])
    # fewer than 3 valid cycles: 1.0
    assert feat(c[0], DQ) == 1.0 and feat(c[1], DQ) == 1.0
    # cycle 3: mean(100, 200, 300) = 200 -> 300/200 = 1.5
    assert feat(c[2], DQ) == pytest.approx(1.5)
    # cycle 4: mean(100, 200, 300, 100) = 175 -> 100/175
    assert feat(c[3], DQ) == pytest.approx(100 / 175)
    # cycle 5: the window is the last four, 200, 300, 100, 400: mean 250 -> 400/250 = 1.6
    assert feat(c[4], DQ) == pytest.approx(1.6)


def test_depth_quality_is_one_for_twenty_cycles_with_the_defaults():
    bank = ObfBank()
    c = run(bank, [row(d, d) for d in [100.0] * 19 + [300.0]])
    assert all(feat(x, DQ) == 1.0 for x in c[:19])
    # 20th: mean of 19×200 and 600 = (3800 + 600)/20 = 220 -> 600/220
    assert feat(c[19], DQ) == pytest.approx(600 / 220)


# --------------------------------------------------------------------------- fill probability


def test_fill_probability_from_the_taker_flow_on_the_entry_side():
    bank = ObfBank()  # short: a maker sell at the best ask, hit by aggressive buys
    bank.on_trade("BTCUSDT", T0, 100.0, 2.0, buyer_is_maker=False)  # aggressive buy, 2
    bank.on_trade("BTCUSDT", T0, 100.0, 5.0, buyer_is_maker=True)  # sell: other side
    c = bank.cycle(T0 + 10 * S, {"BTCUSDT": row(50, 50, bid_qty=1.0, ask_qty=4.0)})
    # observed 10 s (= warm-up); EW sum 2·e^(−10/30); weights span 30·(1 − e^(−10/30)) s
    # rate = 2/(30·(e^(1/3) − 1)) = 2/11.86837 = 0.168515 per s
    # P = 1 − exp(−0.168515·60/4) = 1 − exp(−2.527726) = 1 − 0.079840 = 0.920160
    assert feat(c, FILL) == pytest.approx(0.920160, abs=1e-6)


def test_fill_probability_of_a_long_uses_aggressive_sells_and_the_bid_queue():
    bank = ObfBank(direction=1)
    bank.on_trade("BTCUSDT", T0, 100.0, 2.0, buyer_is_maker=True)  # aggressive sell, 2
    bank.on_trade("BTCUSDT", T0, 100.0, 9.0, buyer_is_maker=False)  # buy: other side
    c = bank.cycle(T0 + 10 * S, {"BTCUSDT": row(50, 50, bid_qty=4.0, ask_qty=1.0)})
    assert feat(c, FILL) == pytest.approx(0.920160, abs=1e-6)  # the numbers of the short case


def test_fill_probability_decays_and_takes_late_prints_by_age():
    bank = ObfBank()
    bank.on_trade("BTCUSDT", T0 + 5 * S, 100.0, 1.0, buyer_is_maker=False)
    bank.on_trade("BTCUSDT", T0 + 2 * S, 100.0, 1.0, buyer_is_maker=False)  # late print
    c = bank.cycle(T0 + 12 * S, {"BTCUSDT": row(50, 50, ask_qty=0.5)})
    # observed since the earliest print: 10 s. EW sum = e^(−7/30) + e^(−10/30)
    # = 0.791890 + 0.716531 = 1.508421; span = 30·(1 − 0.716531) = 8.504061 s
    # rate = 0.177377/s; P = 1 − exp(−0.177377·60/0.5) = 1 − exp(−21.285) ≈ 1 − 5.7e−10
    ew = math.exp(-7 / 30) + math.exp(-10 / 30)
    rate = ew / (30 * (1 - math.exp(-10 / 30)))
    assert rate == pytest.approx(0.177377, abs=1e-6)
    assert feat(c, FILL) == pytest.approx(1 - math.exp(-rate * 60 / 0.5), abs=1e-12)
    c = bank.cycle(T0 + 62 * S, {"BTCUSDT": row(50, 50, ask_qty=0.5)})
    # 50 s later: EW sum × e^(−50/30) = 1.508421·0.188876 = 0.284904; span 30·(1 − e^(−2)) =
    # 25.93994 s (60 s observed) -> rate 0.010983/s; P = 1 − exp(−0.010983·120)
    # = 1 − 0.267674 = 0.732326
    assert feat(c, FILL) == pytest.approx(0.732326, abs=1e-6)


def test_fill_probability_has_no_opinion_without_trades_or_before_warm_up():
    bank = ObfBank()
    c = run(bank, [row(50, 50)] * 40, step=S)  # 40 s of books, no trade at all
    assert feat(c[-1], FILL) == 0.5
    bank.on_trade("ETHUSDT", T0, 10.0, 1.0, buyer_is_maker=False)
    c = bank.cycle(T0 + 9 * S, {"ETHUSDT": row(50, 50)})
    assert feat(c, FILL, "ETHUSDT") == 0.5  # 9 s observed < 10 s warm-up


def test_fill_probability_is_zero_when_only_the_other_side_trades():
    bank = ObfBank()
    bank.on_trade("BTCUSDT", T0, 100.0, 50.0, buyer_is_maker=True)  # sells only
    c = bank.cycle(T0 + 20 * S, {"BTCUSDT": row(50, 50)})
    # no aggressive buy: rate 0 -> 1 − exp(0) = 0
    assert feat(c, FILL) == 0.0


# --------------------------------------------------------------------------- cascades


def test_three_liquidations_within_the_window_make_a_cascade():
    bank = ObfBank()
    t = T0 + 1000 * S
    for k in range(3):
        bank.on_liquidation("ETHUSDT", t - 30 * S + k, "SELL", 1.0, 10.0)
    bank.on_liquidation("SOLUSDT", t - 30 * S, "BUY", 1.0, 10.0)
    bank.on_liquidation("SOLUSDT", t - 20 * S, "BUY", 1.0, 10.0)  # only two
    c = bank.cycle(t, {})
    assert c.macro[CASCADE] == 1.0  # ETH (3); SOL has 2; no book needed for this test


def test_liquidations_older_than_the_window_do_not_count():
    bank = ObfBank()
    t = T0 + 1000 * S
    # 5 s buckets: the window at t is t's bucket and the 11 before it, [t − 55 s, t + 5 s)
    bank.on_liquidation("ETHUSDT", t - 60 * S, "SELL", 1.0, 10.0)  # bucket 12 back: out
    bank.on_liquidation("ETHUSDT", t - 55 * S, "SELL", 1.0, 10.0)
    bank.on_liquidation("ETHUSDT", t - 1 * S, "SELL", 1.0, 10.0)
    assert bank.cycle(t, {}).macro[CASCADE] == 0.0  # two in the window
    bank.on_liquidation("ETHUSDT", t, "SELL", 1.0, 10.0)
    assert bank.cycle(t, {}).macro[CASCADE] == 1.0


def _flow_case(buy_qty: float, sell_qty: float, last_depth: float) -> float:
    """Cascade count after depth 1000, 1000, then ``last_depth`` (lookback 2) and trades."""
    bank = ObfBank(ObfParams(withdrawal_lookback=2))
    run(bank, [row(500, 500), row(500, 500)], start=T0)
    bank.on_trade("BTCUSDT", T0 + S, 100.0, buy_qty, buyer_is_maker=False)
    bank.on_trade("BTCUSDT", T0 + S, 100.0, sell_qty, buyer_is_maker=True)
    c = bank.cycle(T0 + 2 * S, {"BTCUSDT": row(last_depth / 2, last_depth / 2)})
    return float(c.macro[CASCADE])


def test_one_sided_heavy_flow_with_a_thinning_book_is_a_cascade():
    # withdrawal 700/1000 − 1 = −0.30 < −0.20; buys 300, sells 20 USDT:
    # |300 − 20|/320 = 0.875 >= 0.7; 320 >= 0.25·700 = 175
    assert _flow_case(3.0, 0.2, 700.0) == 1.0


@pytest.mark.parametrize(("buy", "sell", "depth", "why"), [
    (3.0, 1.0, 700.0, "|300 − 100|/400 = 0.5 < 0.7: two-sided"),
    (1.5, 0.0, 700.0, "150 < 175: too little volume for the book"),
    (3.0, 0.2, 900.0, "withdrawal −0.10 is not thinning enough"),
])
def test_flow_without_every_condition_is_no_cascade(buy, sell, depth, why):
    assert _flow_case(buy, sell, depth) == 0.0, why


# --------------------------------------------------------------------------- regime


def _bank_of(n: int, params: ObfParams | None = None) -> tuple[ObfBank, list[str]]:
    symbols = [f"A{i}USDT" for i in range(n)]
    bank = ObfBank(params)
    for s in symbols:
        bank.add(s)
    return bank, symbols


def test_regime_is_stress_when_a_quarter_of_the_books_thin():
    bank, syms = _bank_of(4, ObfParams(withdrawal_lookback=1))
    bank.cycle(T0, {s: row(50, 50) for s in syms})
    # one of four thins by 30 %: share 0.25 >= 0.25 -> +1
    c = bank.cycle(T0 + S, {s: row(35 if s == syms[0] else 50, 35 if s == syms[0] else 50)
                            for s in syms})
    assert feat(c, WV, syms[0]) == pytest.approx(-0.3) and c.macro[REGIME] == 1.0
    bank2, syms = _bank_of(5, ObfParams(withdrawal_lookback=1))
    bank2.cycle(T0, {s: row(50, 50) for s in syms})
    c = bank2.cycle(T0 + S, {s: row(35 if s == syms[0] else 50, 35 if s == syms[0] else 50)
                             for s in syms})
    assert c.macro[REGIME] == 0.0  # 1 of 5 = 0.2 < 0.25; not calm either (dq warming up)


def test_regime_is_stress_with_two_cascades_even_without_books():
    bank = ObfBank()
    for s in ("AUSDT", "BUSDT"):
        for k in range(3):
            bank.on_liquidation(s, T0 + k * S, "SELL", 1.0, 1.0)
    c = bank.cycle(T0 + 5 * S, {})
    assert c.macro[CASCADE] == 2.0 and c.macro[REGIME] == 1.0
    assert c.macro[MULT] == 1.0  # no valid book: no imbalance opinion


def test_regime_is_calm_once_depth_history_is_deep_and_books_balanced():
    bank, syms = _bank_of(3)
    c = None
    for k in range(20):
        c = bank.cycle(T0 + k * S, {s: row(51, 49) for s in syms})  # imbalance 0.02
        if k < 19:
            assert c.macro[REGIME] == 0.0  # depth baseline not there yet: no calm claim
    # 20th cycle: depth quality 100/100 = 1 >= 1, |ma5| 0.02 <= 0.15, no cascade -> −1
    assert c.macro[REGIME] == -1.0
    c = bank.cycle(T0 + 20 * S, {s: row(80, 20) for s in syms})
    # ma5 = (4·0.02 + 0.6)/5 = 0.136 <= 0.15: still calm
    assert feat(c, MA5, syms[0]) == pytest.approx(0.136) and c.macro[REGIME] == -1.0
    c = bank.cycle(T0 + 21 * S, {s: row(80, 20) for s in syms})
    # ma5 = (3·0.02 + 2·0.6)/5 = 0.252 > 0.15: not calm
    assert c.macro[REGIME] == 0.0


# --------------------------------------------------------------------------- market multiplier


def test_market_multiplier_confirms_a_short_on_ask_heavy_books():
    bank, _ = _bank_of(0)
    c = bank.cycle(T0, {"A": imb_row(-0.2), "B": imb_row(-0.1), "C": row(1, 1, crossed=1.0)})
    # mean ma5 of the valid two = −0.15 -> 1 + 0.5·(−1)·(−0.15) = 1.075 (C is crossed: left out)
    assert c.macro[MULT] == pytest.approx(1.075)
    long_bank = ObfBank(direction=1)
    c = long_bank.cycle(T0, {"A": imb_row(-0.2), "B": imb_row(-0.1)})
    assert c.macro[MULT] == pytest.approx(0.925)  # 1 + 0.5·(+1)·(−0.15)


@pytest.mark.parametrize(("imbalance", "want"), [(-0.8, 1.20), (0.8, 0.85)])
def test_market_multiplier_is_clipped(imbalance, want):
    # 1 + 0.5·0.8 = 1.4 -> 1.20; 1 − 0.4 = 0.6 -> 0.85
    c = ObfBank().cycle(T0, {"A": imb_row(imbalance)})
    assert c.macro[MULT] == pytest.approx(want)


# --------------------------------------------------------------------------- invalid rows


@pytest.mark.parametrize("bad", [
    row(60, 40, crossed=1.0), np.full(BOOK_COLS, np.nan), row(np.nan, 40), row(0, 0),
    row(60, 40, ask_qty=0.0), row(np.inf, 40),
])
def test_a_crossed_nan_or_empty_row_is_not_valid_and_keeps_the_history(bad):
    bank = ObfBank()
    c1 = bank.cycle(T0, {"BTCUSDT": imb_row(0.2)})
    c2 = bank.cycle(T0 + S, {"BTCUSDT": bad})
    assert c2.symbols == ("BTCUSDT",) and not c2.valid[0] and np.isnan(c2.per_asset[0]).all()
    c3 = bank.cycle(T0 + 2 * S, {"BTCUSDT": imb_row(0.4)})
    # ma5 over the two valid cycles only: (0.2 + 0.4)/2 = 0.3
    assert c1.valid[0] and feat(c3, MA5) == pytest.approx(0.3)
    assert list(c2.macro) == list(NEUTRAL_MACRO)


def test_a_symbol_without_a_row_gets_a_nan_row():
    bank = ObfBank()
    bank.add("ETHUSDT")
    c = bank.cycle(T0, {"BTCUSDT": imb_row(0.2)})
    assert c.symbols == ("BTCUSDT", "ETHUSDT")
    assert list(c.valid) == [True, False] and np.isnan(c.per_asset[1]).all()
    assert c.per_asset.shape == (2, len(OBF_FEATURES)) and c.macro.shape == (len(OBF_MACRO),)


# --------------------------------------------------------------------------- asset set


def test_add_is_idempotent_and_symbols_stay_sorted():
    bank = ObfBank()
    for s in ("SOLUSDT", "BTCUSDT", "ETHUSDT", "BTCUSDT"):
        bank.add(s)
    assert bank.symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    bank.remove("ETHUSDT")
    bank.remove("NOPEUSDT")  # not tracked: nothing
    assert bank.symbols == ("BTCUSDT", "SOLUSDT")


def test_remove_drops_the_history_and_a_re_added_symbol_starts_fresh():
    bank = ObfBank()
    run(bank, [imb_row(0.5)] * 3)
    bank.remove("BTCUSDT")
    c = bank.cycle(T0 + 10 * S, {"ETHUSDT": imb_row(0.1)})
    assert c.symbols == ("ETHUSDT",)
    c = bank.cycle(T0 + 11 * S, {"BTCUSDT": imb_row(-0.3), "ETHUSDT": imb_row(0.1)})
    assert feat(c, MA5) == pytest.approx(-0.3)  # a row of an unknown symbol adds it, fresh
    assert feat(c, MA5, "ETHUSDT") == pytest.approx(0.1)


def test_a_re_added_symbol_warms_its_fill_probability_up_again():
    bank = ObfBank()
    bank.on_trade("BTCUSDT", T0, 100.0, 1.0, buyer_is_maker=False)
    assert feat(bank.cycle(T0 + 20 * S, {"BTCUSDT": row(50, 50)}), FILL) != 0.5
    bank.remove("BTCUSDT")
    bank.on_trade("BTCUSDT", T0 + 100 * S, 100.0, 1.0, buyer_is_maker=False)  # adds it back
    # observed since the re-add: 5 s < 10 s warm-up -> no opinion
    assert feat(bank.cycle(T0 + 105 * S, {"BTCUSDT": row(50, 50)}), FILL) == 0.5


def test_many_symbols_grow_the_bank_without_mixing_histories():
    bank = ObfBank()
    syms = [f"S{i:02d}USDT" for i in range(40)]  # more than the 16 first slots
    c = bank.cycle(T0, {s: imb_row(i / 100) for i, s in enumerate(syms[:10])})
    c = bank.cycle(T0 + S, {s: imb_row(-i / 100) for i, s in enumerate(syms)})
    assert c.symbols == tuple(syms)
    for i, s in enumerate(syms):
        # first ten: (i/100 − i/100)/2 = 0; the rest have one value, −i/100
        want = 0.0 if i < 10 else -i / 100
        assert feat(c, MA5, s) == pytest.approx(want, abs=1e-15)
        assert feat(c, IMB, s) == pytest.approx(-i / 100, abs=1e-15)


# --------------------------------------------------------------------------- engine layout


def test_engine_rows_follow_the_alpha_layout():
    bank = ObfBank()
    bank.on_trade("AUSDT", T0, 1.0, 1.0, buyer_is_maker=False)
    bank.cycle(T0, {"AUSDT": imb_row(0.2, 100.0), "BUSDT": imb_row(0.1)})
    c = bank.cycle(T0 + 20 * S, {"AUSDT": imb_row(0.4, 60.0), "BUSDT": row(1, 1, crossed=1)})
    per, macro = c.engine_rows(["BUSDT", "AUSDT", "ZUSDT"])
    assert per.shape == (3, layout.N_OB_ASSET) and macro.shape == (layout.N_OB_MACRO,)
    a = per[1]
    # A: ma5 (0.2 + 0.4)/2 = 0.3, persistence 1, withdrawal 0 (2 cycles), depth quality 1.0
    # (warming up), fill probability from the one buy
    assert a[layout.OB_IMBALANCE] == pytest.approx(0.3)
    assert a[layout.OB_PERSISTENCE] == 1.0 and a[layout.OB_WITHDRAWAL] == 0.0
    assert a[layout.OB_DEPTH_QUALITY] == 1.0
    assert a[layout.OB_FILL_PROB] == feat(c, FILL, "AUSDT") != 0.5
    for neutral in (per[0], per[2]):  # B is crossed this cycle, Z unknown
        assert neutral[layout.OB_IMBALANCE] == 0.0 and neutral[layout.OB_PERSISTENCE] == 0.0
        assert neutral[layout.OB_WITHDRAWAL] == 0.0 and neutral[layout.OB_DEPTH_QUALITY] == 1.0
        assert neutral[layout.OB_FILL_PROB] == 0.5
    assert macro[layout.OB_CASCADE] == c.macro[OBF_MACRO.index("cascade_count")]
    assert macro[layout.OB_REGIME] == c.macro[OBF_MACRO.index("regime_signal")]
    assert macro[layout.OB_MARKET_MULT] == pytest.approx(1 + 0.5 * -1 * 0.3)


def test_neutral_rows_are_no_opinion_in_the_engine_layout():
    assert NEUTRAL_ASSET_ROW[layout.OB_IMBALANCE] == 0.0
    assert NEUTRAL_ASSET_ROW[layout.OB_PERSISTENCE] == 0.0
    assert NEUTRAL_ASSET_ROW[layout.OB_WITHDRAWAL] == 0.0
    assert NEUTRAL_ASSET_ROW[layout.OB_DEPTH_QUALITY] == 1.0
    assert NEUTRAL_ASSET_ROW[layout.OB_FILL_PROB] == 0.5
    assert NEUTRAL_MACRO[layout.OB_CASCADE] == 0.0 and NEUTRAL_MACRO[layout.OB_REGIME] == 0.0
    assert NEUTRAL_MACRO[layout.OB_MARKET_MULT] == 1.0
    with pytest.raises(ValueError, match="read-only"):
        NEUTRAL_ASSET_ROW[0] = 1.0
    per, _ = ObfBank().cycle(T0, {}).engine_rows([])
    assert per.shape == (0, layout.N_OB_ASSET)


# --------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("bad", [
    {"band_bps": 0.0}, {"ma_len": 0}, {"ma_len": 2.5}, {"depth_window": 10},
    {"withdrawal_threshold": 0.1}, {"cascade_one_sided": 1.5}, {"market_mult_min": 1.1},
    {"fill_horizon_s": math.nan}, {"depth_min_cycles": 400},
])
def test_params_reject_bad_values(bad):
    with pytest.raises(ConfigError):
        ObfParams(**bad)


def test_params_id_is_stable_and_changes_with_a_value():
    assert ObfParams().id == ObfParams().id != ObfParams(band_bps=25.0).id
    with pytest.raises(ConfigError, match="direction"):
        ObfBank(direction=0)


# --------------------------------------------------------------------------- recorded parquet


def _frame() -> pd.DataFrame:
    """Two cycles: A and B valid at T0; C added; only A has a book at T0 + 1 s.

    Rows (ts, symbol): 0 (T0, A), 1 (T0, B), 2 (T0 + 1 s, A), 3 (T0 + 1 s, B: NaN),
    4 (T0 + 1 s, C: NaN).
    """
    bank = ObfBank()
    cycles = [bank.cycle(T0, {"BUSDT": imb_row(0.2), "AUSDT": imb_row(-0.1)})]
    bank.add("CUSDT")
    cycles.append(bank.cycle(T0 + S, {"AUSDT": imb_row(0.3)}))
    return cycles_frame(cycles)


def test_cycles_frame_has_one_row_per_asset_of_the_bank_per_cycle():
    df = _frame()
    assert tuple(df.columns) == OB_FRAME_COLUMNS
    # T0: the bank holds A and B; T0 + 1 s: A, B and C (C added before the cycle)
    assert list(df["symbol"]) == ["AUSDT", "BUSDT", "AUSDT", "BUSDT", "CUSDT"]
    assert list(df["ts_ns"]) == [T0, T0, T0 + S, T0 + S, T0 + S]
    assert df["ts_ns"].dtype == np.int64
    assert df.groupby("ts_ns").size().tolist() == [2, 3]
    # A at T0 + 1 s: (−0.1 + 0.3)/2 = 0.1; B has no book and C never had one: NaN rows
    ma5 = df["imbalance_ma5"].to_numpy()
    assert ma5[:3].tolist() == pytest.approx([-0.1, 0.2, 0.1])
    feats = df[list(OBF_FEATURES)].to_numpy()
    assert np.isfinite(feats[:3]).all() and np.isnan(feats[3:]).all()
    # the macro is on every row, NaN rows too, finite and constant within a cycle:
    # T0 mean ma5 (−0.1 + 0.2)/2 = 0.05 -> 1 − 0.5·0.05 = 0.975; T0 + 1 s only A's 0.1 -> 0.95
    assert df["market_multiplier"].tolist() == pytest.approx([0.975, 0.975, 0.95, 0.95, 0.95])
    assert df["cascade_count"].tolist() == [0.0] * 5 and df["regime_signal"].tolist() == [0.0] * 5
    assert np.isfinite(df[list(OBF_MACRO)].to_numpy()).all()
    assert (df.groupby("ts_ns")[list(OBF_MACRO)].nunique() == 1).all().all()


def test_cycles_frame_nans_exactly_the_assets_that_are_not_valid():
    bank = ObfBank()
    bank.add("ZUSDT")  # tracked, never a book
    c = bank.cycle(T0, {"AUSDT": imb_row(0.5), "BUSDT": row(60, 40, crossed=1.0),
                        "CUSDT": row(0, 0)})
    assert list(c.valid) == [True, False, False, False]
    df = cycles_frame([ObfBank().cycle(T0 - S, {}), c])  # an empty bank gives no row
    assert list(df["symbol"]) == ["AUSDT", "BUSDT", "CUSDT", "ZUSDT"]
    assert set(df["ts_ns"]) == {T0}
    feats = df[list(OBF_FEATURES)].to_numpy()
    assert feats[0, IMB] == pytest.approx(0.5) and np.isfinite(feats[0]).all()
    assert np.isnan(feats[1:]).all()  # crossed, no depth in the band, no book
    # only A is valid: 1 + 0.5·(−1)·0.5 = 0.75, clipped to 0.85, on every row
    assert df["market_multiplier"].tolist() == pytest.approx([0.85] * 4)


def test_parquet_round_trip(tmp_path):
    df = _frame()
    path = write_ob_features(df.iloc[::-1], tmp_path / "ob.parquet")  # sorted on the way
    back = read_ob_features(path)
    pd.testing.assert_frame_equal(back, df)  # NaN rows included
    assert back["imbalance"].isna().tolist() == [False, False, False, True, True]
    assert [p.name for p in tmp_path.iterdir()] == ["ob.parquet"]
    assert back["symbol"].dtype == np.dtype(object) and (back.dtypes.iloc[2:] == np.float64).all()


def test_an_empty_frame_round_trips(tmp_path):
    df = cycles_frame([])
    back = read_ob_features(write_ob_features(df, tmp_path / "e.parquet"))
    assert back.empty and tuple(back.columns) == OB_FRAME_COLUMNS


def test_a_frame_of_nan_rows_only_round_trips(tmp_path):
    bank = ObfBank()
    bank.add("AUSDT")
    df = cycles_frame([bank.cycle(T0, {}), bank.cycle(T0 + S, {"AUSDT": row(1, 1, crossed=1)})])
    assert len(df) == 2 and df[list(OBF_FEATURES)].isna().all().all()
    back = read_ob_features(write_ob_features(df, tmp_path / "nan.parquet"))
    pd.testing.assert_frame_equal(back, df)
    assert back[list(OBF_MACRO)].to_numpy().tolist() == [list(NEUTRAL_MACRO)] * 2


def _write_raw(df: pd.DataFrame, path) -> str:
    df.to_parquet(path, index=False)
    return str(path)


NAN = np.nan


@pytest.mark.parametrize(("change", "error", "column"), [
    (lambda d: d.drop(columns="depth_quality"), MissingColumnError, "depth_quality"),
    (lambda d: d.assign(ts_ns=d["ts_ns"].astype(float)), DataError, "ts_ns"),
    (lambda d: d.assign(symbol=[1, 2, 3, 4, 5]), DataError, "symbol"),
    (lambda d: d.assign(fill_probability=[1, 1, 1, 0, 0]), DataError, "fill_probability"),
    (lambda d: d.assign(imbalance=[0.1, 1.5, 0.1, NAN, NAN]), DataError, "imbalance"),
    (lambda d: d.assign(depth_quality=[1.0, np.inf, 1.0, NAN, NAN]), DataError,
     "depth_quality"),
    # ±inf is not "unknown", even on a row that is otherwise NaN
    (lambda d: d.assign(withdrawal_velocity=[0.0, 0.0, 0.0, -np.inf, NAN]), DataError,
     "withdrawal_velocity"),
    # the macro must be finite and constant within a cycle on the NaN rows too
    (lambda d: d.assign(regime_signal=[0.0, 0.0, 0.0, 0.0, NAN]), DataError, "regime_signal"),
    (lambda d: d.assign(cascade_count=[0.0, 0.0, 0.0, 1.0, 0.0]), DataError, "cascade_count"),
    (lambda d: d.iloc[[1, 0, 2, 3, 4]], UnsortedTimestampError, "ts_ns"),
    (lambda d: d.iloc[[2, 0, 1, 3, 4]], UnsortedTimestampError, "ts_ns"),
    (lambda d: d.iloc[[0, 1, 2, 4, 3]], UnsortedTimestampError, "ts_ns"),
    (lambda d: d.assign(symbol=["AUSDT", "AUSDT", "AUSDT", "BUSDT", "CUSDT"]),
     DuplicateTimestampError, "ts_ns"),
    (lambda d: d.assign(symbol=["AUSDT", "BUSDT", "AUSDT", "CUSDT", "CUSDT"]),
     DuplicateTimestampError, "ts_ns"),
])
def test_reading_a_bad_file_names_the_file_and_the_column(tmp_path, change, error, column):
    path = _write_raw(change(_frame()), tmp_path / "bad.parquet")
    with pytest.raises(error) as info:
        read_ob_features(path)
    assert info.value.source == path and info.value.field == column
    assert path in str(info.value) and column in str(info.value)


def test_a_nan_feature_is_allowed_as_unknown():
    df = _frame().assign(withdrawal_velocity=[NAN, 0.0, 0.0, NAN, NAN])
    got = validate_ob_features(df)
    assert got["withdrawal_velocity"].isna().tolist() == [True, False, False, True, True]
    assert got["imbalance"].isna().tolist() == [False, False, False, True, True]


def test_reading_a_missing_or_non_parquet_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such"):
        read_ob_features(tmp_path / "none.parquet")
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="not a readable parquet") as info:
        read_ob_features(junk)
    assert info.value.source == str(junk)


def test_writing_a_bad_frame_writes_nothing(tmp_path):
    bad = _frame().assign(imbalance_persistence=[0.5, 2.0, 0.5, NAN, NAN])
    with pytest.raises(DataError, match="imbalance_persistence"):
        write_ob_features(bad, tmp_path / "ob.parquet")
    assert list(tmp_path.iterdir()) == []
