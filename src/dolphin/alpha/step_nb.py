"""The one step kernel ``step_bar_nb`` and the bar loop ``run_bars_nb`` (Bible §13).

Every driver runs the same two steps per bar, ``push_histories_nb`` then ``step_state_nb``
(``step_bar_nb`` is the two together): the replay through ``run_bars_nb`` (a numba loop over a
day's bars), the live path once per scan through ``NDAlphaEngine.step_bar``, the sweep
(``backtest/sweep_nb.py``) once per bar for the prices and once per bar per parameter column for
the state, sharing the bar's IRP ranking between columns. State is the flat vector of
``layout.py`` plus the price ring buffers; trades are written into a preallocated ``TRADE_DTYPE``
buffer.

Every kernel here is inlined into its caller at numba's IR level (``inline="always"``): a numba
call passes each array as a multi-word struct, and at a dozen arrays per call that was most of
the cost of one step in the sweep. Inlining changes no operation, only the call boundaries.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from dolphin.alpha import nb
from dolphin.alpha.layout import (
    H_LAST_REAL,
    HIST_LEN,
    OB_CASCADE,
    OB_DEPTH_QUALITY,
    OB_FILL_PROB,
    OB_IMBALANCE,
    OB_MARKET_MULT,
    OB_PERSISTENCE,
    OB_REGIME,
    OB_WITHDRAWAL,
    P_ABS_MAX_LEV,
    P_BUCKET_MIN_TRADES,
    P_CONVEXITY,
    P_DATA_END_BARS,
    P_DC_LEV_BOOST,
    P_DC_LOOKBACK,
    P_DC_MIN_BPS,
    P_DC_SKIP,
    P_DIRECTION,
    P_FRACTION,
    P_GAP_WINDOW,
    P_HELL,
    P_HELL_ENTRY_FILL,
    P_HELL_MAKER_EXIT_FILL,
    P_IRP_WINDOW,
    P_LONG_EXTREME,
    P_LONG_THRESHOLD,
    P_LOOKBACK,
    P_MAKER_ENTRY,
    P_MAKER_EXIT,
    P_MAX_HOLD,
    P_MAX_LEV,
    P_MIN_IRP_ALIGN,
    P_MIN_LEV,
    P_OB_CONFIRM,
    P_OB_EDGE_BPS,
    P_SEED,
    P_STALKER_MAX_LEV,
    P_STOP,
    P_TP,
    P_USE_DC,
    P_USE_DYN_LEV,
    P_USE_IRP,
    P_USE_LAYERS,
    P_USE_OB_EDGE,
    P_USE_SP_FEES,
    P_USE_SP_SLIP,
    P_VD_EXTREME,
    P_VD_THRESHOLD,
    S_BAR_COUNT,
    S_BARS_SINCE_GAP,
    S_BUCKET_TRADES,
    S_BUCKET_WINS,
    S_CAPITAL,
    S_DAY_BETA,
    S_DAY_BOOST,
    S_DAY_MC_SCALE,
    S_DIRECTION,
    S_FALLBACK_ASSET,
    S_HALT,
    S_LAST_EXIT_BAR,
    S_N_TRADES,
    S_PENDING_SUBDAY,
    S_POS_ASSET,
    S_POS_BUCKET,
    S_POS_CONF,
    S_POS_DIR,
    S_POS_DQ,
    S_POS_ENTRY_BAR,
    S_POS_ENTRY_FEE,
    S_POS_ENTRY_PRICE,
    S_POS_ENTRY_TS,
    S_POS_FILLP,
    S_POS_FRACTION,
    S_POS_FUNDING,
    S_POS_LEV,
    S_POS_NOTIONAL,
    S_POS_OPEN,
    S_POS_POSTURE,
    S_POSTURE,
    S_RNG_COUNTER,
    S_RSM,
    S_STREAK_N,
    S_STREAK_RING,
    S_TRADE_ID,
    S_VD_N,
    S_VD_RING,
    STATUS_OK,
    STATUS_TRADE_BUFFER_FULL,
    VD_RING,
)
from dolphin.core.enums import (
    EXIT_DATA_END,
    EXIT_STOP_LOSS,
    MC_ORANGE,
    MC_RED,
    POSTURE_APEX,
    POSTURE_HIBERNATE,
    POSTURE_STALKER,
)


@njit(cache=True)
def begin_day_nb(st, params, boost, beta, mc, scale):
    """Start a day in the state (Bible §10, §12, §13.1): direction, ACB boost and beta, and the
    MC-Forewarner code ``mc`` (``McStatus``): ORANGE halves the size, RED halts entries.
    ``scale`` multiplies the day's size scale further (the EsoF meta-brake,
    ``features.esof.brake_scale``; 1.0 when off).

    The posture is APEX here; ``NDAlphaEngine.begin_day`` then applies the day's posture. The
    sweep applies its days with this kernel too (APEX only).
    """
    st[S_DIRECTION] = params[P_DIRECTION]
    st[S_DAY_BOOST] = boost
    st[S_DAY_BETA] = beta
    st[S_DAY_MC_SCALE] = (0.5 if mc == MC_ORANGE else 1.0) * scale
    st[S_HALT] = 1.0 if mc == MC_RED else 0.0
    st[S_POSTURE] = POSTURE_APEX


@njit(cache=True, inline="always")
def draw_nb(st, params):
    """Return the next seeded uniform and advance the RNG counter held in the state."""
    u = nb.uniform_nb(int(params[P_SEED]), int(st[S_RNG_COUNTER]))
    st[S_RNG_COUNTER] += 1.0
    return u


@njit(cache=True, inline="always")
def signal_space_nb(st, params, vel_div):
    """Return (x, threshold, extreme) in signal space for the day's direction (see nb.py)."""
    if st[S_DIRECTION] < 0:
        return vel_div, params[P_VD_THRESHOLD], params[P_VD_EXTREME]
    return -vel_div, -params[P_LONG_THRESHOLD], -params[P_LONG_EXTREME]


