"""Hand-worked values of the §4–§8 layer kernels, and kernel-vs-reference checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dolphin.alpha import layout as lay
from dolphin.alpha import nb
from dolphin.alpha.step_nb import dc_check_nb

THR, EXT = -0.02, -0.05


# ---------------------------------------------------------------- §4.1 confidence
def test_confidence_at_minus_0035_is_070():
    # ratio = (-0.02 + 0.035) / 0.03 = 0.5 -> 0.50 + 0.5 * 0.40 = 0.70
    assert nb.confidence_nb(-0.035, THR, EXT) == pytest.approx(0.70, abs=1e-12)


def test_confidence_clamps_to_050_and_090():
    assert nb.confidence_nb(-0.02, THR, EXT) == pytest.approx(0.50)
    assert nb.confidence_nb(-0.01, THR, EXT) == pytest.approx(0.50)
    assert nb.confidence_nb(-0.05, THR, EXT) == pytest.approx(0.90)
    assert nb.confidence_nb(-0.20, THR, EXT) == pytest.approx(0.90)


# ---------------------------------------------------------------- §6.1 / §6.2 sizing
def test_strength_is_one_at_or_beyond_extreme_and_ratio_inside():
    assert nb.strength_score_nb(-0.05, THR, EXT) == 1.0
    assert nb.strength_score_nb(-0.09, THR, EXT) == 1.0
    assert nb.strength_score_nb(-0.026, THR, EXT) == pytest.approx(0.2)
    assert nb.strength_score_nb(-0.01, THR, EXT) == 0.0


def test_leverage_at_strength_half_is_cubic():
    # 0.5 + 0.5**3 * 4.5 = 0.5 + 0.125 * 4.5 = 1.0625
    assert nb.dynamic_leverage_nb(0.5, 0.5, 5.0, 3.0) == pytest.approx(0.5 + 0.125 * 4.5)
    assert nb.dynamic_leverage_nb(1.0, 0.5, 5.0, 3.0) == pytest.approx(5.0)
    assert nb.dynamic_leverage_nb(0.0, 0.5, 5.0, 3.0) == pytest.approx(0.5)


# ---------------------------------------------------------------- §6.3 buckets
@pytest.mark.parametrize(
    ("vel_div", "bucket"),
    [
        (-0.075, 0),  # extreme * 1.5, inclusive
        (-0.0749, 1),
        (-0.05, 1),  # extreme, inclusive
        (-0.0499, 2),
        (-0.035, 2),  # (thr + ext) / 2, inclusive
        (-0.0349, 3),
        (-0.021, 3),
    ],
)
def test_bucket_edges(vel_div, bucket):
    assert nb.signal_bucket_nb(vel_div, THR, EXT) == bucket


# ---------------------------------------------------------------- §6.4 alpha layers
@pytest.mark.parametrize(
    ("wins", "trades", "boost"),
    [(7, 10, 1.3), (6, 10, 1.1), (5.8, 10, 1.1), (5, 10, 1.0), (4.4, 10, 0.85), (3, 10, 0.7)],
)
def test_bucket_boost_thresholds(wins, trades, boost):
    assert nb.bucket_boost_nb(wins, trades, 5) == boost


def test_bucket_boost_is_neutral_below_min_trades():
    assert nb.bucket_boost_nb(4, 4, 5) == 1.0


@pytest.mark.parametrize(
    ("losses", "mult"), [(5, 0.5), (4, 0.5), (3, 0.7), (2, 1.0), (1, 1.1), (0, 1.1)]
)
def test_streak_multiplier(losses, mult):
    assert nb.streak_mult_nb(losses, 5) == mult


def test_streak_multiplier_neutral_before_five_trades():
    assert nb.streak_mult_nb(0, 4) == 1.0


@pytest.mark.parametrize(("trend", "mult"), [(-0.02, 1.3), (-0.01, 1.0), (0.01, 1.0), (0.02, 0.7)])
def test_trend_multiplier(trend, mult):
    assert nb.trend_mult_nb(trend) == mult


def test_effective_fraction_hand_worked():
    # strength 0.5, not extreme: base = 0.02 + 0.5 * 0.18 = 0.11; conf_mult = 0.55 / 0.95
    f = nb.effective_fraction_nb(0.5, False, 0.20, 1.0, 1.0, 1.0)
    assert f == pytest.approx(0.11 * 0.55 / 0.95)
    # extreme: base 0.20 * (0.70 / 0.95) * 2 = 0.2947 -> clamped to 0.20
    assert nb.effective_fraction_nb(1.0, True, 0.20, 1.0, 1.0, 1.0) == 0.20
    # tiny strength and 0.5 streak: 0.02 * 0.579 * 0.5 < 0.02 -> floor 0.02
    assert nb.effective_fraction_nb(0.0, False, 0.20, 1.0, 1.0, 0.5) == 0.02


# ---------------------------------------------------------------- §6.5 ACB + ceiling
def test_regime_size_mult_with_and_without_beta():
    # vel_div -0.035: ratio 0.5, cubic 0.125; 1.347 * (1 + 0.8 * 0.125) * 1.0
    assert nb.regime_size_mult_nb(-0.035, THR, EXT, 3.0, 1.347, 0.8, 1.0) == pytest.approx(
        1.347 * 1.1
    )
    assert nb.regime_size_mult_nb(-0.035, THR, EXT, 3.0, 1.347, 0.0, 0.5) == pytest.approx(
        1.347 * 0.5
    )


def test_final_leverage_respects_abs_cap_stalker_cap_and_floor():
    # raw 5 * 1.5 = 7.5; ceiling min(5 * 1.5, 6) = 6
    assert nb.final_leverage_nb(5.0, 1.0, 1.5, 1.0, 0.5, 5.0, 6.0, False, 2.0) == 6.0
    assert nb.final_leverage_nb(5.0, 1.0, 1.5, 1.0, 0.5, 5.0, 6.0, True, 2.0) == 2.0
    # raw 1.0625 * 1.1 = 1.16875, under the ceiling 5.5
    assert nb.final_leverage_nb(1.0625, 1.0, 1.1, 1.0, 0.5, 5.0, 6.0, False, 2.0) == (
        pytest.approx(1.16875)
    )
    # raw 0.5 * 0.5 = 0.25 -> floor 0.5
    assert nb.final_leverage_nb(0.5, 1.0, 0.5, 1.0, 0.5, 5.0, 6.0, False, 2.0) == 0.5


# ---------------------------------------------------------------- §4.2 DC
def _dc_on(prices, direction):
    """Run the engine's §4.2 check (lookback 7, 0.75 bps) on one asset's price history."""
    hist, hist_n = lay.new_histories(1)
    hist[0, : len(prices)] = prices
    hist_n[0] = len(prices)
    state = lay.new_state(1.0)
    state[lay.S_DIRECTION] = direction
    params = np.zeros(lay.N_PARAMS)
    params[lay.P_DC_LOOKBACK] = 7
    params[lay.P_DC_MIN_BPS] = 0.75
    return dc_check_nb(state, hist, hist_n, params, 0)


def _dc(p0, p1, direction=-1):
    return _dc_on(np.array([p0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, p1]), direction)


def test_dc_short_confirm_contradict_neutral():
    assert _dc(100.0, 99.99) == nb.DC_CONFIRM  # -1.0 bps
    assert _dc(100.0, 100.01) == nb.DC_CONTRADICT  # +1.0 bps
    assert _dc(100.0, 100.005) == nb.DC_NEUTRAL  # +0.5 bps
    assert _dc(100.0, 99.9925) == nb.DC_NEUTRAL  # exactly -0.75 bps: not beyond


def test_dc_long_mirrors_short():
    assert _dc(100.0, 100.01, direction=1) == nb.DC_CONFIRM
    assert _dc(100.0, 99.99, direction=1) == nb.DC_CONTRADICT


def test_dc_neutral_with_short_history():
    assert _dc_on(np.array([100.0, 90.0]), -1) == nb.DC_NEUTRAL


# ---------------------------------------------------------------- §4.3 OB sub-2
def test_ob_confidence_adjustments():
    assert nb.ob_confidence_adj_nb(0.2, 1.0) == pytest.approx(1.10)  # 1 + min(.15, .1)
    assert nb.ob_confidence_adj_nb(0.8, 1.0) == pytest.approx(1.15)
    assert nb.ob_confidence_adj_nb(-0.2, 0.7) == -1.0  # hard skip
    assert nb.ob_confidence_adj_nb(-0.2, 0.5) == pytest.approx(0.96)  # 1 - .2 * .5 * .4
    assert nb.ob_confidence_adj_nb(-0.12, 1.0) == pytest.approx(0.952)
    assert nb.ob_confidence_adj_nb(0.05, 1.0) == 1.0


# ---------------------------------------------------------------- §8 fees, §7 exits
def test_blended_entry_fee_is_314_bps_hundredths():
    assert nb.blended_fee_rate_nb(0.62) == pytest.approx(0.000314)
    assert nb.blended_fee_rate_nb(0.50) == pytest.approx(0.00035)


@pytest.mark.parametrize(
    ("pnl", "held", "hib", "sub", "reason"),
    [
        (0.0095, 3, False, False, 0),  # TP at exactly 95 bps
        (0.0094, 3, False, False, -1),
        (-1.0, 3, False, False, 1),  # stop at -100 %
        (0.0, 120, False, False, 2),  # max hold at 120 bars
        (0.0, 119, False, False, -1),
        (0.0, 5, True, False, 3),
        (0.0, 5, False, True, 4),
        (0.01, 500, True, True, 0),  # TP outranks every other rule
    ],
)
def test_exit_reason_priority(pnl, held, hib, sub, reason):
    assert nb.exit_reason_nb(pnl, held, 0.0095, 1.0, 120, hib, sub) == reason


def test_exit_slippage_stop_5bps_other_2bps():
    assert nb.exit_slippage_nb(1) == 0.0005
    assert nb.exit_slippage_nb(0) == 0.0002
    assert nb.exit_slippage_nb(2) == 0.0002


def test_dynamic_exit_params_cascade_stress_calm_and_withdrawal():
    assert nb.dynamic_exit_params_nb(0.0095, 1.0, 120, 0.0, 2, 0, 0.0, 0.0) == (
        pytest.approx(0.0133),
        1.0,
        60,
    )
    tp, sl, mh = nb.dynamic_exit_params_nb(0.0095, 1.0, 120, 0.001, 0, 1, -0.2, 0.0)
    assert (tp, sl, mh) == (pytest.approx(0.0057), 0.10, 48)
    assert nb.dynamic_exit_params_nb(0.0095, 1.0, 120, 0.0, 0, -1, 0.2, 0.0)[2] == 180
    tp, _, mh = nb.dynamic_exit_params_nb(0.0095, 1.0, 120, 0.001, 0, 0, 0.0, -0.3)
    assert (tp, mh) == (pytest.approx(0.007125), 48)


# ---------------------------------------------------------------- RNG
def test_uniform_is_deterministic_in_range_and_roughly_uniform():
    u = np.array([nb.uniform_nb(42, i) for i in range(20000)])
    assert np.all((u >= 0) & (u < 1))
    assert abs(u.mean() - 0.5) < 0.01
    assert abs((u < 0.4).mean() - 0.4) < 0.015
    assert nb.uniform_nb(42, 7) == nb.uniform_nb(42, 7)
    assert nb.uniform_nb(42, 7) != nb.uniform_nb(43, 7)


# ---------------------------------------------------------------- §5 IRP vs a slow reference
def irp_reference(seg, direction):
    """Obviously-correct §5.2 IRP (floored MFE, latency = returns consumed)."""
    r = np.diff(np.asarray(seg, dtype=float)) * direction
    cum = np.cumsum(r)
    mfe = max(float(cum.max()), 0.0)
    mae = abs(min(float(cum.min()), 0.0))
    latency = 50
    if mfe > 0:
        latency = int(np.argmax(cum >= 0.1 * mfe)) + 1
    return mfe / (mae + 1e-6), float((r > 0).mean()), float(r.var()), latency, mfe, mae


def test_irp_hand_worked_segment():
    seg = np.array([100.0, 101.0, 100.5, 102.0, 101.0])  # short: returns -1, .5, -1.5, 1
    eff, align, noise, lat, mfe, mae = nb.compute_irp_nb(seg, -1)
    # cumulative -1, -.5, -2, -1 -> mfe 0 (floored), mae 2, latency default 50
    assert (mfe, mae, lat) == (0.0, 2.0, 50)
    assert align == 0.5
    assert noise == pytest.approx(np.var([-1.0, 0.5, -1.5, 1.0]))
    assert eff == 0.0
    eff, align, noise, lat, mfe, mae = nb.compute_irp_nb(seg, 1)
    # cumulative 1, .5, 2, 1 -> mfe 2, mae 0, first cum >= 0.2 at return 1
    assert (mfe, mae, lat, align) == (2.0, 0.0, 1, 0.5)
    assert eff == pytest.approx(2.0 / 1e-6)


def test_ars_formula():
    assert nb.compute_ars_nb(1.0, 0.5, 0.001) == pytest.approx(0.5 * math.log(2.0) + 0.175 - 0.15)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0.5, 2.0), min_size=5, max_size=60),
    st.sampled_from([-1, 1]),
)
def test_irp_matches_reference(values, direction):
    seg = np.array(values)
    got = nb.compute_irp_nb(seg, direction)
    want = irp_reference(seg, direction)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from([0.5, 0.99, 1.0, 1.0, 1.01, 1.7]) | st.floats(0.5, 2.0),
             min_size=3, max_size=60),
    st.sampled_from([-1, 1]),
)
def test_one_pass_irp_equals_two_direction_calls_exactly(values, direction):
    # the one-pass kernel the ranking uses must give, bit for bit, what scoring each direction
    # on its own gives (repeated prices included: zero returns count for neither direction)
    seg = np.asarray(values) / values[0] * 100.0
    direct = nb.compute_irp_nb(seg, direction)[:4]
    inverse = nb.compute_irp_nb(seg, -direction)[:4]
    assert nb.irp_both_nb(seg, direction) == direct + inverse


def _hist_from(series):
    """Ring buffers holding ``series`` (every price real, the last one on the current bar)."""
    from dolphin.alpha.layout import H_LAST_REAL, new_histories

    series = [np.asarray(s, dtype=float) for s in series]
    hist, hist_n = new_histories(len(series))
    for a, s in enumerate(series):
        for p in s:
            hist[a, hist_n[a] % 64] = p
            hist_n[a] += 1
        hist[a, H_LAST_REAL] = hist_n[a]
    return hist, hist_n


def test_rank_and_select_prefer_the_cleanest_falling_asset_for_short():
    t = np.arange(70)
    falling = 100.0 - 0.05 * t + 0.02 * (t % 2)  # mostly down, tiny wiggle
    rising = 100.0 + 0.05 * t
    flat_noisy = 100.0 + np.where(t % 2 == 0, 1.0, -1.0)
    short_hist = np.full(30, 50.0)  # too short for the window: never ranked
    hist, hist_n = _hist_from([rising, falling, flat_noisy, short_hist])
    dq = np.zeros(4)
    order, n_valid, _ars, action, align = nb.rank_assets_irp_nb(hist, hist_n, 50, -1, dq, False)
    ranked = list(order[:n_valid])
    assert 3 not in ranked
    # the rising asset scores well only as an inverse (LONG) pick and fails the direction gate
    assert action[0] == 1 and action[1] == -1
    assert ranked[0] in (0, 1)
    picked = nb.select_asset_nb(order, n_valid, action, align, 0.45, -1, dq, False)
    assert picked == 1


def _insertion_order(ars_by_asset):
    """The ranking's order as an insertion sort builds it (descending; an element moves past
    strictly lower scores only, so ties keep the lower index first and a NaN stops the moves)."""
    order = []
    for a, x in ars_by_asset:
        j = len(order)
        while j > 0 and order[j - 1][1] < x:
            j -= 1
        order.insert(j, (a, x))
    return [a for a, _ in order]


@pytest.mark.parametrize("with_nan", [False, True])
def test_rank_order_is_descending_stable_with_ties_and_a_nan(with_nan):
    rng = np.random.default_rng(7)
    t = np.arange(60)
    series = [100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.004, 60))) for _ in range(30)]
    series += [series[3].copy(), series[3].copy(), series[11].copy()]  # exact ties
    series.append(100.0 - 0.05 * t)
    if with_nan:
        series[5] = series[5].copy()
        series[5][-20] = np.inf  # a segment holding inf scores NaN
    hist, hist_n = _hist_from(series)
    order, n_valid, ars, _action, _align = nb.rank_assets_irp_nb(
        hist, hist_n, 50, -1, np.zeros(len(series)), False
    )
    scored = [(a, float(ars[a])) for a in range(len(series)) if ars[a] != -np.inf]
    assert with_nan == any(np.isnan(x) for _, x in scored)
    assert ars[3] == ars[30] == ars[31] != -np.inf  # the ties are scored
    assert n_valid == len(scored)
    assert list(order[:n_valid]) == _insertion_order(scored)


def test_rank_uses_ring_buffer_order_after_wraparound():
    # 130 prices through a 64-slot ring: only the last 50 (steadily falling) must count
    s = np.concatenate([np.linspace(100, 200, 80), np.linspace(200, 150, 50)])
    hist, hist_n = _hist_from([s])
    out = np.empty(50)
    nb.segment_pct_nb(hist, hist_n, 0, 50, out)
    np.testing.assert_allclose(out, s[-50:] / s[-50] * 100.0)


def test_select_returns_minus_one_when_no_asset_passes():
    order = np.array([0, 1])
    action = np.array([1, 1])
    align = np.array([0.9, 0.9])
    assert nb.select_asset_nb(order, 2, action, align, 0.45, -1, np.zeros(2), False) == -1


def test_ob_depth_gate_skips_thin_books():
    order = np.array([0, 1])
    action = np.array([-1, -1])
    align = np.array([0.9, 0.9])
    dq = np.array([0.1, 0.9])
    assert nb.select_asset_nb(order, 2, action, align, 0.45, -1, dq, True) == 1
    assert nb.ob_ars_adjust_nb(1.0, 1.6) == pytest.approx(1.1)
    assert nb.ob_ars_adjust_nb(-1.0, 0.3) == pytest.approx(-1.1)


def _down_then_up():
    """100 -> 99 over 25 returns, then 99 -> 102 over 24 (50 prices, the IRP window).

    Worked by hand in percent of the first price: SHORT (direct) cum rises to +1 then ends at
    -2: MFE 1, MAE 2, efficiency 0.5, alignment 25/49, latency 3 (0.04 a bar reaches 0.1).
    LONG (inverse): MFE 2, MAE 1, efficiency 2, alignment 24/49; noise is the same both ways.
    ARS: SHORT 0.5 ln 1.5 + 0.35 * 25/49 = 0.381, LONG 0.5 ln 3 + 0.35 * 24/49 = 0.721 (less the
    same noise term). LONG wins, but its latency is 35 (from -1 at 0.125 a bar to +0.2 takes 10
    bars after bar 25): > 20, gated.
    """
    return np.r_[100.0 - 0.04 * np.arange(26), 99.0 + 0.125 * np.arange(1, 25)]


def test_irp_takes_the_higher_ars_direction_before_the_gates():
    hist, hist_n = _hist_from([_down_then_up()])
    dq = np.zeros(1)
    _order, n_valid, _ars, action, _align = nb.rank_assets_irp_nb(hist, hist_n, 50, -1, dq, False)
    # Bible §5.4: the better direction (LONG) is chosen, then gated: the asset is not ranked.
    # Filtering both directions first would have kept the SHORT survivor instead.
    assert n_valid == 0
    assert action[0] == 1


def test_irp_keeps_the_higher_ars_direction_when_it_passes():
    falling = 100.0 - 0.05 * np.arange(50)  # SHORT: efficiency huge, alignment 1, latency 1
    hist, hist_n = _hist_from([falling])
    _order, n_valid, _ars, action, _align = nb.rank_assets_irp_nb(
        hist, hist_n, 50, 1, np.zeros(1), False  # asked for LONG: the inverse (SHORT) wins
    )
    assert n_valid == 1 and action[0] == -1


def test_irp_skips_an_asset_without_a_real_close_on_this_bar():
    from dolphin.alpha.layout import H_LAST_REAL

    hist, hist_n = _hist_from([100.0 - 0.05 * np.arange(50)])
    hist[0, H_LAST_REAL] = hist_n[0] - 1  # the last push was a repeat, not a real close
    _o, n_valid, *_ = nb.rank_assets_irp_nb(hist, hist_n, 50, -1, np.zeros(1), False)
    assert n_valid == 0
