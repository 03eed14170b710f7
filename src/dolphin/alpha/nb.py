"""Numba kernels of the alpha layers (Bible §4–§8). Scalars and arrays in, scalars out.

Direction convention: ``direction = -1`` is SHORT (the champion), ``+1`` is LONG. The LONG path
mirrors the SHORT one in "signal space": ``x = -direction * vel_div`` is compared with the
(negative) SHORT threshold/extreme, and ``-long_threshold``/``-long_extreme`` for LONG, so one set
of formulas serves both (Bible §4.1 gives only the SHORT formulas; the mirror is our decision).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from dolphin.alpha.layout import H_LAST_REAL, HIST_LEN
from dolphin.core.enums import (
    BUCKET_EXTREME,
    BUCKET_MODERATE,
    BUCKET_STRONG,
    BUCKET_WEAK,
    EXIT_FIXED_TP,
    EXIT_HIBERNATE_HALT,
    EXIT_MAX_HOLD,
    EXIT_STOP_LOSS,
    EXIT_SUBDAY_ACB,
)

# §4.2 direction-confirmation results.
DC_NEUTRAL = 0
DC_CONFIRM = 1
DC_CONTRADICT = 2

# §8.1 SmartPlacer fee rates and §7.4 exit slippage (constants of the Bible, not tuned).
MAKER_FEE = 0.0002
TAKER_FEE = 0.0005
SLIP_STOP = 0.0005
SLIP_OTHER = 0.0002
EDGE_EPS = 1e-12


# ---------------------------------------------------------------- §4.1 signal and confidence
@njit(cache=True)
def signal_ratio_nb(x, threshold, extreme):
    """Return clamp((threshold - x) / (threshold - extreme), 0, 1) (Bible §4.1, §6.1)."""
    r = (threshold - x) / (threshold - extreme)
    if r < 0.0:
        return 0.0
    if r > 1.0:
        return 1.0
    return r


@njit(cache=True)
def confidence_nb(x, threshold, extreme):
    """Return the §4.1 signal confidence 0.50 + ratio * 0.40, in [0.50, 0.90]."""
    return 0.50 + signal_ratio_nb(x, threshold, extreme) * 0.40


@njit(cache=True)
def strength_score_nb(x, threshold, extreme):
    """Return the §6.1 strength score: 1 at or beyond the extreme, else the clamped ratio."""
    if x <= extreme:
        return 1.0
    return signal_ratio_nb(x, threshold, extreme)


@njit(cache=True)
def dynamic_leverage_nb(strength, min_leverage, max_leverage, convexity):
    """Return min_lev + strength**convexity * (max_lev - min_lev) (Bible §6.2, cubic convex)."""
    return min_leverage + strength**convexity * (max_leverage - min_leverage)


@njit(cache=True)
def signal_bucket_nb(x, threshold, extreme):
    """Return the §6.3 ``SignalBucket`` code: 0 extreme, 1 strong, 2 moderate, 3 weak.

    Edges are inclusive; a 1e-12 tolerance keeps them so under float rounding
    (``-0.05 * 1.5`` is ``-0.07500000000000001``, which would push ``-0.075`` out of "extreme").
    """
    if x <= extreme * 1.5 + EDGE_EPS:
        return BUCKET_EXTREME
    if x <= extreme + EDGE_EPS:
        return BUCKET_STRONG
    if x <= (threshold + extreme) / 2.0 + EDGE_EPS:
        return BUCKET_MODERATE
    return BUCKET_WEAK


# ---------------------------------------------------------------- §4.2 direction confirmation
@njit(cache=True)
def dc_move_nb(p0, p1, min_magnitude_bps, direction):
    """Classify the move from ``p0`` to ``p1`` (``lookback`` bars apart) against ``direction``.

    Bible §4.2 gives the SHORT rule (a falling price confirms); for LONG a rising price confirms.
    ``step_nb.dc_check_nb`` reads ``p0``, ``p1`` from the ring buffer (NEUTRAL with fewer than
    ``lookback + 1`` prices).
    """
    if not p0 > 0.0:
        return DC_NEUTRAL
    signed_bps = (p1 - p0) / p0 * 10000.0 * direction
    if signed_bps > min_magnitude_bps:
        return DC_CONFIRM
    if signed_bps < -min_magnitude_bps:
        return DC_CONTRADICT
    return DC_NEUTRAL


# ---------------------------------------------------------------- §6.4 alpha layers
@njit(cache=True)
def bucket_boost_nb(wins, trades, min_trades):
    """Return the §6.4 bucket boost from a bucket's win rate; 1.0 below ``min_trades``."""
    if trades < min_trades or trades <= 0:
        return 1.0
    wr = wins / trades
    if wr > 0.60:
        return 1.3
    if wr > 0.55:
        return 1.1
    if wr < 0.40:
        return 0.7
    if wr < 0.45:
        return 0.85
    return 1.0