@njit(cache=True, inline="always")
def push_histories_nb(hist, hist_n, prices):
    """Append the bar to every asset's ring buffer (DESIGN.md "No price, no trade").

    A real close (finite, > 0: Bible §13.1 "if row[col] > 0") is appended and recorded as the
    asset's last real one (``H_LAST_REAL``). An asset without a real close on the bar repeats
    its previous price (a zero return, as the scanner counts a filled bar) once it has one, so
    the history window keeps its bar spacing; the repeat is never a real close.
    """
    for a in range(prices.shape[0]):
        p = prices[a]
        n = hist_n[a]
        if p > 0.0 and not math.isinf(p):
            hist[a, n % HIST_LEN] = p
            hist_n[a] = n + 1
            hist[a, H_LAST_REAL] = n + 1
        elif n > 0:
            hist[a, n % HIST_LEN] = hist[a, (n - 1) % HIST_LEN]
            hist_n[a] = n + 1


@njit(cache=True, inline="always")
def last_price_nb(hist, hist_n, a):
    """Return the asset's last real close, NaN before its first one."""
    if hist_n[a] == 0:
        return np.nan
    return hist[a, (hist_n[a] - 1) % HIST_LEN]


@njit(cache=True, inline="always")
def bars_since_real_nb(hist, hist_n, a):
    """Return the bars since the asset's last real close: 0 when this bar's close is real."""
    if hist_n[a] == 0:
        return 1 << 30
    return hist_n[a] - int(hist[a, H_LAST_REAL])


@njit(cache=True, inline="always")
def funding_payment_nb(d, rate, notional, entry, price):
    """Return what a position pays at a funding time: direction × rate × qty × price.

    A long pays a positive rate, a short receives it; the quantity is the entry notional over
    the entry price and the price is the asset's last real close at the funding time.
    """
    return d * rate * (notional / entry) * price


@njit(cache=True, inline="always")
def accrue_funding_nb(st, hist, hist_n, f_asset, f_rate, k0, k1):
    """Accrue the funding events ``k0..k1`` of this bar on the open position (if its asset).

    Called before the bar's exits: a position pays every funding time F with entry < F <= exit
    (it was opened on an earlier bar, so it was open at F).
    """
    if st[S_POS_OPEN] == 0.0:
        return
    a = int(st[S_POS_ASSET])
    for k in range(k0, k1):
        if f_asset[k] == a and f_rate[k] == f_rate[k]:
            st[S_POS_FUNDING] += funding_payment_nb(
                st[S_POS_DIR], f_rate[k], st[S_POS_NOTIONAL], st[S_POS_ENTRY_PRICE],
                last_price_nb(hist, hist_n, a),
            )  # fmt: skip


