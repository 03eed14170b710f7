"""Record dtypes shared by every driver (sweep, replay, live) and their code tables.

Trades are numpy structured arrays (STYLE.md §4): the numba step kernel writes them in place, the
replay turns them into ``trades.parquet`` at the reporting edge, the live path into store values.
Timestamps are int64 nanoseconds UTC; assets are column indices into the scan's asset list.
"""

from __future__ import annotations

import numpy as np

#: Exit reasons (Bible §7.1, §7.3, §11.7). The integer is what the kernels write.
EXIT_FIXED_TP = 0
EXIT_STOP_LOSS = 1
EXIT_MAX_HOLD = 2
EXIT_HIBERNATE_HALT = 3
EXIT_SUBDAY_ACB = 4
EXIT_END_OF_DATA = 5
#: DESIGN.md "No price, no trade": the held asset had no real close for ``data_end_bars`` bars.
EXIT_DATA_END = 6
EXIT_REASONS = (
    "FIXED_TP",
    "STOP_LOSS",
    "MAX_HOLD",
    "HIBERNATE_HALT",
    "SUBDAY_ACB_NORMALIZATION",
    "END_OF_DATA",
    "DATA_END",
)

#: Postures (Bible §11.5, §11.7).
POSTURE_APEX = 0
POSTURE_STALKER = 1
POSTURE_TURTLE = 2
POSTURE_HIBERNATE = 3
POSTURES = ("APEX", "STALKER", "TURTLE", "HIBERNATE")

#: Signal buckets (Bible §6.3).
BUCKETS = ("extreme", "strong", "moderate", "weak")

TRADE_DTYPE = np.dtype(
    [
        ("trade_id", np.int64),
        ("entry_ts", np.int64),
        ("exit_ts", np.int64),
        ("entry_bar", np.int64),
        ("exit_bar", np.int64),
        ("asset", np.int32),
        ("direction", np.int8),
        ("exit_reason", np.int8),
        ("bucket", np.int8),
        ("posture", np.int8),
        ("entry_price", np.float64),
        ("exit_price", np.float64),
        ("notional", np.float64),
        ("leverage", np.float64),
        ("fraction", np.float64),
        ("confidence", np.float64),
        ("entry_fee", np.float64),
        ("exit_fee", np.float64),
        ("ob_edge_pct", np.float64),
        ("funding", np.float64),
        ("pnl_pct", np.float64),
        ("pnl", np.float64),
        ("capital_after", np.float64),
    ],
    align=False,
)


def empty_trades(capacity: int) -> np.ndarray:
    """Preallocate a zeroed trade buffer of ``capacity`` records."""
    return np.zeros(max(int(capacity), 1), dtype=TRADE_DTYPE)
