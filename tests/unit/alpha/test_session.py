"""The one day protocol: UTC day split, the day's w750 median, begin/end around the engine."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from dolphin.alpha.engine import NDAlphaEngine
from dolphin.alpha.session import DayProtocol, acb_days, day_bounds, day_w750, utc_date
from dolphin.backtest import sweep as sw
from dolphin.backtest.replay import run_replay
from dolphin.core.config import AcbConfig, DolphinConfig
from dolphin.risk.acb import AdaptiveCircuitBreaker
from tests.kit.scans import random_scans

H = 3_600_000_000_000


def test_utc_days_split_at_midnight_of_the_bar_open_time():
    ts = np.array([23 * H, 23 * H + 59 * 60 * 10**9, 24 * H, 47 * H, 48 * H], dtype=np.int64)
    assert utc_date(int(ts[0])) == "1970-01-01" and utc_date(int(ts[2])) == "1970-01-02"
    assert day_bounds(ts).tolist() == [0, 2, 4, 5]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3) | st.just(math.nan) | st.sampled_from([0.5, -0.0, 0.0]),
                max_size=40))
def test_day_w750_equals_numpy_median_of_the_finite_values(values):
    finite = [x for x in values if math.isfinite(x)]
    got = day_w750(np.array(values, dtype=np.float64))
    assert got == (float(np.median(finite)) if finite else None)
    assert got is None or type(got) is float


def test_day_w750_is_the_median_of_finite_values_or_none():
    assert day_w750(np.array([3.0, np.nan, 1.0, 2.0])) == 2.0
    assert day_w750(np.array([np.nan])) is None


def test_acb_days_feed_each_median_after_its_own_verdict():
    cfg = AcbConfig(w750_warmup_days=1)
    days = acb_days(AdaptiveCircuitBreaker(cfg), ["2024-01-01", "2024-01-02", "2024-01-03"],
                    [5.0, None, 1.0])
    # day 1: nothing observed yet -> beta_low. Day 2: history [5], value 5 >= its own 60th
    # percentile (5) -> beta_high. Day 3: day 2 had no median, so value and history are still
    # [5] -> beta_high; day 3's 1.0 only counts after day 3.
    assert [d.beta for d in days] == [cfg.beta_low, cfg.beta_high, cfg.beta_high]
    assert [d.date for d in days] == ["2024-01-01", "2024-01-02", "2024-01-03"]


def test_day_protocol_begins_and_ends_days_and_feeds_the_acb():
    eng = NDAlphaEngine(DolphinConfig(), ["A", "B"])
    acb = AdaptiveCircuitBreaker(AcbConfig())
    proto = DayProtocol(eng, acb)
    acb_day = proto.begin("2024-01-01")
    assert acb_day is not None and eng.posture == "APEX"
    proto.observe_v750(np.array([0.1, np.nan, 0.3]))
    summary = proto.end()
    assert summary.date == "2024-01-01"
    assert proto.days == [summary] and proto.day_acb == [acb_day]
    assert list(acb._w750) == [0.2]  # the day's median, after the day


def test_replay_scan_driver_and_sweep_agree_on_every_day():
    from dolphin.adapters.nautilus.parity_fills import run_parity_replay

    scans = random_scans(3 * 1440, 4, seed=9)
    replay = run_replay(scans, DolphinConfig())
    parity = run_parity_replay(scans, DolphinConfig())
    data = sw.prepare(scans)
    boost, beta = data.acb_days(DolphinConfig().acb)
    cols = ["date", "boost", "beta", "mc_status", "posture"]
    pd.testing.assert_frame_equal(replay.daily[cols], parity.daily[cols])
    assert np.array_equal(replay.daily["beta"], beta) and np.array_equal(replay.daily["boost"],
                                                                          boost)


class _Hibernate:
    """HIBERNATE on the given dates, APEX otherwise."""

    def __init__(self, dates):
        self.dates = set(dates)

    def posture(self, date: str) -> str:
        return "HIBERNATE" if date in self.dates else "APEX"


def test_a_hibernate_day_closes_the_position_then_skips_flat_bars():
    scans = random_scans(3 * 1440, 4, seed=2)
    base = run_replay(scans, DolphinConfig())
    day2 = str(scans["timestamp"].iloc[1440].date())
    res = run_replay(scans, DolphinConfig(), posture_provider=_Hibernate([day2]))
    t = res.trades
    on_day2 = t[t["entry_time"].dt.strftime("%Y-%m-%d") == day2]
    assert len(on_day2) == 0  # no entry on the HIBERNATE day
    exits = t[t["exit_time"].dt.strftime("%Y-%m-%d") == day2]
    assert set(exits["exit_reason"]) <= {"HIBERNATE_HALT"}
    eq = res.equity.set_index("timestamp")["equity"]
    flat = eq[eq.index.strftime("%Y-%m-%d") == day2]
    assert flat.iloc[-1] == flat.iloc[-2]  # skipped bars repeat the capital
    assert len(base.trades) > len(res.trades)
