"""The one risk gate between every engine decision and every order (replay, Nautilus, paper).

The kernel decides an entry (asset, side, notional). Before it becomes a position (replay) or an
order (Nautilus, paper) the gate judges it, denying when anything is unknown (STYLE.md §9):

1. the survival controller's Rm, on paths that run one (``rm=None`` says the path has none, as
   in a research replay; a NaN, infinite or out-of-range Rm is unknown and denies);
2. the ordered pre-trade pipeline of ``risk.pretrade``: unknown inputs, the posture (TURTLE and
   HIBERNATE allow reductions only, Bible §11.7; an unknown posture denies), the order rate over
   the trailing minute (entries and exits count), order notional, position and gross leverage.

A refused entry is undone by the engine (the bar runs as if entries were blocked) and kept as a
``DENIAL_DTYPE`` record with its reason and values (``denials.parquet`` in a replay, a DENIED
line in the live trade log). Exits are never gated: a position can always be closed.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dolphin.core.config import PreTradeConfig
from dolphin.core.enums import Direction
from dolphin.core.records import DENIAL_DTYPE, DENIAL_REASONS, POSTURES
from dolphin.risk.pretrade import Denial, OrderIntent, RiskContext, Verdict, pre_trade

_NS_PER_MIN = 60_000_000_000
_NO_DENIALS = np.zeros(0, dtype=DENIAL_DTYPE)  # read-only: what a bar without denials returns
_NO_DENIALS.flags.writeable = False


@dataclass(frozen=True)
class EntryRequest:
    """An entry the engine decided on bar ``bar``: what the gate judges."""

    ts_ns: int
    bar: int
    asset: int
    asset_name: str
    direction: int
    notional: float
    equity: float
    positions: Mapping[str, float]


class RiskGate:
    """Judge entries; keep the order-rate window and the denial records."""

    def __init__(self, limits: PreTradeConfig | None = None) -> None:
        self.limits = limits or PreTradeConfig()
        self._orders: deque[int] = deque()
        self._denials: list[tuple] = []

    # ------------------------------------------------------------ orders
    def note_order(self, ts_ns: int) -> None:
        """Count an order sent at ``ts_ns`` (entries and exits) for the order-rate check."""
        self._orders.append(int(ts_ns))

    def recent_orders(self, ts_ns: int) -> tuple[int, ...]:
        """Return the order times of the trailing minute before ``ts_ns``."""
        while self._orders and self._orders[0] <= ts_ns - _NS_PER_MIN:
            self._orders.popleft()
        return tuple(self._orders)

    def snapshot(self) -> tuple:
        """Return the gate's mutable state (to rerun a span of bars exactly)."""
        return tuple(self._orders), len(self._denials)

    def restore(self, snap: tuple) -> None:
        """Return to a ``snapshot``."""
        self._orders = deque(snap[0])
        del self._denials[snap[1]:]

    # ------------------------------------------------------------ the judgement
    def judge(self, req: EntryRequest, posture: str, rm: float | None) -> Verdict:
        """Return the verdict on ``req`` in ``posture`` with survival ``rm``; record a denial."""
        if rm is not None and not (math.isfinite(rm) and 0.0 <= rm <= 1.0):
            verdict = Verdict(Denial.UNKNOWN_INPUT, f"survival Rm {rm!r} unknown")
        else:
            ctx = RiskContext(req.ts_ns, posture, req.equity, dict(req.positions),
                              self.recent_orders(req.ts_ns))
            verdict = pre_trade(OrderIntent(req.asset_name, req.direction, req.notional), ctx,
                                self.limits)
        if verdict.denial is not None:
            self._denials.append((
                req.ts_ns, req.bar, req.asset, req.direction,
                DENIAL_REASONS.index(verdict.denial.value),
                POSTURES.index(posture) if posture in POSTURES else -1,
                req.notional, req.equity, math.nan if rm is None else rm,
            ))  # fmt: skip
        return verdict

    # ------------------------------------------------------------ output
    @property
    def n_denials(self) -> int:
        """Number of denials recorded."""
        return len(self._denials)

    def denials(self) -> np.ndarray:
        """Return every denial as ``DENIAL_DTYPE`` records, in order."""
        return np.array(self._denials, dtype=DENIAL_DTYPE)

    def take_denials(self, since: int) -> np.ndarray:
        """Return the denials recorded after the first ``since`` ones."""
        if since >= len(self._denials):
            return _NO_DENIALS
        return np.array(self._denials[since:], dtype=DENIAL_DTYPE)