@njit(cache=True, inline="always")
def push_vd_nb(st, vel_div):
    """Append a finite vel_div to the 16-slot history (§13.2 ``vel_div_history``)."""
    n = int(st[S_VD_N])
    st[S_VD_RING + n % VD_RING] = vel_div
    st[S_VD_N] = n + 1


@njit(cache=True, inline="always")
def vd_trend_nb(st):
    """Return vel_div_history[-1] − vel_div_history[-10] (§6.4); 0 with fewer than 10 values."""
    n = int(st[S_VD_N])
    if n < 10:
        return 0.0
    return st[S_VD_RING + (n - 1) % VD_RING] - st[S_VD_RING + (n - 10) % VD_RING]


@njit(cache=True, inline="always")
def record_outcome_nb(st, bucket, net_pnl):
    """Update the §6.4 bucket win counts and the five-trade loss streak ring."""
    st[S_BUCKET_TRADES + bucket] += 1.0
    if net_pnl > 0.0:
        st[S_BUCKET_WINS + bucket] += 1.0
    k = int(st[S_STREAK_N])
    st[S_STREAK_RING + k % 5] = 1.0 if net_pnl < 0.0 else 0.0
    st[S_STREAK_N] = k + 1


@njit(cache=True, inline="always")
def exit_costs_nb(st, params, reason, notional):
    """Return (exit fee, exit slippage) under the default SmartPlacer or the HELL friction.

    Default (§7.4, §8.1–§8.2): blended exit fee when ``use_sp_fees``; the §7.4 slippage, of which
    the maker-filled share ``sp_maker_exit_rate`` is refunded when ``use_sp_slippage`` (a stop is a
    market order and gets no refund). HELL: a stop is a taker exit; any other exit is a maker exit
    that fills with p = 0.35 (maker fee, §7.4 slippage) or else becomes a taker exit (taker fee,
    5 bps market slippage).
    """
    slip = nb.exit_slippage_nb(reason)
    if params[P_HELL] > 0.0:
        if reason != EXIT_STOP_LOSS and draw_nb(st, params) < params[P_HELL_MAKER_EXIT_FILL]:
            return nb.MAKER_FEE * notional, slip
        return nb.TAKER_FEE * notional, nb.SLIP_STOP
    fee = nb.blended_fee_rate_nb(params[P_MAKER_EXIT]) * notional if params[P_USE_SP_FEES] else 0.0
    if params[P_USE_SP_SLIP] > 0.0 and reason != EXIT_STOP_LOSS:
        slip *= 1.0 - params[P_MAKER_EXIT]
    return fee, slip


@njit(cache=True, inline="always")
def ob_edge_nb(st, params):
    """Return the §8.3 OB edge added to pnl_pct (real OB placement, or the seeded MC fallback).

    HELL is a stress test: it gets no edge.
    """
    if params[P_USE_OB_EDGE] == 0.0 or params[P_HELL] > 0.0:
        return 0.0
    edge = params[P_OB_EDGE_BPS] * 1e-4
    if st[S_POS_DQ] >= 0.0:  # an OB engine was attached at entry
        return st[S_POS_FILLP] * edge if st[S_POS_DQ] > 0.5 else 0.0
    return edge if draw_nb(st, params) < params[P_OB_CONFIRM] else 0.0


