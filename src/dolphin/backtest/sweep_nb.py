"""The sweep kernel: many parameter columns stepped through the replay's own state kernel.

``sweep_nb`` is the replay's day loop (``backtest/replay.py``) turned bar-major: for each bar the
prices are pushed into ONE shared set of history ring buffers and the bar's IRP ranking cache is
invalidated once; then every parameter column's state is advanced by the two halves of
``step_state_nb`` (``advance_bar_nb``, ``act_nb``), the very kernel the replay and the live engine
call, so trades are identical by construction; ``act_nb`` is skipped where ``no_signal_nb`` or
``hold_nb`` prove it a no-op (flat without a signal, open without an exit due). Work that
does not depend on the parameters (history pushes, the IRP ranking of a bar per direction) is done
once per bar for all columns instead of once per column.

The per-column bookkeeping reproduces exactly what the replay writes (``run_bars_nb`` equity and
exposure, the END_OF_DATA close, the day-end equity and capital) so the metrics computed from it
equal ``metrics.json``: mark-to-market equity feeds an online running peak / max drawdown (the
same float operations as ``metrics.max_drawdown``), exposure counts bars in position.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from dolphin.alpha.layout import (
    HIST_LEN,
    N_OB_ASSET,
    N_OB_MACRO,
    P_DIRECTION,
    P_MAX_HOLD,
    P_STOP,
    P_TP,
    S_CAPITAL,
    S_DAY_BETA,
    S_DAY_BOOST,
    S_DAY_MC_SCALE,
    S_DIRECTION,
    S_HALT,
    S_POS_ASSET,
    S_POS_OPEN,
    S_POSTURE,
    STATUS_OK,
)
from dolphin.alpha.step_nb import (
    act_nb,
    advance_bar_nb,
    close_position_nb,
    equity_at_nb,
    equity_nb,
    exit_reason_at_nb,
    invalidate_irp_cache_nb,
    last_price_nb,
    new_irp_cache_nb,
    no_signal_nb,
    push_histories_nb,
)
from dolphin.core.records import EXIT_END_OF_DATA

#: Status of a column whose open position had no price at the end of the data (the replay
#: raises ``HaltTradingError`` there).
STATUS_NO_CLOSE_PRICE = 100


@njit(cache=True)
def begin_day_nb(st, params, boost, beta):
    """Apply ``NDAlphaEngine.begin_day`` with the default gates (MC open, APEX posture)."""
    st[S_DIRECTION] = params[P_DIRECTION]
    st[S_DAY_BOOST] = boost
    st[S_DAY_BETA] = beta
    st[S_DAY_MC_SCALE] = 1.0
    st[S_HALT] = 0.0
    st[S_POSTURE] = 0.0


@njit(cache=True)
def close_at_end_nb(st, hist, hist_n, trades, params, bar_idx, ts):
    """Close a position still open after the last bar (the replay's END_OF_DATA close)."""
    price = last_price_nb(hist, hist_n, int(st[S_POS_ASSET]))
    if np.isnan(price):
        return STATUS_NO_CLOSE_PRICE
    return close_position_nb(st, trades, params, bar_idx, ts, price, EXIT_END_OF_DATA)


@njit(cache=True)
def track_equity_nb(c, eq, peak, max_dd):
    """Update column ``c``'s running peak and max drawdown (``metrics.max_drawdown``'s ops)."""
    if eq > peak[c]:
        peak[c] = eq
    dd = (peak[c] - eq) / peak[c]
    if dd > max_dd[c]:
        max_dd[c] = dd


@njit(cache=True)
def hold_nb(st, hist, hist_n, params, t, c, peak, max_dd):
    """Return True when an open position has no exit due on bar ``t`` (``act_nb`` is a no-op).

    ``exit_reason_at_nb`` at the last price, as ``exit_due_nb`` without an OB engine (no entry is
    possible while open); a missing price holds, as there. The position is marked to market.
    """
    a = int(st[S_POS_ASSET])
    price = hist[a, (hist_n[a] - 1) % HIST_LEN]
    if price > 0.0:
        mh = int(params[P_MAX_HOLD])
        if exit_reason_at_nb(st, price, t, params[P_TP], params[P_STOP], mh) >= 0:
            return False
    track_equity_nb(c, equity_at_nb(st, price), peak, max_dd)
    return True


@njit(cache=True)
def sweep_nb(  # noqa: C901 - one flat bar-major loop; splitting it would hide the shared order
    params,
    states,
    day_lo,
    day_boost,
    day_beta,
    ts,
    vel_div,
    data_gap,
    vol_ok,
    prices,
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
    holds the first bar of each UTC day plus the bar count; ``day_boost``/``day_beta`` are each
    column's ACB verdict per day. Outputs: day-end equity and capital, max drawdown, bars in
    position, and a status per column (a column that fails stops; the others go on).
    """
    n_col = params.shape[0]
    n_bars = ts.shape[0]
    n_assets = prices.shape[1]
    hist = np.full((n_assets, HIST_LEN), np.nan)
    hist_n = np.zeros(n_assets, dtype=np.int64)
    irp_i, irp_f = new_irp_cache_nb(n_assets)
    ob_asset = np.zeros((n_assets, N_OB_ASSET))
    ob_macro = np.zeros(N_OB_MACRO)
    peak = states[:, S_CAPITAL].copy()
    for d in range(day_lo.shape[0] - 1):
        for c in range(n_col):
            begin_day_nb(states[c], params[c], day_boost[c, d], day_beta[c, d])
        for t in range(day_lo[d], day_lo[d + 1]):
            push_histories_nb(hist, hist_n, prices[t])
            invalidate_irp_cache_nb(irp_i)
            last = t == n_bars - 1
            for c in range(n_col):
                if status[c] != STATUS_OK:
                    continue
                st = states[c]
                advance_bar_nb(st, vel_div[t], data_gap[t])
                was_open = st[S_POS_OPEN] > 0.0
                if not last:
                    # the flat test is inline: a call per state per bar costs more than the bar
                    if not was_open and no_signal_nb(st, params[c], vel_div[t]):
                        continue
                    if was_open and hold_nb(st, hist, hist_n, params[c], t, c, peak, max_dd):
                        pos_bars[c] += 1
                        continue
                cap0 = st[S_CAPITAL]
                s = act_nb(
                    st,
                    hist,
                    hist_n,
                    trades[c],
                    params[c],
                    t,
                    ts[t],
                    vel_div[t],
                    vol_ok[t],
                    ob_asset,
                    ob_macro,
                    False,
                    irp_i,
                    irp_f,
                )
                is_open = st[S_POS_OPEN] > 0.0
                if is_open:
                    pos_bars[c] += 1
                    if last:
                        s = close_at_end_nb(st, hist, hist_n, trades[c], params[c], t, ts[t])
                if s != STATUS_OK:
                    status[c] = s
                    continue
                # flat before and after with unchanged capital: equity repeats, so does its
                # drawdown term, and max() of a repeated value is unchanged
                if was_open or is_open or st[S_CAPITAL] != cap0:
                    track_equity_nb(c, equity_nb(st, hist, hist_n), peak, max_dd)
        for c in range(n_col):
            eq_end[c, d] = equity_nb(states[c], hist, hist_n)
            cap_end[c, d] = states[c][S_CAPITAL]