@njit(cache=True)
def streak_mult_nb(losses_in_last_5, n_recent):
    """Return the §6.4 streak multiplier; 1.0 until five trades have closed."""
    if n_recent < 5:
        return 1.0
    if losses_in_last_5 >= 4:
        return 0.5
    if losses_in_last_5 >= 3:
        return 0.7
    if losses_in_last_5 <= 1:
        return 1.1
    return 1.0


@njit(cache=True)
def trend_mult_nb(x_trend):
    """Return the §6.4 trend multiplier of the signal-space vel_div trend (last − 10th last)."""
    if x_trend < -0.01:
        return 1.3
    if x_trend > 0.01:
        return 0.7
    return 1.0


@njit(cache=True)
def effective_fraction_nb(strength, is_extreme, base_fraction, trend_m, bucket_m, streak_m):
    """Return the clamped §6.4 capital fraction.

    The sizer's confidence is 0.70 / 0.55 (extreme / not), as §6.4 states; the §4.1 confidence is
    a different number and does not enter the size.
    """
    confidence = 0.70 if is_extreme else 0.55
    conf_mult = confidence / 0.95
    extreme_boost = 2.0 if is_extreme else 1.0
    base_frac = 0.02 + strength * (base_fraction - 0.02)
    f = base_frac * conf_mult * extreme_boost * trend_m * bucket_m * streak_m
    return min(max(f, 0.02), base_fraction)


@njit(cache=True)
def regime_size_mult_nb(x, threshold, extreme, convexity, base_boost, beta, mc_scale):
    """Return the §6.5 / §10.4 ACB + MC size multiplier for this bar's signal."""
    if beta > 0.0:
        cubic = signal_ratio_nb(x, threshold, extreme) ** convexity
        return base_boost * (1.0 + beta * cubic) * mc_scale
    return base_boost * mc_scale


@njit(cache=True)
def final_leverage_nb(
    size_leverage, dc_mult, rsm, market_mult, min_lev, max_lev, abs_max_lev, stalker, stalker_cap
):
    """Return the §6.5 leverage after the ACB ceiling, the 6x cap and the STALKER 2x cap."""
    ceiling = min(max_lev * rsm * market_mult, abs_max_lev)
    if stalker:
        ceiling = min(ceiling, stalker_cap)
    raw = size_leverage * dc_mult * rsm * market_mult
    return max(min_lev, min(raw, ceiling))


# ---------------------------------------------------------------- §4.3 OB sub-2
@njit(cache=True)
def ob_confidence_adj_nb(eff_imb, persistence):
    """Return the §4.3 confidence multiplier, or -1.0 for the hard skip."""
    if eff_imb > 0.10:
        return 1.0 + min(0.15, eff_imb * persistence * 0.5)
    if eff_imb < -0.15 and persistence > 0.60:
        return -1.0
    if eff_imb < -0.10:
        return max(0.85, 1.0 - abs(eff_imb) * persistence * 0.4)
    return 1.0