@njit(cache=True, inline="always")
def close_position_nb(st, trades, params, bar_idx, ts, price, reason):
    """Close the open position at ``price`` (§7.4 slippage, §8 fees) and write the trade."""
    n = int(st[S_N_TRADES])
    if n >= trades.shape[0]:
        return STATUS_TRADE_BUFFER_FULL
    d = st[S_POS_DIR]
    entry = st[S_POS_ENTRY_PRICE]
    notional = st[S_POS_NOTIONAL]
    fee, slip = exit_costs_nb(st, params, reason, notional)
    exit_price = price * (1.0 - d * slip)  # slippage always against the position
    edge = ob_edge_nb(st, params)
    pnl_pct = d * (exit_price - entry) / entry + edge
    funding = st[S_POS_FUNDING]
    net = pnl_pct * notional - st[S_POS_ENTRY_FEE] - fee - funding
    st[S_CAPITAL] += net
    bucket = int(st[S_POS_BUCKET])
    record_outcome_nb(st, bucket, net)
    t = trades[n]
    t["trade_id"] = int(st[S_TRADE_ID])
    t["entry_ts"] = int(st[S_POS_ENTRY_TS])
    t["exit_ts"] = ts
    t["entry_bar"] = int(st[S_POS_ENTRY_BAR])
    t["exit_bar"] = bar_idx
    t["asset"] = int(st[S_POS_ASSET])
    t["direction"] = int(d)
    t["exit_reason"] = reason
    t["bucket"] = bucket
    t["posture"] = int(st[S_POS_POSTURE])
    t["entry_price"] = entry
    t["exit_price"] = exit_price
    t["notional"] = notional
    t["leverage"] = st[S_POS_LEV]
    t["fraction"] = st[S_POS_FRACTION]
    t["confidence"] = st[S_POS_CONF]
    t["entry_fee"] = st[S_POS_ENTRY_FEE]
    t["exit_fee"] = fee
    t["ob_edge_pct"] = edge
    t["funding"] = funding
    t["pnl_pct"] = pnl_pct
    t["pnl"] = net
    t["capital_after"] = st[S_CAPITAL]
    st[S_N_TRADES] = n + 1
    st[S_TRADE_ID] += 1.0
    st[S_POS_OPEN] = 0.0
    st[S_POS_FUNDING] = 0.0
    st[S_LAST_EXIT_BAR] = bar_idx
    st[S_PENDING_SUBDAY] = 0.0
    return STATUS_OK


@njit(cache=True, inline="always")
def position_exit_nb(d, entry, entry_bar, price, bar_idx, tp, sl, max_hold, hibernate, subday):
    """Return the §7.1 exit reason of a position (direction, entry price and bar) at ``price``.

    Scalars only: the sweep reads the position once and calls this on every held bar.
    """
    pnl_pct = d * (price - entry) / entry
    return nb.exit_reason_nb(pnl_pct, bar_idx - entry_bar, tp, sl, max_hold, hibernate, subday)


@njit(cache=True, inline="always")
def exit_reason_at_nb(st, price, bar_idx, tp, sl, max_hold):
    """Return the §7.1 exit reason of the open position at ``price`` (−1 holds)."""
    return position_exit_nb(
        st[S_POS_DIR],
        st[S_POS_ENTRY_PRICE],
        int(st[S_POS_ENTRY_BAR]),
        price,
        bar_idx,
        tp,
        sl,
        max_hold,
        st[S_POSTURE] == POSTURE_HIBERNATE,
        st[S_PENDING_SUBDAY] > 0,
    )


@njit(cache=True, inline="always")
def exit_due_nb(st, hist, hist_n, params, bar_idx, ob_asset, ob_macro, has_ob):
    """Return ``(reason, price)`` of the §7.1 exits (with the §7.2 OB adjustments); −1 holds.

    Exit rules run on real closes only: on a bar without one the position holds (marked at its
    last real close) until ``data_end_bars`` bars have passed without one, then exits at that
    close with ``DATA_END`` (causal: it never looks ahead to where the data ends).
    """
    a = int(st[S_POS_ASSET])
    price = last_price_nb(hist, hist_n, a)
    if not price > 0.0:
        return -1, price
    gone = bars_since_real_nb(hist, hist_n, a)
    if gone > 0:
        return (EXIT_DATA_END if gone >= params[P_DATA_END_BARS] else -1), price
    tp = params[P_TP]
    sl = params[P_STOP]
    mh = int(params[P_MAX_HOLD])
    if has_ob:
        d = st[S_POS_DIR]
        pnl_pct = d * (price - st[S_POS_ENTRY_PRICE]) / st[S_POS_ENTRY_PRICE]
        tp, sl, mh = nb.dynamic_exit_params_nb(
            tp,
            sl,
            mh,
            pnl_pct,
            ob_macro[OB_CASCADE],
            ob_macro[OB_REGIME],
            d * ob_asset[a, OB_IMBALANCE],
            ob_asset[a, OB_WITHDRAWAL],
        )
    return exit_reason_at_nb(st, price, bar_idx, tp, sl, mh), price


@njit(cache=True, inline="always")
def new_irp_cache_nb(n_assets):
    """Return an empty IRP ranking cache ``(irp_i, irp_f)``, one row per direction.

    ``irp_i[k] = [valid, n_valid, order[n_assets], action[n_assets]]``, ``irp_f[k] = alignment``;
    row 0 is SHORT, row 1 LONG. The ranking depends only on the price histories, the direction
    and the bar's OB depth, never on a swept parameter, so every parameter column stepped on the
    same bar shares it (issue 5); ``push_histories_nb`` callers invalidate it each bar.
    """
    return np.zeros((2, 2 + 2 * n_assets), dtype=np.int64), np.zeros((2, n_assets))


