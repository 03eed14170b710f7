"""Flat layouts of the engine parameters and state (DESIGN.md "One engine, three drivers").

The step kernel takes a float64 parameter vector and a float64 state vector so the sweep can run
the same kernel over tens of thousands of parameter columns. Indices are module constants; numba
treats them as compile-time globals.
"""

from __future__ import annotations

import numpy as np

from dolphin.core.config import AlphaConfig
from dolphin.core.enums import DIR_LONG, DIR_SHORT, Direction

# ---------------------------------------------------------------- parameter vector
(
    P_DIRECTION,
    P_VD_THRESHOLD,
    P_VD_EXTREME,
    P_LONG_THRESHOLD,
    P_LONG_EXTREME,
    P_MIN_LEV,
    P_MAX_LEV,
    P_ABS_MAX_LEV,
    P_STALKER_MAX_LEV,
    P_CONVEXITY,
    P_FRACTION,
    P_TP,
    P_STOP,
    P_MAX_HOLD,
    P_USE_DC,
    P_DC_LOOKBACK,
    P_DC_MIN_BPS,
    P_DC_SKIP,
    P_DC_LEV_BOOST,
    P_USE_IRP,
    P_MIN_IRP_ALIGN,
    P_USE_SP_FEES,
    P_USE_SP_SLIP,
    P_MAKER_ENTRY,
    P_MAKER_EXIT,
    P_USE_OB_EDGE,
    P_OB_EDGE_BPS,
    P_OB_CONFIRM,
    P_USE_LAYERS,
    P_USE_DYN_LEV,
    P_LOOKBACK,
    P_SEED,
    P_HELL,
    P_HELL_ENTRY_FILL,
    P_HELL_MAKER_EXIT_FILL,
    P_GAP_WINDOW,
    P_IRP_WINDOW,
    P_BUCKET_MIN_TRADES,
    P_DATA_END_BARS,
    N_PARAMS,
) = range(40)

# ---------------------------------------------------------------- state vector
(
    S_CAPITAL,
    S_BAR_COUNT,
    S_LAST_EXIT_BAR,
    S_HALT,
    S_POSTURE,
    S_DIRECTION,
    S_DAY_BOOST,
    S_DAY_BETA,
    S_DAY_MC_SCALE,
    S_RSM,
    S_PENDING_SUBDAY,
    S_BARS_SINCE_GAP,
    S_RNG_COUNTER,
    S_N_TRADES,
    S_TRADE_ID,
    S_POS_OPEN,
    S_POS_ASSET,
    S_POS_DIR,
    S_POS_ENTRY_PRICE,
    S_POS_NOTIONAL,
    S_POS_LEV,
    S_POS_FRACTION,
    S_POS_ENTRY_BAR,
    S_POS_ENTRY_TS,
    S_POS_BUCKET,
    S_POS_ENTRY_FEE,
    S_POS_CONF,
    S_POS_DQ,
    S_POS_FILLP,
    S_POS_POSTURE,
    S_VD_N,
    S_STREAK_N,
    S_FALLBACK_ASSET,
    S_POS_FUNDING,
) = range(34)
S_VD_RING = 34  # 16 slots of vel_div history (§6.4 trend needs 10)
VD_RING = 16
S_BUCKET_WINS = S_VD_RING + VD_RING  # 4 slots
S_BUCKET_TRADES = S_BUCKET_WINS + 4  # 4 slots
S_STREAK_RING = S_BUCKET_TRADES + 4  # 5 slots: 1.0 = loss
N_STATE = S_STREAK_RING + 5

#: Price-history ring length per asset: ≥ IRP window and ≥ DC lookback + 1.
HIST_LEN = 64
#: Column of the history array after the ring: the asset's push count at its last REAL close
#: (DESIGN.md "No price, no trade"). A bar without a real close pushes the previous price again
#: (a zero return, as the scanner counts a filled bar) and leaves this column alone, so
#: ``hist_n - hist[:, H_LAST_REAL]`` is the number of bars since the asset's last real close.
H_LAST_REAL = HIST_LEN

# OB inputs per asset and per market (Bible §9.1–§9.3).
OB_IMBALANCE, OB_PERSISTENCE, OB_WITHDRAWAL, OB_DEPTH_QUALITY, OB_FILL_PROB = range(5)
N_OB_ASSET = 5
OB_CASCADE, OB_REGIME, OB_MARKET_MULT = range(3)
N_OB_MACRO = 3

# Kernel status codes (STYLE.md §3).
STATUS_OK = 0
STATUS_TRADE_BUFFER_FULL = 1


