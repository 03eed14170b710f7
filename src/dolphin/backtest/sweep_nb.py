"""The sweep kernel: many parameter columns stepped through the replay's own state kernel.

``sweep_nb`` is the replay's day loop (``backtest/replay.py``) turned bar-major: for each bar the
prices are pushed into ONE shared set of history ring buffers and the bar's IRP ranking cache is
invalidated once; then parameter columns are advanced by the two halves of ``step_state_nb``
(``advance_bar_nb``, ``act_nb``), the very kernel the replay and the live engine call, so trades
are identical by construction. Work that does not depend on the parameters (history pushes, the
IRP ranking of a bar per direction, the bar counters and vel_div history of ``advance_bar_nb``,
each asset's latest price) is done once per bar for all columns instead of once per column.

A column is only stepped on the bars where ``act_nb`` can do something. Flat, that is its next
signal bar (``no_signal_nb`` proves every bar before it a no-op); open, its exit bar, found by
``hold_until_nb`` scanning the position's asset prices with the replay's own exit rule
(``position_exit_nb``) and marking the held bars to market on the way. Before a column is
stepped, ``copy_bar_state_nb`` brings its parameter-free slots (bar count, bars since a data
gap, vel_div history) up to date from one shared state that ``advance_bar_nb`` stepped through
every bar, so the entry sees exactly the state a bar-by-bar run would have.

The per-column bookkeeping reproduces exactly what the replay writes (``run_bars_nb`` equity and
exposure, the END_OF_DATA close, the day-end equity and capital) so the metrics computed from it
equal ``metrics.json``: mark-to-market equity feeds an online running peak / max drawdown (the
same float operations as ``metrics.max_drawdown``), exposure counts bars in position.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from dolphin.alpha import nb
from dolphin.alpha.layout import (
    H_LAST_REAL,
    HIST_LEN,
    OB_CASCADE,
    OB_IMBALANCE,
    OB_REGIME,
    OB_WITHDRAWAL,
    P_DATA_END_BARS,
    P_MAX_HOLD,
    P_STOP,
    P_TP,
    S_CAPITAL,
    S_PENDING_SUBDAY,
    S_POS_ASSET,
    S_POS_DIR,
    S_POS_ENTRY_BAR,
    S_POS_ENTRY_FEE,
    S_POS_ENTRY_PRICE,
    S_POS_FUNDING,
    S_POS_NOTIONAL,
    S_POS_OPEN,
    S_POSTURE,
    STATUS_OK,
)
from dolphin.alpha.step_nb import (
    act_nb,
    advance_bar_nb,
    bars_since_real_nb,
    begin_day_nb,
    close_position_nb,
    copy_bar_state_nb,
    equity_nb,
    funding_payment_nb,
    invalidate_irp_cache_nb,
    last_price_nb,
    new_irp_cache_nb,
    no_signal_nb,
    position_equity_nb,
    position_exit_nb,
    push_histories_nb,
)
from dolphin.core.enums import (
    EXIT_END_OF_DATA,
    POSTURE_HIBERNATE,
)

HIST_COLS = HIST_LEN + 1  # the ring plus the H_LAST_REAL column (layout.new_histories)

#: Status of a column whose open position had no price at the end of the data (the replay
#: raises ``HaltTradingError`` there).
STATUS_NO_CLOSE_PRICE = 100


@njit(cache=True)
def close_at_end_nb(st, hist, hist_n, trades, params, bar_idx, ts):
    """Close a position still open after the last bar (the replay's END_OF_DATA close)."""
    price = last_price_nb(hist, hist_n, int(st[S_POS_ASSET]))
    if np.isnan(price):
        return STATUS_NO_CLOSE_PRICE
    return close_position_nb(st, trades, params, bar_idx, ts, price, EXIT_END_OF_DATA)



@njit(cache=True, inline="always")
def peak_drawdown_nb(peak, max_dd, eq):
    """Return the running peak and max drawdown after equity ``eq`` (``metrics.max_drawdown``'s
    operations: the peak is the running maximum, the drawdown (peak − eq) / peak)."""
    if eq > peak:
        peak = eq
    dd = (peak - eq) / peak
    if dd > max_dd:
        max_dd = dd
    return peak, max_dd


@njit(cache=True, inline="always")
def track_equity_nb(c, eq, peak, max_dd):
    """Update column ``c``'s running peak and max drawdown with equity ``eq``."""
    peak[c], max_dd[c] = peak_drawdown_nb(peak[c], max_dd[c], eq)


@njit(cache=True)
def last_prices_nb(prices):
    """Return each asset's last real close and bars since it, after every bar (asset-major).

    Built by the replay's own ``push_histories_nb``/``last_price_nb``/``bars_since_real_nb``, so
    they are the price an open position is marked and exited at on each bar and the count that
    triggers ``DATA_END``. Returns ``(last_price, since_real)`` (NaN / 2**30 before any price).
    """
    n_bars, n_assets = prices.shape
    hist = np.full((n_assets, HIST_COLS), np.nan)
    hist[:, H_LAST_REAL] = 0.0
    hist_n = np.zeros(n_assets, dtype=np.int64)
    out = np.empty((n_assets, n_bars))
    since = np.empty((n_assets, n_bars), dtype=np.int32)
    for t in range(n_bars):
        push_histories_nb(hist, hist_n, prices[t])
        for a in range(n_assets):
            out[a, t] = last_price_nb(hist, hist_n, a)
            since[a, t] = bars_since_real_nb(hist, hist_n, a)
    return out, since


@njit(cache=True, inline="always")
def next_signal_nb(st, params, vel_div, t0, t_end):
    """Return the first bar in ``[t0, t_end)`` that carries a signal for ``st``, else ``t_end``.

    A flat state does nothing on the bars in between (``no_signal_nb``: ``act_nb`` is a no-op).
    """
    for t in range(t0, t_end):
        if not no_signal_nb(st, params, vel_div[t]):
            return t
    return t_end


@njit(cache=True, inline="always")
def hold_until_nb(st, last_price, since_real, fund, params, t0, t_end, c, peak, max_dd):
    """Return the first bar in ``[t0, t_end)`` with an exit due for the open position, or ``t_end``.

    ``exit_due_nb`` without an OB engine (no entry is possible while open), on the position's
    asset rows of ``last_prices_nb``: a bar without a real close holds until ``data_end_bars``
    such bars (then ``DATA_END`` is due). The bars held before the exit are marked to market in
    order, as if stepped one by one, after accruing their funding exactly as ``act_nb`` does
    (``fund = (asset, rate, lo)``: bar t's events are ``lo[t]:lo[t + 1]``). Exact because the
    exit inputs (entry, direction, TP/stop/max hold, APEX posture, no pending sub-day signal in
    the sweep) cannot change while the position is open.
    """
    tp = params[P_TP]
    sl = params[P_STOP]
    mh = int(params[P_MAX_HOLD])
    data_end = params[P_DATA_END_BARS]
    f_asset, f_rate, f_lo = fund
    # the position is read once: the loop body is scalar code the compiler keeps in registers
    a = int(st[S_POS_ASSET])
    d = st[S_POS_DIR]
    entry = st[S_POS_ENTRY_PRICE]
    entry_bar = int(st[S_POS_ENTRY_BAR])
    hibernate = st[S_POSTURE] == POSTURE_HIBERNATE
    subday = st[S_PENDING_SUBDAY] > 0
    capital = st[S_CAPITAL]
    notional = st[S_POS_NOTIONAL]
    fee = st[S_POS_ENTRY_FEE]
    funding = st[S_POS_FUNDING]
    pk = peak[c]
    dd = max_dd[c]
    t = t0
    while t < t_end:
        price = last_price[t]
        if price > 0.0:
            gone = since_real[t]
            if gone > 0:
                if gone >= data_end:
                    break
            elif position_exit_nb(d, entry, entry_bar, price, t, tp, sl, mh, hibernate,
                                  subday) >= 0:  # fmt: skip
                break
        for k in range(f_lo[t], f_lo[t + 1]):
            if f_asset[k] == a and f_rate[k] == f_rate[k]:
                funding += funding_payment_nb(d, f_rate[k], notional, entry, price)
        pk, dd = peak_drawdown_nb(
            pk, dd, position_equity_nb(capital, d, entry, notional, fee, funding, price)
        )
        t += 1
    st[S_POS_FUNDING] = funding
    peak[c] = pk
    max_dd[c] = dd
    return t


@njit(cache=True, inline="always")
def hold_until_ob_nb(st, last_price, since_real, fund, params, t0, t_end, c, peak, max_dd,
                     ob_asset, ob_macro):  # fmt: skip
    """``hold_until_nb`` with the bar's OB inputs: the §7.2 exit parameters of every held bar.

    With an OB engine the exit rule of a bar depends on that bar's cascade count, regime, the
    position asset's imbalance and withdrawal velocity (``exit_due_nb`` calls
    ``dynamic_exit_params_nb`` on every bar with a real close), so they are recomputed here bar
    by bar from the same rows the replay's engine reads (``ob_asset[t]``, ``ob_macro[t]``);
    everything else is ``hold_until_nb``.
    """
    tp0 = params[P_TP]
    sl0 = params[P_STOP]
    mh0 = int(params[P_MAX_HOLD])
    data_end = params[P_DATA_END_BARS]
    f_asset, f_rate, f_lo = fund
    a = int(st[S_POS_ASSET])
    d = st[S_POS_DIR]
    entry = st[S_POS_ENTRY_PRICE]
    entry_bar = int(st[S_POS_ENTRY_BAR])
    hibernate = st[S_POSTURE] == POSTURE_HIBERNATE
    subday = st[S_PENDING_SUBDAY] > 0
    capital = st[S_CAPITAL]
    notional = st[S_POS_NOTIONAL]
    fee = st[S_POS_ENTRY_FEE]
    funding = st[S_POS_FUNDING]
    pk = peak[c]
    dd = max_dd[c]
    t = t0
    while t < t_end:
        price = last_price[t]
        if price > 0.0:
            gone = since_real[t]
            if gone > 0:
                if gone >= data_end:
                    break
            else:
                tp, sl, mh = nb.dynamic_exit_params_nb(
                    tp0, sl0, mh0, d * (price - entry) / entry, ob_macro[t, OB_CASCADE],
                    ob_macro[t, OB_REGIME], d * ob_asset[t, a, OB_IMBALANCE],
                    ob_asset[t, a, OB_WITHDRAWAL],
                )  # fmt: skip
                if position_exit_nb(d, entry, entry_bar, price, t, tp, sl, mh, hibernate,
                                    subday) >= 0:  # fmt: skip
                    break
        for k in range(f_lo[t], f_lo[t + 1]):
            if f_asset[k] == a and f_rate[k] == f_rate[k]:
                funding += funding_payment_nb(d, f_rate[k], notional, entry, price)
        pk, dd = peak_drawdown_nb(
            pk, dd, position_equity_nb(capital, d, entry, notional, fee, funding, price)
        )
        t += 1
    st[S_POS_FUNDING] = funding
    peak[c] = pk
    max_dd[c] = dd
    return t


@njit(cache=True, inline="always")
def step_column_nb(  # one call site; the arguments are what ``act_nb`` and the bookkeeping read
    st, hist, hist_n, trades, params, t, ts, vel_div, vol_ok, ob, has_ob, irp_i, irp_f, fund, last,
    c, peak, max_dd,
):  # fmt: skip
    """Run ``act_nb`` for column ``c`` on bar ``t``; return (status, bars it was in position).

    The column's per-bar bookkeeping as the replay writes it: exposure, the END_OF_DATA close
    on the last bar, the mark-to-market drawdown.
    """
    was_open = st[S_POS_OPEN] > 0.0
    cap0 = st[S_CAPITAL]
    s = act_nb(
        st, hist, hist_n, trades, params, t, ts, vel_div, vol_ok,
        ob[0], ob[1], has_ob, irp_i, irp_f, fund,
    )  # fmt: skip
    is_open = st[S_POS_OPEN] > 0.0
    if is_open and last:
        s = close_at_end_nb(st, hist, hist_n, trades, params, t, ts)
    if s == STATUS_OK and (was_open or is_open or st[S_CAPITAL] != cap0):
        # flat before and after with unchanged capital: equity repeats, so does its drawdown
        # term, and max() of a repeated value is unchanged
        track_equity_nb(c, equity_nb(st, hist, hist_n), peak, max_dd)
    return s, 1 if is_open else 0


@njit(cache=True)
def sweep_nb(
    params,
    states,
    day_lo,
    day_boost,
    day_beta,
    day_mc,
    day_scale,
    ts,
    vel_div,
    data_gap,
    vol_ok,
    prices,
    last_price,
    since_real,
    f_asset,
    f_rate,
    f_lo,
    ob_asset,
    ob_macro,
    has_ob,
    trades,
    eq_end,
    cap_end,
    max_dd,
    pos_bars,
    status,
):
    """Run every parameter column (row of ``params``) over all bars; return nothing.

    ``states`` (columns × N_STATE) are fresh ``new_state`` vectors; ``trades`` (columns ×
    capacity) receive each column's trades (count in the state's ``S_N_TRADES``); ``day_lo``
    holds the first bar of each UTC day plus the bar count; ``day_boost``/``day_beta``/``day_mc``
    are each column's ACB verdict and MC-Forewarner code per day, ``day_scale`` its EsoF
    meta-brake size scale per day (``sweep.brake_scales``); ``last_price``/``since_real``
    are ``last_prices_nb(prices)``; bar t's funding events are ``f_asset/f_rate[f_lo[t]:
    f_lo[t + 1]]``; ``ob_asset``/``ob_macro`` hold bar t's OB inputs in row t when ``has_ob``
    (recorded OB features, ``backtest.ob_table``), else one row that is never read. Outputs:
    day-end equity and capital, max drawdown, bars in position, and a status per column (a
    column that fails stops; the others go on).

    Each column is stepped only on the bars where ``act_nb`` can do something: a flat column
    on its next signal bar (``next_signal_nb``), an open one on its exit bar (``hold_until_nb``,
    or ``hold_until_ob_nb`` with OB inputs),
    every column on the last bar. ``advance_bar_nb`` runs once per bar on a shared state whose
    parameter-free slots are copied into a column before it is stepped.
    """
    n_col = params.shape[0]
    n_bars = ts.shape[0]
    n_assets = prices.shape[1]
    hist = np.full((n_assets, HIST_COLS), np.nan)
    hist[:, H_LAST_REAL] = 0.0
    hist_n = np.zeros(n_assets, dtype=np.int64)
    irp_i, irp_f = new_irp_cache_nb(n_assets)
    bars = states[0].copy()  # fresh states share the bar slots
    wake = np.zeros(n_col, dtype=np.int64)
    peak = states[:, S_CAPITAL].copy()
    for d in range(day_lo.shape[0] - 1):
        for c in range(n_col):
            begin_day_nb(states[c], params[c], day_boost[c, d], day_beta[c, d], day_mc[c, d],
                         day_scale[c, d])
        for t in range(day_lo[d], day_lo[d + 1]):
            push_histories_nb(hist, hist_n, prices[t])
            invalidate_irp_cache_nb(irp_i)
            advance_bar_nb(bars, vel_div[t], data_gap[t])
            last = t == n_bars - 1
            fund = (f_asset, f_rate, f_lo[t], f_lo[t + 1])
            k = t if has_ob else 0
            ob = (ob_asset[k], ob_macro[k])
            for c in range(n_col):
                if (wake[c] > t and not last) or status[c] != STATUS_OK:
                    continue
                st = states[c]
                copy_bar_state_nb(st, bars)
                s, held = step_column_nb(
                    st, hist, hist_n, trades[c], params[c], t, ts[t], vel_div[t], vol_ok[t],
                    ob, has_ob, irp_i, irp_f, fund, last, c, peak, max_dd,
                )  # fmt: skip
                pos_bars[c] += held
                if s != STATUS_OK:
                    status[c] = s
                elif st[S_POS_OPEN] > 0.0:
                    a = int(st[S_POS_ASSET])
                    if has_ob:
                        te = hold_until_ob_nb(
                            st, last_price[a], since_real[a], (f_asset, f_rate, f_lo),
                            params[c], t + 1, n_bars - 1, c, peak, max_dd, ob_asset, ob_macro,
                        )  # fmt: skip
                    else:
                        te = hold_until_nb(
                            st, last_price[a], since_real[a], (f_asset, f_rate, f_lo),
                            params[c], t + 1, n_bars - 1, c, peak, max_dd,
                        )  # fmt: skip
                    pos_bars[c] += te - t - 1
                    wake[c] = te
                else:
                    wake[c] = next_signal_nb(st, params[c], vel_div, t + 1, n_bars - 1)
        for c in range(n_col):
            eq_end[c, d] = equity_nb(states[c], hist, hist_n)
            cap_end[c, d] = states[c][S_CAPITAL]