@njit(cache=True, inline="always")
def invalidate_irp_cache_nb(irp_i):
    """Mark both cached rankings stale (the histories changed)."""
    irp_i[0, 0] = 0
    irp_i[1, 0] = 0


@njit(cache=True, inline="always")
def pick_asset_nb(st, hist, hist_n, params, ob_asset, has_ob, irp_i, irp_f):
    """Return the §5 IRP asset (−1 if none passes), or the fallback asset when IRP is off."""
    d = int(st[S_DIRECTION])
    if params[P_USE_IRP] == 0.0:
        a = int(st[S_FALLBACK_ASSET])
        return a if bars_since_real_nb(hist, hist_n, a) == 0 else -1
    dq = ob_asset[:, OB_DEPTH_QUALITY]
    n = hist.shape[0]
    k = 0 if d < 0 else 1
    if irp_i[k, 0] == 0:
        order, n_valid, _, action, align = nb.rank_assets_irp_nb(
            hist, hist_n, int(params[P_IRP_WINDOW]), d, dq, has_ob
        )
        irp_i[k, 0] = 1
        irp_i[k, 1] = n_valid
        irp_i[k, 2 : 2 + n] = order
        irp_i[k, 2 + n :] = action
        irp_f[k, :] = align
    return nb.select_asset_nb(
        irp_i[k, 2 : 2 + n],
        irp_i[k, 1],
        irp_i[k, 2 + n :],
        irp_f[k],
        params[P_MIN_IRP_ALIGN],
        d,
        dq,
        has_ob,
    )


@njit(cache=True, inline="always")
def dc_check_nb(st, hist, hist_n, params, a):
    """Run §4.2 direction confirmation on the selected asset's history."""
    k = int(params[P_DC_LOOKBACK]) + 1
    h = hist_n[a]
    if h < k:  # fewer than lookback + 1 prices: no move to judge
        return nb.DC_NEUTRAL
    # the rule reads only the first and the last of the last k prices: no copy
    p0 = hist[a, (h - k) % HIST_LEN]
    p1 = hist[a, (h - 1) % HIST_LEN]
    return nb.dc_move_nb(p0, p1, params[P_DC_MIN_BPS], int(st[S_DIRECTION]))


@njit(cache=True, inline="always")
def size_nb(st, params, x, thr, ext):
    """Return (fraction, size leverage, bucket) of §6.1–§6.4."""
    strength = nb.strength_score_nb(x, thr, ext)
    is_extreme = x <= ext
    if params[P_USE_DYN_LEV] > 0.0:
        lev = nb.dynamic_leverage_nb(
            strength, params[P_MIN_LEV], params[P_MAX_LEV], params[P_CONVEXITY]
        )
    else:
        lev = params[P_MAX_LEV]
    bucket = nb.signal_bucket_nb(x, thr, ext)
    trend_m = 1.0
    bucket_m = 1.0
    streak_m = 1.0
    if params[P_USE_LAYERS] > 0.0:
        trend_m = nb.trend_mult_nb(-st[S_DIRECTION] * vd_trend_nb(st))
        bucket_m = nb.bucket_boost_nb(
            st[S_BUCKET_WINS + bucket], st[S_BUCKET_TRADES + bucket], params[P_BUCKET_MIN_TRADES]
        )
        losses = 0.0
        for i in range(5):
            losses += st[S_STREAK_RING + i]
        streak_m = nb.streak_mult_nb(losses, st[S_STREAK_N])
    frac = nb.effective_fraction_nb(
        strength, is_extreme, params[P_FRACTION], trend_m, bucket_m, streak_m
    )
    return frac, lev, bucket


@njit(cache=True, inline="always")
def entry_allowed_nb(st, params, bar_idx, vel_div, vol_ok):
    """Return True when §13.2's entry preconditions and the data-gap rule all hold."""
    return (
        st[S_POS_OPEN] == 0.0
        and bar_idx > st[S_LAST_EXIT_BAR]
        and st[S_HALT] == 0.0
        and st[S_BAR_COUNT] >= params[P_LOOKBACK]
        and vol_ok
        and st[S_BARS_SINCE_GAP] >= params[P_GAP_WINDOW]
        and st[S_CAPITAL] > 0.0
        and not math.isnan(vel_div)
    )