def build_params(
    alpha: AlphaConfig, *, hell: bool = False, direction: int | None = None
) -> np.ndarray:
    """Return the float64 parameter vector of an alpha config (and the friction mode)."""
    p = np.zeros(N_PARAMS)
    if direction is not None:
        d = direction
    else:  # the config spells the direction as the lower-case enum name
        d = DIR_SHORT if alpha.direction == Direction.SHORT.name.lower() else DIR_LONG
    if d not in (DIR_SHORT, DIR_LONG):
        raise ValueError(f"direction must be -1 or +1, got {d}")
    p[P_DIRECTION] = d
    p[P_VD_THRESHOLD] = alpha.vel_div_threshold
    p[P_VD_EXTREME] = alpha.vel_div_extreme
    p[P_LONG_THRESHOLD] = alpha.long_threshold
    p[P_LONG_EXTREME] = alpha.long_extreme
    p[P_MIN_LEV] = alpha.min_leverage
    p[P_MAX_LEV] = alpha.max_leverage
    p[P_ABS_MAX_LEV] = alpha.abs_max_leverage
    p[P_STALKER_MAX_LEV] = alpha.stalker_max_leverage
    p[P_CONVEXITY] = alpha.leverage_convexity
    p[P_FRACTION] = alpha.fraction
    p[P_TP] = alpha.fixed_tp_pct
    p[P_STOP] = alpha.stop_pct
    p[P_MAX_HOLD] = alpha.max_hold_bars
    p[P_USE_DC] = alpha.use_direction_confirm
    p[P_DC_LOOKBACK] = alpha.dc_lookback_bars
    p[P_DC_MIN_BPS] = alpha.dc_min_magnitude_bps
    p[P_DC_SKIP] = alpha.dc_skip_contradicts
    p[P_DC_LEV_BOOST] = alpha.dc_leverage_boost
    p[P_USE_IRP] = alpha.use_asset_selection
    p[P_MIN_IRP_ALIGN] = alpha.min_irp_alignment
    p[P_USE_SP_FEES] = alpha.use_sp_fees
    p[P_USE_SP_SLIP] = alpha.use_sp_slippage
    p[P_MAKER_ENTRY] = alpha.sp_maker_entry_rate
    p[P_MAKER_EXIT] = alpha.sp_maker_exit_rate
    p[P_USE_OB_EDGE] = alpha.use_ob_edge
    p[P_OB_EDGE_BPS] = alpha.ob_edge_bps
    p[P_OB_CONFIRM] = alpha.ob_confirm_rate
    p[P_USE_LAYERS] = alpha.use_alpha_layers
    p[P_USE_DYN_LEV] = alpha.use_dynamic_leverage
    p[P_LOOKBACK] = alpha.lookback
    p[P_SEED] = alpha.seed
    p[P_HELL] = hell
    p[P_HELL_ENTRY_FILL] = alpha.hell_entry_fill
    p[P_HELL_MAKER_EXIT_FILL] = alpha.hell_maker_exit_fill
    p[P_GAP_WINDOW] = alpha.gap_window_bars
    p[P_IRP_WINDOW] = alpha.irp_window_bars
    p[P_BUCKET_MIN_TRADES] = alpha.bucket_min_trades
    p[P_DATA_END_BARS] = alpha.data_end_bars or alpha.max_hold_bars
    if alpha.dc_lookback_bars + 1 > HIST_LEN:
        raise ValueError(f"dc_lookback_bars must be < {HIST_LEN}, got {alpha.dc_lookback_bars}")
    if alpha.irp_window_bars > HIST_LEN:
        raise ValueError(f"irp_window_bars must be <= {HIST_LEN}, got {alpha.irp_window_bars}")
    return p


def fallback_asset(assets) -> int:
    """Return the §13.3 fallback asset's column when IRP is off: BTCUSDT, else the first."""
    assets = list(assets)
    return assets.index("BTCUSDT") if "BTCUSDT" in assets else 0


def new_state(initial_capital: float) -> np.ndarray:
    """Return a fresh state vector: flat, no position, neutral ACB day."""
    s = np.zeros(N_STATE)
    s[S_CAPITAL] = initial_capital
    s[S_LAST_EXIT_BAR] = -1.0
    s[S_DIRECTION] = DIR_SHORT
    s[S_DAY_BOOST] = 1.0
    s[S_DAY_MC_SCALE] = 1.0
    s[S_RSM] = 1.0
    s[S_BARS_SINCE_GAP] = 1e9
    return s


def new_histories(n_assets: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the per-asset price ring buffers (plus the ``H_LAST_REAL`` column) and counts."""
    hist = np.full((n_assets, HIST_LEN + 1), np.nan)
    hist[:, H_LAST_REAL] = 0.0
    return hist, np.zeros(n_assets, dtype=np.int64)