# ---------------------------------------------------------------- §8 fees
@njit(cache=True)
def blended_fee_rate_nb(maker_rate):
    """Return the §8.1 SmartPlacer blended fee rate (0.0002 maker, 0.0005 taker)."""
    return MAKER_FEE * maker_rate + TAKER_FEE * (1.0 - maker_rate)


# ---------------------------------------------------------------- §7 exits
@njit(cache=True)
def dynamic_exit_params_nb(
    tp, sl, max_hold, pnl_pct, cascade_count, regime_signal, eff_imb, withdrawal_velocity
):
    """Return (tp, sl, max_hold) after the §7.2 OB adjustments."""
    d_tp = tp
    d_sl = sl
    d_mh = max_hold
    stressed = False
    if cascade_count > 0:
        d_tp *= 1.40
        d_mh = int(max_hold * 0.50)
        stressed = True
    elif regime_signal == 1:
        stressed = True
        d_sl = 0.10
        if pnl_pct > 0.0:
            d_tp *= 0.60
        if eff_imb < -0.10:
            d_mh = int(max_hold * 0.40)
    elif regime_signal == -1 and eff_imb > 0.15:
        d_mh = int(max_hold * 1.50)
    if withdrawal_velocity < -0.20 and not stressed:
        d_mh = min(d_mh, int(max_hold * 0.40))
        if pnl_pct > 0.0:
            d_tp *= 0.75
    return d_tp, d_sl, d_mh


@njit(cache=True)
def exit_reason_nb(pnl_pct, bars_held, tp, sl, max_hold, hibernate, subday):
    """Return the exit reason code in the §7.1 priority order, or -1 to hold.

    Order: FIXED_TP (0), STOP_LOSS (1), HIBERNATE_HALT (3), SUBDAY_ACB_NORMALIZATION (4),
    MAX_HOLD (2). Forced exits come after TP/stop so a bar that also hits a price rule keeps the
    price rule's (cheaper, truer) label.
    """
    if pnl_pct >= tp:
        return EXIT_FIXED_TP
    if pnl_pct <= -sl:
        return EXIT_STOP_LOSS
    if hibernate:
        return EXIT_HIBERNATE_HALT
    if subday:
        return EXIT_SUBDAY_ACB
    if bars_held >= max_hold:
        return EXIT_MAX_HOLD
    return -1


@njit(cache=True)
def exit_slippage_nb(reason):
    """Return the §7.4 exit slippage: 5 bps for a stop (market order), 2 bps otherwise."""
    return SLIP_STOP if reason == EXIT_STOP_LOSS else SLIP_OTHER


# ---------------------------------------------------------------- RNG (seeded, counter-based)
@njit(cache=True)
def uniform_nb(seed, counter):
    """Return a uniform in [0, 1) from (seed, counter) with SplitMix64.

    Counter-based so the whole RNG state is one integer in the engine state: the sweep, the
    replay and the live path draw identical numbers for identical histories.
    """
    z = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(counter + 1) * np.uint64(
        0xBF58476D1CE4E5B9
    )
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return float(z >> np.uint64(11)) * (1.0 / 9007199254740992.0)


# ---------------------------------------------------------------- §5 IRP asset selection
@njit(cache=True)
def irp_pass_nb(seg, direction):
    """One pass over a price segment for ``direction``: ``(mfe, mae, rising, falling, noise,
    latency, inverse latency)`` (Bible §5.2; ``compute_irp_nb`` says what each is).

    ``rising``/``falling`` count the returns above/below zero in ``direction``; the inverse
    latency is the latency of ``-direction``. The inverse direction's returns are these negated,
    and IEEE negation is exact: its cumulative sums are these negated, so its MFE is this MAE
    and its MAE this MFE, its noise is this noise (same squares, the mean negated) and its
    alignment counts the falling returns; only its latency needs its own short scan, which
    redoes the same additions.
    """
    n_ret = seg.shape[0] - 1
    c = 0.0
    mx = 0.0
    mn = 0.0
    pos = 0
    neg = 0
    s2 = 0.0
    for i in range(n_ret):
        r = (seg[i + 1] - seg[i]) * direction
        c += r
        mx = max(mx, c)
        mn = min(mn, c)
        pos += r > 0.0  # branch-free counts: a return's sign is a coin flip to the CPU
        neg += r < 0.0
        s2 += r * r
    mean = c / n_ret  # the sum of the returns is the last cumulative sum, same additions
    noise = max(s2 / n_ret - mean * mean, 0.0)
    mfe, mae = mx, abs(mn)
    lat = 50
    if mfe > 0.0:
        c = 0.0
        for i in range(n_ret):
            c += (seg[i + 1] - seg[i]) * direction
            if c >= 0.1 * mfe:
                lat = i + 1
                break
    lat_inv = 50
    if mae > 0.0:
        c = 0.0
        for i in range(n_ret):
            c += (seg[i + 1] - seg[i]) * direction
            if -c >= 0.1 * mae:
                lat_inv = i + 1
                break
    return mfe, mae, pos, neg, noise, lat, lat_inv


