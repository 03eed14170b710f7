"""Record dtypes shared by every driver (sweep, replay, live) and their code tables.

Trades are numpy structured arrays (STYLE.md §4): the numba step kernel writes them in place, the
replay turns them into ``trades.parquet`` at the reporting edge, the live path into store values.
Timestamps are int64 nanoseconds UTC; assets are column indices into the scan's asset list.
"""

from __future__ import annotations

import numpy as np

# The code tables live in ``core.enums`` (STYLE.md §17); re-exported here, beside the records
# whose int8 fields hold them. Exit reasons: Bible §7.1, §7.3, §11.7; postures: §11.5, §11.7;
# signal buckets: §6.3.
from dolphin.core.enums import (
    BUCKETS,
    EXIT_DATA_END,
    EXIT_END_OF_DATA,
    EXIT_FIXED_TP,
    EXIT_HIBERNATE_HALT,
    EXIT_MAX_HOLD,
    EXIT_REASONS,
    EXIT_STOP_LOSS,
    EXIT_SUBDAY_ACB,
    POSTURE_APEX,
    POSTURE_HIBERNATE,
    POSTURE_STALKER,
    POSTURE_TURTLE,
    POSTURES,
)

__all__ = [
    "BUCKETS",
    "EXIT_DATA_END",
    "EXIT_END_OF_DATA",
    "EXIT_FIXED_TP",
    "EXIT_HIBERNATE_HALT",
    "EXIT_MAX_HOLD",
    "EXIT_REASONS",
    "EXIT_STOP_LOSS",
    "EXIT_SUBDAY_ACB",
    "POSTURES",
    "POSTURE_APEX",
    "POSTURE_HIBERNATE",
    "POSTURE_STALKER",
    "POSTURE_TURTLE",
    "TRADE_DTYPE",
    "empty_trades",
]

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


#: Why the risk gate refused an entry (``risk.pretrade.Denial`` values, in this order).
DENIAL_REASONS = (
    "unknown_input",
    "reduce_only",
    "order_rate",
    "max_order_notional",
    "max_position",
    "max_leverage",
)

#: One refused entry: what the engine decided and why the gate said no (``risk.gate``).
DENIAL_DTYPE = np.dtype(
    [
        ("ts", np.int64),
        ("bar", np.int64),
        ("asset", np.int32),
        ("direction", np.int8),
        ("reason", np.int8),
        ("posture", np.int8),
        ("notional", np.float64),
        ("equity", np.float64),
        ("rm", np.float64),
    ],
    align=False,
)


#: One fill from a venue (Nautilus backtest, paper, the parity driver); ``asset`` indexes the
#: run's asset list, ``side`` is +1 buy / −1 sell, ``trip`` the round trip it belongs to.
FILL_DTYPE = np.dtype(
    [
        ("ts", np.int64),
        ("bar", np.int64),
        ("trip", np.int64),
        ("asset", np.int32),
        ("side", np.int8),
        ("qty", np.float64),
        ("price", np.float64),
        ("commission", np.float64),
    ],
    align=False,
)
