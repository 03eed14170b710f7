"""``BarBuilder``: hand-worked trade and kline cases, plus a pandas resample as the reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dolphin.core.errors import (
    BadInputError,
    BadPriceError,
    BadVolumeError,
    ConfigError,
    InconsistentPriceError,
)
from dolphin.services.bars import Bar, BarBuilder, BarSet, BarSource, Kline

S = 1_000_000_000
T0 = 1_699_999_980 * S  # a whole minute (so also a whole 5 s interval) since the epoch
STEP = 5 * S
MIN = 60 * S


def trades(symbols=("AAA", "BBB"), **kwargs) -> BarBuilder:
    return BarBuilder(symbols, **kwargs)


def klines(symbols=("AAA", "BBB"), **kwargs) -> BarBuilder:
    return BarBuilder(symbols, source=BarSource.KLINES, **kwargs)


def kline(sym, open_ns, close, *, closed=True, volume=1.0) -> Kline:
    return Kline(sym, open_ns, close, close + 1.0, close - 1.0, close, volume, closed)


def carried(close: float) -> Bar:
    return Bar(close, close, close, close, 0.0, True)


# ---------------------------------------------------------------------------- trades


def test_trade_at_the_open_and_just_before_the_next_open_belong_to_the_interval():
    b = trades()
    assert b.on_trade("AAA", T0, 10.0, 1.0) == []
    assert b.on_trade("AAA", T0 + STEP - 1, 11.0, 2.0) == []
    assert b.pending_open_ns == T0


def test_a_trade_exactly_at_the_next_open_completes_the_interval():
    b = trades()
    b.on_trade("AAA", T0, 10.0, 1.0)
    b.on_trade("AAA", T0 + 2 * S, 12.0, 0.5)
    b.on_trade("AAA", T0 + 4 * S, 9.0, 0.25)
    done = b.on_trade("BBB", T0 + STEP, 20.0, 1.0)
    # BBB had no trade before: it has no bar at all in the first interval.
    assert done == [BarSet(T0, {"AAA": 9.0}, {"AAA": False},
                           {"AAA": Bar(10.0, 12.0, 9.0, 9.0, 1.75, False)})]
    assert b.pending_open_ns == T0 + STEP


def test_empty_intervals_carry_the_previous_close_and_are_marked():
    b = trades()
    b.on_trade("AAA", T0, 10.0, 1.0)
    b.on_trade("BBB", T0 + 1, 20.0, 1.0)
    b.on_trade("AAA", T0 + STEP, 11.0, 1.0)  # BBB silent in the second interval
    done = b.on_trade("AAA", T0 + 3 * STEP, 12.0, 1.0)  # nobody trades in the third
    assert [d.open_ts_ns for d in done] == [T0 + STEP, T0 + 2 * STEP]
    second, third = done
    assert second.closes == {"AAA": 11.0, "BBB": 20.0}
    assert second.filled == {"AAA": False, "BBB": True}
    assert second.bars["BBB"] == carried(20.0)
    assert third.closes == {"AAA": 11.0, "BBB": 20.0}
    assert third.filled == {"AAA": True, "BBB": True}
    assert b.emitted == 3


def test_an_outage_of_several_intervals_gives_one_carried_set_per_interval_in_order():
    b = trades(interval_s=5)
    b.on_trade("AAA", T0, 10.0, 1.0)
    done = b.on_trade("AAA", T0 + 3 * MIN + 2 * S, 10.5, 1.0)  # 3 minutes of silence
    stamps = [d.open_ts_ns for d in done]
    assert stamps == [T0 + k * STEP for k in range(36)]  # no gap, oldest first
    assert all(d.filled == {"AAA": True} for d in done[1:])
    assert all(d.bars["AAA"] == carried(10.0) for d in done[1:])


def test_flush_waits_for_the_interval_end_plus_grace():
    b = trades(grace_s=1.5)
    assert b.flush(T0 + 10 * MIN) == []  # nothing seen yet: no bar to emit
    b.on_trade("AAA", T0 + S, 10.0, 1.0)
    assert b.flush(T0 + STEP) == []
    assert b.flush(T0 + STEP + 1_500_000_000 - 1) == []
    (done,) = b.flush(T0 + STEP + 1_500_000_000)
    assert done.open_ts_ns == T0 and done.closes == {"AAA": 10.0}
    assert b.flush(T0 + STEP + 1_500_000_000) == []  # emitted once only


def test_flush_during_an_outage_emits_carried_sets_as_the_clock_passes():
    b = trades(grace_s=0.0)
    b.on_trade("AAA", T0, 10.0, 1.0)
    done = b.flush(T0 + 4 * STEP)
    assert [d.open_ts_ns for d in done] == [T0 + k * STEP for k in range(4)]
    assert [d.filled["AAA"] for d in done] == [False, True, True, True]
    # Data resumes: the next trade completes nothing already emitted.
    assert b.on_trade("AAA", T0 + 4 * STEP + 1, 10.2, 1.0) == []


def test_late_trades_are_counted_and_dropped():
    b = trades(grace_s=0.0)
    b.on_trade("AAA", T0, 10.0, 1.0)
    b.on_trade("AAA", T0 + STEP, 11.0, 1.0)  # first interval emitted
    assert b.on_trade("BBB", T0 + 4 * S, 99.0, 1.0) == []  # belongs to the emitted interval
    assert b.late_dropped == 1
    b.flush(T0 + 2 * STEP)  # the second interval is emitted by the clock
    assert b.on_trade("AAA", T0 + STEP + S, 99.0, 1.0) == []
    assert b.late_dropped == 2
    (nxt,) = b.on_trade("AAA", T0 + 3 * STEP, 12.0, 1.0)
    assert nxt.open_ts_ns == T0 + 2 * STEP
    assert nxt.closes == {"AAA": 11.0}  # neither late trade touched a bar


def test_unknown_symbols_are_counted_and_ignored():
    b = trades()
    assert b.on_trade("ZZZ", T0, 1.0, 1.0) == []
    assert b.unknown_dropped == 1 and b.pending_open_ns is None


def test_interval_is_any_whole_number_of_seconds_anchored_at_the_epoch():
    b = trades(interval_s=7)
    start = (T0 // (7 * S)) * 7 * S
    b.on_trade("AAA", start + 6 * S, 10.0, 1.0)
    (done,) = b.on_trade("AAA", start + 7 * S, 11.0, 1.0)
    assert done.open_ts_ns == start and done.open_ts_ns % (7 * S) == 0


@pytest.mark.parametrize(("price", "qty", "error"), [
    (0.0, 1.0, BadPriceError), (-1.0, 1.0, BadPriceError), (float("nan"), 1.0, BadPriceError),
    (float("inf"), 1.0, BadPriceError), (1.0, -1.0, BadVolumeError),
    (1.0, float("nan"), BadVolumeError),
])
def test_bad_trades_raise_typed_errors_naming_the_symbol(price, qty, error):
    with pytest.raises(error, match="AAA"):
        trades().on_trade("AAA", T0, price, qty)


@pytest.mark.parametrize("kwargs", [
    {"interval_s": 0}, {"interval_s": 2.5}, {"interval_s": True}, {"grace_s": -1.0},
    {"grace_s": float("nan")},
])
def test_bad_configuration_is_refused(kwargs):
    with pytest.raises(ConfigError):
        trades(**kwargs)


def test_symbols_must_be_distinct_and_not_empty():
    with pytest.raises(ConfigError):
        BarBuilder([])
    with pytest.raises(ConfigError):
        BarBuilder(["AAA", "AAA"])


def test_feeding_the_wrong_source_is_a_configuration_error():
    with pytest.raises(ConfigError, match="klines"):
        trades().on_kline(kline("AAA", T0, 10.0))
    with pytest.raises(ConfigError, match="trades"):
        klines().on_trade("AAA", T0, 10.0, 1.0)


def test_default_intervals_are_5s_for_trades_and_1m_for_klines():
    assert trades().interval_s == 5 and klines().interval_s == 60


def _reference(frame: pd.DataFrame, step_s: int, symbols) -> dict[int, dict[str, Bar]]:
    """Bars of sorted trades by pandas: floor, OHLCV, then forward fill on the full grid."""
    frame = frame.assign(start=frame["ts"] - frame["ts"] % (step_s * S))
    g = frame.groupby(["start", "symbol"], sort=True)
    ohlcv = pd.DataFrame({"open": g["price"].first(), "high": g["price"].max(),
                          "low": g["price"].min(), "close": g["price"].last(),
                          "volume": g["qty"].sum()})
    grid = range(int(frame["start"].min()), int(frame["start"].max()), step_s * S)
    out: dict[int, dict[str, Bar]] = {}
    last: dict[str, float] = {}
    for t in grid:
        row = {}
        for sym in symbols:
            if (t, sym) in ohlcv.index:
                o, h, lo, c, v = ohlcv.loc[(t, sym)]
                row[sym] = Bar(o, h, lo, c, v, False)
                last[sym] = c
            elif sym in last:
                row[sym] = carried(last[sym])
        out[t] = row
    return out


def test_trade_bars_equal_a_pandas_resample_of_the_same_trades():
    rng = np.random.default_rng(5)
    symbols = ("AAA", "BBB", "CCC")
    n = 600
    ts = T0 + np.sort(rng.integers(0, 240 * S, n))
    ts[200:260] = ts[199]  # a burst at one instant, then a quiet spell below
    ts[260:] += 40 * S
    frame = pd.DataFrame({"ts": ts, "symbol": rng.choice(symbols, n, p=[0.6, 0.3, 0.1]),
                          "price": rng.lognormal(3, 0.01, n), "qty": rng.exponential(1.0, n)})
    b = trades(symbols)
    got: list[BarSet] = []
    for t, sym, p, q in frame.itertuples(index=False):
        got += b.on_trade(sym, int(t), p, q)
    want = _reference(frame, 5, symbols)
    assert [s.open_ts_ns for s in got] == list(want)  # gapless, in order
    for s in got:
        exp = want[s.open_ts_ns]
        assert list(s.bars) == list(exp), s.open_ts_ns
        for sym, bar in s.bars.items():
            assert bar.filled == exp[sym].filled
            np.testing.assert_allclose(bar[:5], exp[sym][:5], rtol=1e-12, err_msg=sym)
        assert s.closes == {k: v.close for k, v in s.bars.items()}
        assert s.filled == {k: v.filled for k, v in s.bars.items()}
    assert b.late_dropped == 0
    assert any(all(s.filled.values()) for s in got)  # the quiet spell was carried


# ---------------------------------------------------------------------------- klines


def test_unclosed_klines_are_ignored():
    b = klines()
    assert b.on_kline(kline("AAA", T0, 10.0, closed=False)) == []
    assert b.pending_open_ns is None


def test_an_interval_is_complete_once_every_symbol_sent_its_closed_kline():
    b = klines()
    assert b.on_kline(kline("AAA", T0, 10.0)) == []
    (done,) = b.on_kline(kline("BBB", T0, 20.0, volume=3.0))
    assert done.open_ts_ns == T0
    assert done.closes == {"AAA": 10.0, "BBB": 20.0}
    assert done.bars["BBB"] == Bar(20.0, 21.0, 19.0, 20.0, 3.0, False)
    assert b.pending_open_ns == T0 + MIN


def test_a_later_closed_kline_completes_the_interval_and_carries_the_silent_symbol():
    b = klines()
    b.on_kline(kline("AAA", T0, 10.0))
    b.on_kline(kline("BBB", T0, 20.0))
    b.on_kline(kline("AAA", T0 + MIN, 11.0))  # BBB's kline for this minute never comes
    assert b.on_kline(kline("AAA", T0 + 2 * MIN, 12.0, closed=False)) == []
    (done,) = b.on_kline(kline("AAA", T0 + 2 * MIN, 12.0))
    assert done.open_ts_ns == T0 + MIN
    assert done.filled == {"AAA": False, "BBB": True}
    assert done.bars["BBB"] == carried(20.0)


def test_a_kline_outage_of_several_minutes_gives_carried_sets_for_each_minute():
    b = klines(["AAA"])
    b.on_kline(kline("AAA", T0, 10.0))  # complete at once: the only symbol
    done = b.on_kline(kline("AAA", T0 + 5 * MIN, 10.4))
    assert [d.open_ts_ns for d in done] == [T0 + k * MIN for k in (1, 2, 3, 4, 5)]
    assert [d.filled["AAA"] for d in done] == [True, True, True, True, False]


def test_out_of_order_and_repeated_klines_are_counted_and_dropped():
    b = klines()
    b.on_kline(kline("AAA", T0 + MIN, 11.0))
    assert b.on_kline(kline("BBB", T0, 20.0)) == []  # an older minute than the one pending
    b.on_kline(kline("BBB", T0 + MIN, 21.0))  # completes T0 + MIN
    assert b.on_kline(kline("AAA", T0 + MIN, 99.0)) == []  # repeat of an emitted minute
    assert b.late_dropped == 2


def test_flush_emits_a_kline_interval_a_symbol_never_completed():
    b = klines(grace_s=2.0)
    b.on_kline(kline("AAA", T0, 10.0))
    assert b.flush(T0 + MIN + S) == []
    (done,) = b.flush(T0 + MIN + 2 * S)
    assert done.closes == {"AAA": 10.0}


def test_bad_klines_raise_typed_errors():
    b = klines()
    with pytest.raises(BadInputError, match="grid"):
        b.on_kline(kline("AAA", T0 + S, 10.0))
    with pytest.raises(InconsistentPriceError, match="AAA"):
        b.on_kline(Kline("AAA", T0, 10.0, 9.0, 8.0, 9.5, 1.0, True))  # open above high
    with pytest.raises(BadPriceError):
        b.on_kline(Kline("AAA", T0, 10.0, 11.0, 0.0, 10.0, 1.0, True))
    with pytest.raises(BadVolumeError):
        b.on_kline(Kline("AAA", T0, 10.0, 11.0, 9.0, 10.0, -1.0, True))
    assert b.pending_open_ns is None  # nothing bad was taken