@njit(cache=True)
def compute_irp_nb(seg, direction):
    """Return (efficiency, alignment, noise, latency, mfe, mae) of a price segment (Bible §5.2).

    ``seg`` is the asset's last prices in time order. Decision: the caller passes them in percent
    of the segment's first price, so the Bible's ``noise * 1000`` term and ``noise > 500`` gate
    read the same on a 60,000 USDT coin and a 0.5 USDT coin (raw price differences would rank
    assets by their price level). MFE is floored at 0 like MAE, so efficiency is never negative.
    """
    mfe, mae, pos, _neg, noise, lat, _lat_inv = irp_pass_nb(seg, direction)
    return mfe / (mae + 1e-6), pos / (seg.shape[0] - 1), noise, lat, mfe, mae


@njit(cache=True)
def compute_ars_nb(efficiency, alignment, noise):
    """Return ARS = 0.5 log1p(efficiency) + 0.35 alignment − 0.15 noise · 1000 (Bible §5.3)."""
    return 0.5 * math.log1p(efficiency) + 0.35 * alignment - 0.15 * noise * 1000.0


@njit(cache=True)
def ob_ars_adjust_nb(ars, depth_quality):
    """Return ARS shifted by OB sub-1 (Bible §9.4: ±5%/10% by depth quality).

    Decision (the Bible gives only the sizes): depth ≥ 1.5 → +10%, ≥ 1.0 → +5%, < 0.5 → −10%,
    < 0.8 → −5%, applied as ``ars + adj·|ars|`` so a negative score moves the same way.
    """
    adj = 0.0
    if depth_quality >= 1.5:
        adj = 0.10
    elif depth_quality >= 1.0:
        adj = 0.05
    elif depth_quality < 0.5:
        adj = -0.10
    elif depth_quality < 0.8:
        adj = -0.05
    return ars + adj * abs(ars)


@njit(cache=True)
def segment_pct_nb(hist, hist_n, asset, window, out):
    """Copy the asset's last ``window`` ring-buffer prices into ``out`` in percent of the first."""
    h = HIST_LEN
    start = hist_n[asset] - window
    p0 = hist[asset, start % h]
    for k in range(window):
        out[k] = hist[asset, (start + k) % h] / p0 * 100.0


@njit(cache=True)
def irp_both_nb(seg, direction):
    """Return ``compute_irp_nb(seg, direction)`` and ``compute_irp_nb(seg, -direction)``'s
    (efficiency, alignment, noise, latency) from one pass (``irp_pass_nb``). A test checks it
    against two ``compute_irp_nb`` calls, bit for bit."""
    n_ret = seg.shape[0] - 1
    mfe, mae, pos, neg, noise, lat, lat_inv = irp_pass_nb(seg, direction)
    return (mfe / (mae + 1e-6), pos / n_ret, noise, lat,
            mae / (mfe + 1e-6), neg / n_ret, noise, lat_inv)