@njit(cache=True, inline="always")
def try_entry_nb(
    st, hist, hist_n, params, bar_idx, ts, vel_div, ob_asset, ob_macro, has_ob, irp_i, irp_f
):
    """§13.3 ``_try_entry``: gate, IRP, DC, OB sub-2, sizing, ACB ceiling, open. True if opened.

    The vel_div gate runs first (the Bible ranks assets first): identical decisions, and the IRP
    ranking only runs on signal bars.
    """
    x, thr, ext = signal_space_nb(st, params, vel_div)
    if not x < thr:
        return False
    a = pick_asset_nb(st, hist, hist_n, params, ob_asset, has_ob, irp_i, irp_f)
    if a < 0:
        return False
    dc = nb.DC_NEUTRAL
    if params[P_USE_DC] > 0.0:
        dc = dc_check_nb(st, hist, hist_n, params, a)
        if dc == nb.DC_CONTRADICT and params[P_DC_SKIP] > 0.0:
            return False
    conf = nb.confidence_nb(x, thr, ext)
    market_mult = 1.0
    if has_ob:
        adj = nb.ob_confidence_adj_nb(
            st[S_DIRECTION] * ob_asset[a, OB_IMBALANCE], ob_asset[a, OB_PERSISTENCE]
        )
        if adj < 0.0:
            return False
        conf *= adj
        market_mult = min(max(ob_macro[OB_MARKET_MULT], 0.85), 1.20)  # OB sub-3: ±20%/15%
    if params[P_HELL] > 0.0 and draw_nb(st, params) >= params[P_HELL_ENTRY_FILL]:
        return False
    frac, lev, bucket = size_nb(st, params, x, thr, ext)
    dc_mult = params[P_DC_LEV_BOOST] if dc == nb.DC_CONFIRM else 1.0
    final_lev = nb.final_leverage_nb(
        lev,
        dc_mult,
        st[S_RSM],
        market_mult,
        params[P_MIN_LEV],
        params[P_MAX_LEV],
        params[P_ABS_MAX_LEV],
        st[S_POSTURE] == POSTURE_STALKER,
        params[P_STALKER_MAX_LEV],
    )
    notional = st[S_CAPITAL] * frac * final_lev
    fee = 0.0
    if params[P_HELL] > 0.0:
        fee = nb.MAKER_FEE * notional  # a HELL entry that fills is a maker fill
    elif params[P_USE_SP_FEES] > 0.0:
        fee = nb.blended_fee_rate_nb(params[P_MAKER_ENTRY]) * notional
    st[S_POS_OPEN] = 1.0
    st[S_POS_ASSET] = a
    st[S_POS_DIR] = st[S_DIRECTION]
    st[S_POS_ENTRY_PRICE] = last_price_nb(hist, hist_n, a)
    st[S_POS_NOTIONAL] = notional
    st[S_POS_LEV] = final_lev
    st[S_POS_FRACTION] = frac
    st[S_POS_ENTRY_BAR] = bar_idx
    st[S_POS_ENTRY_TS] = ts
    st[S_POS_BUCKET] = bucket
    st[S_POS_ENTRY_FEE] = fee
    st[S_POS_CONF] = conf
    st[S_POS_DQ] = ob_asset[a, OB_DEPTH_QUALITY] if has_ob else -1.0
    st[S_POS_FILLP] = ob_asset[a, OB_FILL_PROB] if has_ob else 0.0
    st[S_POS_POSTURE] = st[S_POSTURE]
    st[S_POS_FUNDING] = 0.0
    return True


@njit(cache=True, inline="always")
def step_bar_nb(
    st,
    hist,
    hist_n,
    trades,
    params,
    bar_idx,
    ts,
    vel_div,
    data_gap,
    vol_ok,
    prices,
    ob_asset,
    ob_macro,
    has_ob,
    f_asset,
    f_rate,
):
    """Advance the engine by one bar (Bible §13.1–§13.2). Returns a status code.

    Pushes the bar's prices into the histories, then runs ``step_state_nb`` (everything that
    depends on the parameters) with the bar's funding events ``f_asset``/``f_rate``. The sweep
    does the same two steps, the push once per bar for all parameter columns.
    """
    push_histories_nb(hist, hist_n, prices)
    return restep_state_nb(
        st, hist, hist_n, trades, params, bar_idx, ts, vel_div, data_gap, vol_ok, ob_asset,
        ob_macro, has_ob, f_asset, f_rate,
    )  # fmt: skip


