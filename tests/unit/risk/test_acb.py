"""ACB v6 (Bible §10): each factor threshold, the log1p boost, dynamic beta, ExF as-of table."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from dolphin.core.config import AcbConfig
from dolphin.features.exf import ExfTable
from dolphin.risk.acb import AdaptiveCircuitBreaker, base_boost, dynamic_beta, factor_signals

CFG = AcbConfig()
NAN = math.nan


def sig(funding=NAN, dvol=NAN, fng=NAN, taker=NAN):
    return factor_signals(
        {"funding_btc": funding, "dvol_btc": dvol, "fng": fng, "taker": taker}, CFG
    )


@pytest.mark.parametrize(
    ("v", "w"), [(-0.0002, 1.0), (-0.0001, 0.5), (-0.00005, 0.5), (0.0, 0.0), (0.0001, 0.0)]
)
def test_funding_thresholds(v, w):
    assert sig(funding=v)["funding_btc"] == w


@pytest.mark.parametrize(("v", "w"), [(81, 1.0), (80, 0.5), (56, 0.5), (55, 0.0)])
def test_dvol_thresholds(v, w):
    assert sig(dvol=v)["dvol_btc"] == w


@pytest.mark.parametrize(("v", "w"), [(0.79, 1.0), (0.8, 0.5), (0.89, 0.5), (0.9, 0.0)])
def test_taker_thresholds(v, w):
    assert sig(taker=v)["taker"] == w


@pytest.mark.parametrize(("v", "w"), [(24, 1.0), (25, 0.5), (39, 0.5), (40, 0.0)])
def test_fng_thresholds_count_only_with_confirmation(v, w):
    assert sig(fng=v, dvol=60)["fng"] == w  # dvol 60 confirms (0.5)
    assert sig(fng=v)["fng"] == 0.0  # alone: no confirmation


def test_absent_factors_count_nothing():
    assert sum(sig().values()) == 0.0


@pytest.mark.parametrize(
    ("s", "b"),
    [
        (0.0, 1.0),
        (0.5, 1.0),
        (1.0, 1 + 0.5 * math.log(2)),
        (2.0, 1 + 0.5 * math.log(3)),
        (3.0, 1 + 0.5 * math.log(4)),
    ],
)
def test_base_boost_log1p(s, b):
    assert base_boost(s) == pytest.approx(b)


def test_base_boost_bible_values():
    assert round(base_boost(1.0), 3) == 1.347
    assert round(base_boost(2.0), 3) == 1.549
    assert round(base_boost(3.0), 3) == 1.693


def test_dynamic_beta_p60_switch():
    hist = np.arange(1.0, 11.0)  # p60 (linear) = 6.4
    assert dynamic_beta(6.4, hist, CFG) == (0.8, pytest.approx(6.4))
    assert dynamic_beta(6.3, hist, CFG)[0] == 0.2
    assert dynamic_beta(5.0, np.array([]), CFG)[0] == 0.2


def _indices(tmp_path):
    day = 86_400_000
    t0 = int(pd.Timestamp("2024-03-01", tz="UTC").value // 1_000_000)
    (tmp_path / "funding_rate_btc.json").write_text(
        json.dumps([[t0 - 8 * 3_600_000, 0.01], [t0, -0.02]])
    )  # percent: -0.02 % = -0.0002
    (tmp_path / "dvol_btc.json").write_text(json.dumps([[t0 - day, 85.0], [t0, 40.0]]))
    (tmp_path / "fear_greed_index.csv").write_text("Date,fng_value,fng_class\n2024-03-01,20,EF\n")
    return tmp_path


def test_exf_as_of_without_look_ahead(tmp_path):
    exf = ExfTable.from_dir(_indices(tmp_path))
    f = exf.for_date("2024-03-01")
    assert f["funding_btc"] == pytest.approx(-0.0002)  # percent / 100, print at 00:00
    assert f["dvol_btc"] == 85.0  # the candle of 02-29, available at 03-01 00:00
    assert f["fng"] == 20.0
    assert math.isnan(f["taker"])  # no file: absent
    assert math.isnan(exf.for_date("2024-03-10")["dvol_btc"])  # stale beyond 2 days


def test_acb_day_combines_factors_and_reports_absent(tmp_path):
    acb = AdaptiveCircuitBreaker(CFG, ExfTable.from_dir(_indices(tmp_path)))
    d = acb.day("2024-03-01")
    assert d.signals == 3.0  # funding 1 + dvol 1 + fng 1 (confirmed)
    assert d.boost == pytest.approx(1.0 + 0.5 * math.log(4))
    assert d.absent == ("taker",)
    assert d.beta == 0.2  # no w750 history yet
    short = AdaptiveCircuitBreaker(AcbConfig(w750_warmup_days=3), ExfTable.from_dir(tmp_path))
    for v in (1.0, 2.0, 3.0):
        short.observe_w750(v)
    assert short.day("2024-03-01").beta == 0.8  # 3.0 >= p60 of (1, 2, 3) = 2.2
    assert short.day("2024-03-01", ob_stress=1.0).beta == pytest.approx(1.0)


#: One finite daily median per day. Day d (1-based) sees the medians of days 1..d-1; its value is
#: the last of them and its threshold the linear p60 of all of them (position 0.6 (n - 1)).
MEDIANS = [5.0, 1.0, 4.0, 2.0, 3.0, 9.0, 8.0, 0.0, 6.0, 3.0]
#: Worked by hand, days 1..11. Days 1-7 hold 0..6 observations (< 7): warm-up, beta_low.
#: Day 8: 1 2 3 4 5 8 9, pos 3.6 -> 4 + 0.6 (5 - 4) = 4.6; value 8 >= 4.6 -> high.
#: Day 9: 0 1 2 3 4 5 8 9, pos 4.2 -> 4 + 0.2 (5 - 4) = 4.2; value 0 -> low.
#: Day 10: 0 1 2 3 4 5 6 8 9, pos 4.8 -> 4 + 0.8 (5 - 4) = 4.8; value 6 -> high.
#: Day 11: 0 1 2 3 3 4 5 6 8 9, pos 5.4 -> 4 + 0.4 (5 - 4) = 4.4; value 3 -> low.
HAND_BETA = [0.2] * 7 + [0.8, 0.2, 0.8, 0.2]
HAND_THRESHOLD = [NAN] * 7 + [4.6, 4.2, 4.8, 4.4]


def _run(cfg: AcbConfig, medians: list[float]) -> list:
    acb = AdaptiveCircuitBreaker(cfg)
    days = []
    for m in [*medians, None]:
        days.append(acb.day("2024-03-01"))
        if m is not None:
            acb.observe_w750(m)
    return days


def test_default_warm_up_is_seven_observed_days():
    assert CFG.w750_warmup_days == 7
    assert AcbConfig(w750_warmup_days=3) != CFG  # a config field: covered by config.id


def test_no_beta_high_before_the_warm_up_then_the_p60_rule_by_hand():
    days = _run(CFG, MEDIANS)
    assert [d.beta for d in days] == HAND_BETA
    np.testing.assert_allclose([d.w750_threshold for d in days], HAND_THRESHOLD, rtol=1e-12)
    assert [d.w750_value for d in days[7:]] == [8.0, 0.0, 6.0, 3.0]


def test_without_warm_up_day_two_is_beta_high_by_construction():
    # the bug the warm-up fixes: one observation is its own 60th percentile
    days = _run(AcbConfig(w750_warmup_days=0), [5.0])
    assert [d.beta for d in days] == [0.2, 0.8]


def test_days_without_a_finite_median_do_not_count_towards_the_warm_up():
    acb = AdaptiveCircuitBreaker(CFG)
    for m in [1.0, NAN, 2.0, NAN, 3.0, 4.0, 5.0, 6.0]:
        acb.observe_w750(m)
    assert acb.day("2024-03-01").beta == 0.2  # 6 finite medians < 7
    acb.observe_w750(7.0)
    d = acb.day("2024-03-01")
    assert d.beta == 0.8 and d.w750_threshold == pytest.approx(4.6)  # 1..7: 4 + 0.6
    acb.observe_w750(NAN)
    assert acb.day("2024-03-01").beta == 0.2  # unknown latest value: beta_low


def test_real_indices_load(shared_data):
    exf = ExfTable.from_dir(shared_data / "indices")
    f = exf.for_date("2024-01-15")
    assert not math.isnan(f["fng"]) and not math.isnan(f["dvol_btc"])
    assert abs(f["funding_btc"]) < 0.01  # a fraction, not percent
    assert math.isnan(exf.for_date("2021-04-10")["dvol_btc"])  # before the DVOL history


def test_sweep_acb_days_reproduce_the_replays_days_with_the_warm_up():
    from dolphin.backtest.replay import run_replay
    from dolphin.backtest.sweep import prepare
    from dolphin.core.config import DolphinConfig
    from tests.kit.scans import build_scans, trend_prices

    per_day = 12  # 2 h bars
    medians = [5.0, 1.0, NAN, 4.0, 2.0, 3.0, 9.0, 8.0, 0.0, 6.0, 3.0, 7.0]
    v750 = np.repeat(medians, per_day)
    n = len(v750)
    scans = build_scans({"AUSDT": trend_prices(n, 100.0, 0.01)}, freq="2h", v750_velocity=v750)
    cfg = DolphinConfig()
    replayed = run_replay(scans, cfg).daily["beta"].to_numpy()
    _, swept = prepare(scans).acb_days(cfg.acb)
    np.testing.assert_array_equal(swept, replayed)
    # the NaN day is not an observation: 7 finite medians exist from day 9 on (1-based)
    assert (replayed[:8] == cfg.acb.beta_low).all()
    assert replayed[8] == cfg.acb.beta_high  # value 8 vs p60 of 5 1 4 2 3 9 8 = 4.6