@njit(cache=True)
def irp_choice_nb(seg, direction):
    """Return (ARS, action, alignment) of a segment, or ARS = −inf when a gate drops it (§5.4).

    The direct and the inverse direction are scored and the one with the higher ARS is taken
    (the direct one on a tie); only then do the filter gates (noise > 500, latency > 20,
    alignment < 0.20) judge that direction: a gated best direction is not replaced by the other.
    Both directions come from one pass (``irp_both_nb``).
    """
    eff, al, noise, lat, eff_i, al_i, noise_i, lat_i = irp_both_nb(seg, direction)
    best = compute_ars_nb(eff, al, noise)
    act, b_al, b_noise, b_lat = direction, al, noise, lat
    eff, al, noise, lat = eff_i, al_i, noise_i, lat_i
    score = compute_ars_nb(eff, al, noise)
    if score > best:
        best, act, b_al, b_noise, b_lat = score, -direction, al, noise, lat
    if b_noise > 500.0 or b_lat > 20 or b_al < 0.20:
        return -np.inf, act, b_al
    return best, act, b_al


@njit(cache=True)
def rank_assets_irp_nb(hist, hist_n, window, direction, depth_quality, has_ob):
    """Rank assets by ARS, best first (Bible §5.4).

    Only assets with a real close on this bar (``H_LAST_REAL``, DESIGN.md "No price, no trade")
    and ``window`` prices are scored, by ``irp_choice_nb``; OB sub-1 then adjusts the ARS before
    sorting. Returns ``(order, n_valid, ars, action, alignment)``: ``order[:n_valid]`` are asset
    indices sorted by ARS descending (ties keep the lower index first), ``action`` is the chosen
    direction.
    """
    n_assets = hist.shape[0]
    ars = np.full(n_assets, -np.inf)
    action = np.zeros(n_assets, dtype=np.int64)
    align = np.zeros(n_assets)
    order = np.empty(n_assets, dtype=np.int64)
    seg = np.empty(window)
    n_valid = 0
    has_nan = False
    for a in range(n_assets):
        if hist_n[a] < window or hist[a, H_LAST_REAL] != hist_n[a]:
            continue
        segment_pct_nb(hist, hist_n, a, window, seg)
        best, action[a], align[a] = irp_choice_nb(seg, direction)
        if best == -np.inf:
            continue
        if has_ob:
            best = ob_ars_adjust_nb(best, depth_quality[a])
        ars[a] = best
        has_nan |= np.isnan(best)
        order[n_valid] = a  # scored assets, ascending index
        n_valid += 1
    sort_ranking_nb(order, n_valid, ars, has_nan)
    return order, n_valid, ars, action, align


@njit(cache=True)
def sort_ranking_nb(order, n_valid, ars, has_nan):
    """Sort ``order[:n_valid]`` (scored assets, ascending index) by ARS, best first, in place.

    Descending and stable, ties keeping the lower index first: what an insertion sort gives,
    by a merge sort. With a NaN score the insertion sort itself runs (a NaN stops its moves,
    an order no comparison sort reproduces).
    """
    if has_nan:
        for i in range(1, n_valid):
            a = order[i]
            best = ars[a]
            j = i
            while j > 0 and ars[order[j - 1]] < best:
                order[j] = order[j - 1]
                j -= 1
            order[j] = a
    elif n_valid > 1:
        keys = np.empty(n_valid)
        for i in range(n_valid):
            keys[i] = -ars[order[i]]
        idx = np.argsort(keys, kind="mergesort")
        scored = order[:n_valid].copy()
        for i in range(n_valid):
            order[i] = scored[idx[i]]


@njit(cache=True)
def select_asset_nb(order, n_valid, action, align, min_alignment, direction, depth_quality, has_ob):
    """Walk the ranking (Bible §5.5): alignment, direction and OB depth gates; -1 if none."""
    for i in range(n_valid):
        a = order[i]
        if min_alignment > 0.0 and align[a] < min_alignment:
            continue
        if action[a] != direction:
            continue
        if has_ob and depth_quality[a] < 0.20:
            continue
        return a
    return -1