@njit(cache=True, inline="always")
def advance_bar_nb(st, vel_div, data_gap):
    """Count the bar, the bars since a data gap and push vel_div: what every state does."""
    st[S_BAR_COUNT] += 1.0
    st[S_BARS_SINCE_GAP] = 0.0 if data_gap else st[S_BARS_SINCE_GAP] + 1.0
    if not math.isnan(vel_div):
        push_vd_nb(st, vel_div)


@njit(cache=True, inline="always")
def copy_bar_state_nb(dst, src):
    """Copy the slots ``advance_bar_nb`` writes (bar count, gap counter, vel_div history).

    They depend on the bars only, never on a parameter: a state that skipped bars is brought up
    to date from one that ``advance_bar_nb`` stepped through every bar from the same start.
    """
    dst[S_BAR_COUNT] = src[S_BAR_COUNT]
    dst[S_BARS_SINCE_GAP] = src[S_BARS_SINCE_GAP]
    dst[S_VD_N] = src[S_VD_N]
    for i in range(VD_RING):
        dst[S_VD_RING + i] = src[S_VD_RING + i]


@njit(cache=True, inline="always")
def no_signal_nb(st, params, vel_div):
    """Return True when the bar carries no §4.1 signal for this state (NaN vel_div is none).

    A flat state on such a bar does nothing in ``act_nb``: the sweep skips the call.
    """
    x, thr, _ = signal_space_nb(st, params, vel_div)
    return not x < thr


@njit(cache=True, inline="always")
def act_nb(
    st,
    hist,
    hist_n,
    trades,
    params,
    bar_idx,
    ts,
    vel_div,
    vol_ok,
    ob_asset,
    ob_macro,
    has_ob,
    irp_i,
    irp_f,
    fund,
):
    """Funding, exit management (always first), then entry when flat and the bar has a signal.

    ``fund = (asset, rate, k0, k1)``: the bar's funding events are ``asset[k0:k1]`` and
    ``rate[k0:k1]`` (``k0 == k1``: none). The §4.1 gate is tested before the entry call because
    most bars carry no signal. The ACB scale-2 size multiplier (§10.4) is read only by the entry,
    from this bar's vel_div, so it is computed on the signal bars only.
    """
    if st[S_POS_OPEN] > 0.0:
        accrue_funding_nb(st, hist, hist_n, fund[0], fund[1], fund[2], fund[3])
        reason, price = exit_due_nb(st, hist, hist_n, params, bar_idx, ob_asset, ob_macro, has_ob)
        if reason >= 0:
            status = close_position_nb(st, trades, params, bar_idx, ts, price, reason)
            if status != STATUS_OK:
                return status
    if entry_allowed_nb(st, params, bar_idx, vel_div, vol_ok):
        x, thr, ext = signal_space_nb(st, params, vel_div)
        if x < thr:
            st[S_RSM] = nb.regime_size_mult_nb(
                x,
                thr,
                ext,
                params[P_CONVEXITY],
                st[S_DAY_BOOST],
                st[S_DAY_BETA],
                st[S_DAY_MC_SCALE],
            )
            try_entry_nb(
                st,
                hist,
                hist_n,
                params,
                bar_idx,
                ts,
                vel_div,
                ob_asset,
                ob_macro,
                has_ob,
                irp_i,
                irp_f,
            )
    return STATUS_OK


@njit(cache=True, inline="always")
def step_state_nb(
    st,
    hist,
    hist_n,
    trades,
    params,
    bar_idx,
    ts,
    vel_div,
    data_gap,
    vol_ok,
    ob_asset,
    ob_macro,
    has_ob,
    irp_i,
    irp_f,
    fund,
):
    """Advance one engine state by one bar whose prices are already in the histories.

    ``advance_bar_nb`` (bar count, gap counter, vel_div history) then ``act_nb`` (funding,
    exits, then entry). ``irp_i``/``irp_f`` is the bar's IRP ranking cache
    (``new_irp_cache_nb``), shared by every state stepped on this bar. The sweep runs the same
    two calls and skips ``act_nb`` where it is a no-op (flat with ``no_signal_nb``, or open with
    no exit due and no funding event, which ``hold_until_nb`` accrues itself).
    """
    advance_bar_nb(st, vel_div, data_gap)
    return act_nb(
        st,
        hist,
        hist_n,
        trades,
        params,
        bar_idx,
        ts,
        vel_div,
        vol_ok,
        ob_asset,
        ob_macro,
        has_ob,
        irp_i,
        irp_f,
        fund,
    )