def entry_requests(rec: np.ndarray, ts_of_bar, assets: Sequence[str]) -> list[EntryRequest]:
    """Return the entries of closed trades ``rec`` as the gate saw them: flat book, equity the
    capital before the trade (one position at a time: capital_after − pnl)."""
    out = []
    for t in rec:
        a, bar = int(t["asset"]), int(t["entry_bar"])
        out.append(EntryRequest(
            ts_ns=int(ts_of_bar(bar)), bar=bar, asset=a, asset_name=assets[a],
            direction=int(t["direction"]), notional=float(t["notional"]),
            equity=float(t["capital_after"] - t["pnl"]), positions={},
        ))  # fmt: skip
    return out


def audit(
    gate: RiskGate,
    entries: Sequence[EntryRequest],
    exits: Sequence[tuple[int, int]],
    posture: str,
    rm: float | None,
) -> bool:
    """Judge ``entries`` in time order with ``exits`` (bar, ts) counted as orders; True when all
    pass. A denial restores the gate (the caller reruns the span bar by bar, exactly)."""
    snap = gate.snapshot()
    events = [(e.bar, 1, e.ts_ns, e) for e in entries] + [(b, 0, ts, None) for b, ts in exits]
    for _bar, _kind, ts, req in sorted(events, key=lambda e: (e[0], e[1])):
        if req is not None and not gate.judge(req, posture, rm).allowed:
            gate.restore(snap)
            return False
        gate.note_order(ts)
    return True


def flat_entries_pass(
    notional: np.ndarray,
    equity: np.ndarray,
    entry_ts: np.ndarray,
    exit_ts: np.ndarray,
    limits: PreTradeConfig,
) -> bool:
    """Return ``audit``'s answer, vectorised, for one run's closed trades in APEX with no Rm.

    The sweep's columns trade one position at a time from a flat book, so every check of the
    pipeline reduces to arithmetic on the trade arrays (trade k's orders: entry then exit):
    known inputs (finite notional and equity > 0), the order rate (orders of earlier trades
    within the trailing minute of the entry, the gate's window), the order notional, the
    position (the order itself) and the gross leverage (notional / equity). A test checks it
    against ``audit`` with a real ``RiskGate``.
    """
    n = len(notional)
    if n == 0:
        return True
    notional = np.asarray(notional, dtype=np.float64)
    equity = np.asarray(equity, dtype=np.float64)
    if not (np.isfinite(notional).all() and (notional > 0).all()
            and np.isfinite(equity).all() and (equity > 0).all()):
        return False
    if (notional > limits.max_order_notional).any() or (
            notional > limits.max_position_notional).any():
        return False
    if (notional / equity > limits.max_gross_leverage).any():
        return False
    orders = np.empty(2 * n, dtype=np.int64)
    orders[0::2], orders[1::2] = entry_ts, exit_ts
    k = np.arange(n)
    # orders before entry k are orders[:2k]; the window keeps those after entry - 1 min
    since = np.searchsorted(orders, np.asarray(entry_ts, np.int64) - _NS_PER_MIN, side="right")
    in_window = 2 * k - np.minimum(since, 2 * k)
    return bool((in_window < limits.max_orders_per_min).all())


def denial_frame(rec: np.ndarray, assets: Sequence[str]) -> pd.DataFrame:
    """Return denial records as the ``denials.parquet`` table (text columns decoded)."""
    return pd.DataFrame({
        "time": pd.to_datetime(rec["ts"].astype(np.int64), utc=True),
        "bar": rec["bar"].astype(np.int64),
        "asset": [assets[int(a)] for a in rec["asset"]],
        "direction": np.where(rec["direction"] < 0, Direction.SHORT.name, Direction.LONG.name),
        "reason": [DENIAL_REASONS[int(r)] for r in rec["reason"]],
        "posture": [POSTURES[int(p)] if p >= 0 else "UNKNOWN" for p in rec["posture"]],
        "notional": rec["notional"].astype(np.float64),
        "equity": rec["equity"].astype(np.float64),
        "rm": rec["rm"].astype(np.float64),
    })
