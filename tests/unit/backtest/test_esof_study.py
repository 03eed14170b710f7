"""The EsoF study's statistics on cases with known answers (``group_stats``, ``esof_study``)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import kruskal, kstest

from dolphin.backtest.esof_study import (
    moon_quarter,
    report_lines,
    run_study,
    study_days,
    wipeout_claim,
)
from dolphin.backtest.group_stats import (
    arrangements,
    benjamini_hochberg,
    distinct_groups_cdf,
    holm,
    hypergeom_tail,
    kruskal_h,
    n_arrangements,
    permutation_h,
)

# --- Kruskal–Wallis H and its permutation p-value ---------------------------------------------


def test_h_matches_scipy_with_and_without_ties():
    rng = np.random.default_rng(3)
    x = np.round(rng.normal(size=50), 1)  # rounding makes ties
    x[:8] = 0.0  # and a block of flat days
    labels = rng.integers(0, 7, size=50)
    expected = kruskal(*[x[labels == g] for g in range(7)]).statistic
    assert kruskal_h(x, labels) == pytest.approx(expected, rel=1e-12)


def test_h_of_a_hand_computed_split():
    # ranks 1,2 | 3,4: mean ranks 1.5 and 3.5 around 2.5; H = 3 * (2 + 2) / 5
    assert kruskal_h([10.0, 20.0, 30.0, 40.0], ["a", "a", "b", "b"]) == pytest.approx(2.4)


def test_h_is_undefined_for_one_group_or_constant_values():
    assert math.isnan(kruskal_h([1.0, 2.0, 3.0], ["a", "a", "a"]))
    assert math.isnan(kruskal_h([1.0, 1.0, 1.0, 1.0], ["a", "a", "b", "b"]))
    res = permutation_h([1.0, 2.0, 3.0], ["a", "a", "a"])
    assert math.isnan(res.statistic) and math.isnan(res.p_value)


def test_arrangements_are_every_distinct_labelling_once():
    every = [tuple(a) for a in arrangements([2, 1, 2])]
    assert len(every) == len(set(every)) == n_arrangements([2, 1, 2]) == 30  # 5!/(2!1!2!)
    assert set(every) == set(itertools.permutations([0, 0, 1, 2, 2]))


@pytest.mark.parametrize(
    ("values", "p"),
    [
        # 4!/(2!2!) = 6 labellings of a,a,b,b; H: {12|34} and {34|12} 2.4, {13|24} {24|13} 0.6,
        # {14|23} {23|14} 0
        ([1.0, 2.0, 3.0, 4.0], 2 / 6),  # H = 2.4: 2 labellings reach it
        ([1.0, 3.0, 2.0, 4.0], 4 / 6),  # H = 0.6: 4 reach it
        ([1.0, 4.0, 2.0, 3.0], 6 / 6),  # H = 0: all do
    ],
)
def test_exact_p_of_four_days_is_the_share_of_the_six_labellings(values, p):
    res = permutation_h(values, ["a", "a", "b", "b"])
    assert res.exact and res.n_permutations == 6
    assert res.p_value == pytest.approx(p, abs=1e-15)


def test_sampled_p_converges_to_the_exact_one():
    res = permutation_h([1.0, 2.0, 3.0, 4.0], list("aabb"), n_permutations=40_000, exact=False)
    assert not res.exact
    assert res.p_value == pytest.approx(1 / 3, abs=0.01)  # binomial sd 0.0024


def test_sampled_p_is_never_zero_and_is_seeded():
    x = np.r_[np.zeros(20), np.ones(20)]  # perfectly separated
    a = permutation_h(x, [0] * 20 + [1] * 20, n_permutations=999, seed=7)
    assert a.p_value == pytest.approx(1 / 1000)  # (0 + 1) / (999 + 1)
    rng = np.random.default_rng(0)
    y, lab = rng.normal(size=40), rng.integers(0, 3, 40)
    assert permutation_h(y, lab, seed=1) == permutation_h(y, lab, seed=1)
    assert permutation_h(y, lab, seed=1).p_value != permutation_h(y, lab, seed=2).p_value


def test_a_planted_weekday_effect_is_detected():
    rng = np.random.default_rng(11)
    weekday = np.arange(70) % 7
    x = rng.normal(0.0, 0.01, 70) - 0.02 * (weekday == 0)  # Mondays lose 2 sd more
    res = permutation_h(x, weekday, n_permutations=5000, seed=0)
    assert res.p_value < 0.01


def test_noise_gives_roughly_uniform_p_close_to_the_asymptotic_one():
    p, asym = [], []
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        x, lab = rng.standard_t(3, 60), rng.integers(0, 7, 60)
        p.append(permutation_h(x, lab, n_permutations=2000, seed=seed).p_value)
        asym.append(kruskal(*[x[lab == g] for g in range(7)]).pvalue)
    assert min(p) > 0.005  # none tiny
    assert kstest(p, "uniform").pvalue > 0.05
    assert np.max(np.abs(np.array(p) - asym)) < 0.05  # chi-square approximation, 2000 draws


# --- multiple testing ------------------------------------------------------------------------


def test_holm_matches_hand_computed_values():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> running max
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_bh_matches_hand_computed_values():
    # sorted m p / j: 0.02, 0.02, 0.04, 0.04 -> running min from the top
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert benjamini_hochberg([0.01, 0.02, 0.9]) == pytest.approx([0.03, 0.03, 0.9])


def test_nan_p_values_are_not_part_of_the_family():
    h, q = holm([0.01, math.nan, 0.04]), benjamini_hochberg([0.01, math.nan, 0.04])
    assert h[0] == pytest.approx(0.02) and h[2] == pytest.approx(0.04) and math.isnan(h[1])
    assert q[0] == pytest.approx(0.02) and q[2] == pytest.approx(0.04) and math.isnan(q[1])


# --- draw odds ----------------------------------------------------------------------------------


def test_hypergeometric_tail_matches_hand_values():
    assert hypergeom_tail(10, 4, 2, 2) == pytest.approx(6 / 45)  # C(4,2) / C(10,2)
    assert hypergeom_tail(10, 4, 2, 1) == pytest.approx(1 - 15 / 45)  # 1 − C(6,2) / C(10,2)
    assert hypergeom_tail(10, 4, 2, 0) == 1.0


def test_distinct_groups_cdf_matches_brute_force():
    counts = [3, 2, 2, 1]
    items = [g for g, c in enumerate(counts) for _ in range(c)]
    draws = list(itertools.combinations(range(len(items)), 4))
    for d in range(1, 5):
        hits = sum(len({items[i] for i in combo}) <= d for combo in draws)
        assert distinct_groups_cdf(counts, 4, d) == pytest.approx(hits / len(draws))
    assert distinct_groups_cdf([2, 2], 2, 1) == pytest.approx(2 / 6)


# --- the study -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "quarter"),
    [(0.0, "new"), (0.124, "new"), (0.126, "first_quarter"), (0.5, "full"),
     (0.76, "last_quarter"), (0.9, "new")],
)  # fmt: skip
def test_moon_quarters_are_centred_on_the_principal_phases(phase, quarter):
    assert moon_quarter(phase) == quarter


def _daily(returns: np.ndarray, start: str = "2024-01-01", capital: float = 1000.0):
    equity = capital * np.cumprod(1.0 + returns)
    dates = pd.date_range(start, periods=len(returns), freq="D")
    return pd.DataFrame({
        "date": [str(d.date()) for d in dates],
        "pnl": np.diff(equity, prepend=capital),
        "equity_end": equity,
        "trades": np.ones(len(returns), dtype=np.int64),
    })  # fmt: skip


def test_study_days_joins_esof_to_the_daily_returns():
    days = study_days(_daily(np.array([0.01, -0.02, 0.0])), 1000.0)
    assert days["return"].to_numpy() == pytest.approx([0.01, -0.02, 0.0])
    assert list(days["weekday_name"]) == ["Mon", "Tue", "Wed"]  # 2024-01-01 was a Monday
    assert set(days["moon_quarter"]) <= {"new", "first_quarter", "full", "last_quarter"}
    # Mercury stationed direct early on 2024-01-02 UTC: retrograde only at the first noon
    assert list(days["mercury_retrograde"]) == [True, False, False]


def test_study_finds_a_planted_monday_effect_and_says_it_supports_the_brake():
    rng = np.random.default_rng(5)
    r = rng.normal(0.0, 0.005, 84)
    r[::7] -= 0.02  # 2024-01-01 is a Monday: every seventh day
    study = run_study(study_days(_daily(r), 1000.0), n_permutations=2000, seed=1)
    weekday = study["features"][0]
    assert weekday["feature"] == "weekday" and weekday["p_holm"] < 0.01
    assert study["supports_meta_brake"] and "supports the EsoF meta-brake" in study["verdict"]
    assert study["wipeout_claim"]["hits"] == 6  # the six worst days are Mondays


def test_study_of_noise_without_retrograde_days_is_strict_json_and_does_not_support():
    rng = np.random.default_rng(8)  # 2024-02-01 .. 03-31: Mercury direct throughout
    study = run_study(study_days(_daily(rng.normal(0, 0.01, 60), "2024-02-01"), 1000.0),
                      n_permutations=500, seed=2)  # fmt: skip
    mercury = study["features"][2]
    assert mercury["feature"] == "mercury_retrograde" and not mercury["testable"]
    assert mercury["p_value"] is None and mercury["p_holm"] is None
    assert study["family"] == ["weekday", "moon_quarter"]
    assert not study["supports_meta_brake"]
    json.dumps(study, allow_nan=False)  # strict JSON
    lines = report_lines(study)
    assert any(line.startswith("mercury_retrograde") and "untestable" in line for line in lines)
    assert any(line.startswith("verdict: does not support") for line in lines)


def test_wipeout_claim_odds_are_hand_computable():
    # 14 days from a Monday: Mon/Thu/Sun are 6 of them; the six worst are exactly those six
    dates = pd.date_range("2024-01-01", periods=14, freq="D")
    weekday = dates.weekday.to_numpy()
    r = np.where(np.isin(weekday, [0, 3, 6]), -0.05 - 0.001 * np.arange(14), 0.01)
    days = pd.DataFrame({"date": dates, "return": r, "weekday": weekday})
    claim = wipeout_claim(days)
    assert claim["days_on_weekdays"] == 6 and claim["hits"] == 6
    assert claim["p_value"] == claim["p_all_by_chance"] == pytest.approx(1 / math.comb(14, 6))
    assert [d["weekday"] for d in claim["worst_days"]] == ["Sun", "Thu", "Mon", "Sun", "Thu",
                                                           "Mon"]  # fmt: skip
    assert claim["distinct_weekdays"] == 3
    # any 3 of the 7 weekdays (each 2 days) holding all six: C(7,3) * 1 / C(14,6)
    assert claim["p_distinct_post_hoc"] == pytest.approx(35 / math.comb(14, 6))