@njit(cache=True, inline="always")
def position_equity_nb(capital, d, entry, notional, entry_fee, funding, price):
    """Return capital plus an open position's unrealised PnL at ``price`` less its entry fee
    and the funding it has paid so far."""
    return capital + (d * (price - entry) / entry * notional - entry_fee - funding)


@njit(cache=True, inline="always")
def equity_at_nb(st, price):
    """Return mark-to-market equity with the open position's asset at ``price``."""
    if st[S_POS_OPEN] > 0.0:
        return position_equity_nb(
            st[S_CAPITAL],
            st[S_POS_DIR],
            st[S_POS_ENTRY_PRICE],
            st[S_POS_NOTIONAL],
            st[S_POS_ENTRY_FEE],
            st[S_POS_FUNDING],
            price,
        )
    return st[S_CAPITAL]


@njit(cache=True, inline="always")
def equity_nb(st, hist, hist_n):
    """Return mark-to-market equity: the open position marked at its last real close."""
    if st[S_POS_OPEN] > 0.0:
        return equity_at_nb(st, last_price_nb(hist, hist_n, int(st[S_POS_ASSET])))
    return st[S_CAPITAL]


@njit(cache=True, inline="always")
def run_bars_nb(
    st,
    hist,
    hist_n,
    trades,
    params,
    bar0,
    ts,
    vel_div,
    data_gap,
    vol_ok,
    prices,
    ob_asset,
    ob_macro,
    has_ob,
    f_asset,
    f_rate,
    f_lo,
    equity_out,
    in_pos_out,
):
    """Run ``step_bar_nb``'s two steps for each row; write equity and exposure per bar.

    Returns a status. The IRP cache is allocated once for the loop, not once per bar.
    ``ob_asset``/``ob_macro`` hold one row per bar when ``has_ob``, else one (ignored) row.
    Row ``t``'s funding events are ``f_asset/f_rate[f_lo[t]:f_lo[t + 1]]``.
    """
    irp_i, irp_f = new_irp_cache_nb(hist.shape[0])
    for t in range(ts.shape[0]):
        k = t if has_ob else 0
        push_histories_nb(hist, hist_n, prices[t])
        invalidate_irp_cache_nb(irp_i)
        status = step_state_nb(
            st,
            hist,
            hist_n,
            trades,
            params,
            bar0 + t,
            ts[t],
            vel_div[t],
            data_gap[t],
            vol_ok[t],
            ob_asset[k],
            ob_macro[k],
            has_ob,
            irp_i,
            irp_f,
            (f_asset, f_rate, f_lo[t], f_lo[t + 1]),
        )
        if status != STATUS_OK:
            return status
        equity_out[t] = equity_nb(st, hist, hist_n)
        in_pos_out[t] = st[S_POS_OPEN] > 0.0
    return STATUS_OK


@njit(cache=True)
def restep_state_nb(
    st,
    hist,
    hist_n,
    trades,
    params,
    bar_idx,
    ts,
    vel_div,
    data_gap,
    vol_ok,
    ob_asset,
    ob_macro,
    has_ob,
    f_asset,
    f_rate,
):
    """Run ``step_state_nb`` on a bar whose prices are already in the histories.

    ``step_bar_nb`` calls it after pushing the prices; the risk gate's rerun calls it alone:
    the engine restores the state from before the bar, sets the entry block and steps the
    state again, so a denied entry leaves exactly a blocked bar behind.
    """
    irp_i, irp_f = new_irp_cache_nb(hist.shape[0])
    return step_state_nb(
        st, hist, hist_n, trades, params, bar_idx, ts, vel_div, data_gap, vol_ok, ob_asset,
        ob_macro, has_ob, irp_i, irp_f, (f_asset, f_rate, 0, f_asset.shape[0]),
    )  # fmt: skip


@njit(cache=True)
def equity_now_nb(st, hist, hist_n):
    """Return ``equity_nb`` (for the Python drivers)."""
    return equity_nb(st, hist, hist_n)
