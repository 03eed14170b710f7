"""The state a ledger implies, folded row by row: what the store's trader views show (Bible §15).

``LedgerView.apply`` folds one row; ``LedgerView.rebuild`` folds a whole ledger. The trader keeps
one view current as it appends and writes ``state()`` to ``DOLPHIN_STATE_BLUE["latest"]`` and
``day(date)`` to ``DOLPHIN_PNL_BLUE[date]``; a trader starting over the same ledger rebuilds the
same view, so the store is never the source of truth.

What the fold knows:

- capital: the last CAPITAL balance (the venue's account after a position closed), or the
  session's ``initial_capital`` from CONFIG; peak and drawdown from it;
- ``balance``: what the venue's account balance must be now, i.e. capital less the commissions
  of the fills since (an open position's entry fees), which is what reconciliation compares;
- positions: net signed quantity per asset from FILL rows, with the quantity-weighted entry;
- the day's realised PnL (CAPITAL deltas) and funding, trades closed, the loss streak.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dolphin.ledger.chain import GENESIS, Row

#: A net quantity below this (relative to the traded quantity) is flat.
FLAT_REL = 1e-9


def utc_day(ts_ns: int) -> str:
    """Return the UTC date of ``ts_ns`` as ``YYYY-MM-DD``."""
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).strftime("%Y-%m-%d")


@dataclass
class Position:
    """A net position on one asset as the fills built it."""

    qty: float = 0.0  # signed: < 0 short
    cost: float = 0.0  # signed qty x entry price, summed over the entry fills
    gross: float = 0.0  # total quantity traded on it (for the flat tolerance)

    @property
    def entry_price(self) -> float:
        """Quantity-weighted entry price of the open quantity."""
        return self.cost / self.qty if self.qty else float("nan")


@dataclass
class DayPnl:
    """One UTC day of the ledger."""

    pnl: float = 0.0
    funding: float = 0.0
    trades: int = 0
    capital: float = float("nan")


@dataclass
class LedgerView:
    """Fold ledger rows into the trader's state."""

    config_id: str = ""
    capital: float = float("nan")
    peak: float = float("nan")
    balance: float = float("nan")
    posture: str = "UNKNOWN"
    positions: dict[str, Position] = field(default_factory=dict)
    days: dict[str, DayPnl] = field(default_factory=dict)
    trades: int = 0
    loss_streak: int = 0
    orders: int = 0
    fills: int = 0
    denials: int = 0
    decisions: int = 0
    sessions: int = 0
    funding_paid: float = 0.0
    last_event_ns: int = 0
    last_bar_ns: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS

    @classmethod
    def rebuild(cls, rows: Iterable[Row]) -> LedgerView:
        """Return the view of ``rows`` folded in order."""
        view = cls()
        for row in rows:
            view.apply(row)
        return view

    @property
    def drawdown(self) -> float:
        """Fractional drawdown of capital from its peak (0 at a new high)."""
        if not self.peak > 0:
            return 0.0
        return max(0.0, 1.0 - self.capital / self.peak)

    def _day(self, ts_ns: int) -> DayPnl:
        return self.days.setdefault(utc_day(ts_ns), DayPnl())

    def apply(self, row: Row) -> str | None:
        """Fold one row; return the UTC day whose PnL it changed (None when none did)."""
        if row.seq > self.head_seq:  # a rerun folds old rows after this start's SESSION row
            self.head_seq, self.head_hash = row.seq, row.hash
        self.last_event_ns = max(self.last_event_ns, row.ts_event)
        counter = _COUNTERS.get(row.kind)
        if counter is not None:
            setattr(self, counter, getattr(self, counter) + 1)
        fold = _FOLDS.get(row.kind)
        return fold(self, row) if fold is not None else None

    def _on_config(self, row: Row) -> None:
        b = row.body
        self.config_id = str(b.get("config_id", ""))
        if self.capital != self.capital and "initial_capital" in b:  # the first CONFIG only
            self.capital = self.peak = self.balance = float(b["initial_capital"])

    def _on_capital(self, row: Row) -> str:
        new = float(row.body["balance"])
        day = self._day(row.ts_event)
        if self.capital == self.capital:
            delta = new - self.capital
            day.pnl += delta
            self.loss_streak = self.loss_streak + 1 if delta < 0 else 0
        self.trades += 1
        day.trades += 1
        day.capital = self.capital = self.balance = new
        self.peak = new if not self.peak >= new else self.peak
        return utc_day(row.ts_event)

    def _on_fill(self, row: Row) -> None:
        b = row.body
        self._fill(str(b["asset"]), int(b["side"]), float(b["qty"]), float(b["price"]))
        self.balance -= float(b.get("commission", 0.0))

    def _on_funding(self, row: Row) -> str:
        paid = float(row.body["paid"])
        self.funding_paid += paid
        self._day(row.ts_event).funding += paid
        return utc_day(row.ts_event)

    def _on_posture(self, row: Row) -> None:
        self.posture = str(row.body["posture"])

    def _on_decision(self, row: Row) -> None:
        self.last_bar_ns = row.ts_event

    def _fill(self, asset: str, side: int, qty: float, price: float) -> None:
        pos = self.positions.setdefault(asset, Position())
        signed = side * qty
        pos.gross += qty
        if pos.qty == 0 or (pos.qty > 0) == (signed > 0):  # opening or adding
            pos.qty += signed
            pos.cost += signed * price
        else:  # reducing: the entry price of what is left does not change
            left = pos.qty + signed
            pos.cost = pos.entry_price * left if abs(left) > FLAT_REL * pos.gross else 0.0
            pos.qty = left
        if abs(pos.qty) <= FLAT_REL * pos.gross:
            del self.positions[asset]

    def net_positions(self) -> dict[str, float]:
        """Return the open positions as ``{asset: signed quantity}``."""
        return {a: p.qty for a, p in sorted(self.positions.items())}

    def state(self) -> dict[str, Any]:
        """Return ``DOLPHIN_STATE_BLUE["latest"]``'s payload (finite JSON values only)."""

        def num(x: float) -> float | None:
            return x if x == x and abs(x) != float("inf") else None

        return {
            "config_id": self.config_id,
            "capital": num(self.capital),
            "peak": num(self.peak),
            "drawdown": num(self.drawdown),
            "balance": num(self.balance),
            "posture": self.posture,
            "positions": {a: {"qty": p.qty, "entry_price": num(p.entry_price)}
                          for a, p in sorted(self.positions.items())},
            "trades": self.trades,
            "loss_streak": self.loss_streak,
            "orders": self.orders,
            "fills": self.fills,
            "denials": self.denials,
            "decisions": self.decisions,
            "sessions": self.sessions,
            "funding_paid": self.funding_paid,
            "last_event_ns": self.last_event_ns,
            "last_bar_ns": self.last_bar_ns,
            "ledger_head_seq": self.head_seq,
            "ledger_head_hash": self.head_hash,
        }

    def day(self, date: str) -> dict[str, Any]:
        """Return ``DOLPHIN_PNL_BLUE[date]``'s payload."""
        d = self.days.get(date, DayPnl())
        return {"date": date, "pnl": d.pnl, "funding": d.funding, "trades": d.trades,
                "capital": d.capital if d.capital == d.capital else None}


#: Rows that only count: kind -> the counter they add one to.
_COUNTERS = {"ORDER": "orders", "FILL": "fills", "DENIAL": "denials", "DECISION": "decisions",
             "SESSION": "sessions"}
#: Rows that change the state: kind -> the method folding them.
_FOLDS = {"CONFIG": LedgerView._on_config, "CAPITAL": LedgerView._on_capital,
          "FILL": LedgerView._on_fill, "FUNDING": LedgerView._on_funding,
          "POSTURE": LedgerView._on_posture, "DECISION": LedgerView._on_decision}
