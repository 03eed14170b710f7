"""DSR and PBO against worked examples computed by hand from the papers' formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dolphin.backtest import stats


def test_dsr_reproduces_the_papers_numerical_example():
    # Bailey & López de Prado (2014), §4: N = 100 trials, annualised Sharpe variance 0.5,
    # best annualised Sharpe 2.5, T = 1250 daily returns, skew -3, kurtosis 10, 250 days a year.
    # By hand: Φ⁻¹(0.99) = 2.326348, Φ⁻¹(1 - 1/(100e)) = Φ⁻¹(0.996321) = 2.680210;
    # SR0 = sqrt(0.5/250) (0.422784 * 2.326348 + 0.577216 * 2.680210) = 0.044721 * 2.530640
    #     = 0.113172; SR = 2.5 / sqrt(250) = 0.158114;
    # denominator = 1 + 3 * 0.158114 + 9/4 * 0.158114^2 = 1.530592;
    # z = (0.158114 - 0.113172) * sqrt(1249) / sqrt(1.530592) = 1.283816; Φ(z) = 0.9004.
    sr0 = stats.expected_max_sharpe(100, 0.5 / 250)
    assert sr0 == pytest.approx(0.113172, abs=1e-6)
    dsr = stats.deflated_sharpe(2.5 / math.sqrt(250), 1250, -3.0, 10.0, 100, 0.5 / 250)
    assert dsr == pytest.approx(0.9004, abs=1e-4)


def test_psr_with_zero_benchmark_and_normal_returns():
    # SR 0.1, T 101, skew 0, kurtosis 3: z = 0.1 * 10 / sqrt(1 + 0.5 * 0.01) = 0.997509
    assert stats.probabilistic_sharpe(0.1, 0.0, 101, 0.0, 3.0) == pytest.approx(
        0.840741, abs=1e-6
    )


def test_expected_max_sharpe_matches_simulated_maxima():
    rng = np.random.default_rng(0)
    sim = rng.standard_normal((4000, 100)).max(axis=1).mean()
    # the paper's approximation is within ~1% of E[max of 100 N(0,1)] = 2.5076
    assert stats.expected_max_sharpe(100, 1.0) == pytest.approx(sim, rel=0.02)
    assert stats.expected_max_sharpe(1, 1.0) == 0.0


def test_dsr_falls_as_trials_grow():
    a = stats.deflated_sharpe(0.15, 500, 0.0, 3.0, 10, 0.002)
    b = stats.deflated_sharpe(0.15, 500, 0.0, 3.0, 10_000, 0.002)
    assert 0.0 < b < a < 1.0


def test_pbo_hand_worked_two_blocks():
    # 4 days, 3 strategies, S = 2 blocks of 2 days -> 2 splits.
    r = np.array(
        [
            [0.02, 0.01, 0.00],
            [0.04, 0.01, 0.01],
            [-0.01, 0.02, 0.01],
            [-0.03, 0.03, 0.02],
        ]
    )
    # Split 1: train block 0 -> Sharpes: A = 0.03/0.01414 = 2.12, B = 0.01/0 -> 0, C = 0.707;
    # best A; test block 1: A = -0.02/0.01414 = -1.41, B = 0.025/0.00707 = 3.54, C = 0.015/0.00707
    # = 2.12 -> A ranks 1 of 3, ω = 1/4, λ = ln(1/3) < 0.
    # Split 2: train block 1 -> best B (3.54); test block 0: A 2.12, B 0, C 0.707 -> B ranks 1,
    # ω = 1/4, λ < 0.  PBO = 2/2 = 1.
    res = stats.pbo_cscv(r, n_blocks=2)
    assert res.n_splits == 2
    np.testing.assert_allclose(res.logits, [math.log(1 / 3), math.log(1 / 3)])
    assert res.pbo == 1.0


def test_pbo_zero_when_one_strategy_dominates_everywhere():
    rng = np.random.default_rng(1)
    r = rng.normal(0.0, 0.01, size=(80, 20))
    r[:, 7] += 0.05  # dominates every block in and out of sample
    res = stats.pbo_cscv(r, n_blocks=8)
    assert res.n_splits == 70
    assert res.pbo == 0.0


def test_pbo_near_half_for_pure_noise():
    rng = np.random.default_rng(2)
    r = rng.normal(0.0, 0.01, size=(400, 200))
    assert 0.25 < stats.pbo_cscv(r, n_blocks=8).pbo < 0.75


def test_pbo_rejects_odd_blocks_and_tiny_samples():
    with pytest.raises(ValueError, match="even"):
        stats.pbo_cscv(np.zeros((10, 3)), n_blocks=3)
    with pytest.raises(ValueError, match="rows per block"):
        stats.pbo_cscv(np.zeros((3, 3)), n_blocks=2)
    assert stats.pbo_blocks_for(43) == 8
    assert stats.pbo_blocks_for(5) == 2


def test_sweep_return_moments_match_scipy():
    from scipy import stats as sps

    from dolphin.backtest.sweep import return_moments

    r = np.random.default_rng(3).standard_t(4, size=43) * 0.01
    m = return_moments(r)
    assert m["skew"] == pytest.approx(sps.skew(r), rel=1e-12)
    assert m["kurtosis"] == pytest.approx(sps.kurtosis(r, fisher=False), rel=1e-12)
    assert m["sr_daily"] == pytest.approx(r.mean() / r.std(ddof=1), rel=1e-12)
    assert return_moments(np.zeros(10))["sr_daily"] is None


def test_pbo_rank_of_the_best_equals_scipy_average_rank():
    from scipy.stats import rankdata

    rng = np.random.default_rng(11)
    for _ in range(100):
        x = np.round(rng.normal(size=40), 1)  # ties on purpose
        i = int(rng.integers(40))
        assert stats._average_rank(x, i) == rankdata(x)[i]
    x = np.array([0.1, np.nan, 0.3])
    assert np.isnan(stats._average_rank(x, 1)) == np.isnan(rankdata(x)[1])
