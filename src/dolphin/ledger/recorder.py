"""What a trading session writes to the ledger, one method per event kind (``chain.KINDS``).

The strategy calls these as events happen; each is one durable append (``Ledger.append``), so an
ORDER row is on disk before the order is sent. ``ts_event`` is the event's own time (the scan's
bar close, the fill's venue time); the ledger adds the wall time it was written.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dolphin.core.records import DENIAL_REASONS, POSTURES
from dolphin.ledger.chain import Ledger


class SessionRecorder:
    """Append a session's config, decisions, denials, orders, fills, funding, capital, postures."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._posture: str | None = None

    def config(self, ts_ns: int, config_id: str, venue_config_id: str,
               assets: Sequence[str]) -> None:
        """Record the session's config ids and universe (the first row of a session)."""
        self.ledger.append("CONFIG", {"config_id": config_id, "venue_config_id": venue_config_id,
                                      "assets": list(assets)}, ts_ns)

    def posture(self, ts_ns: int, posture: str) -> None:
        """Record the posture when it changes."""
        if posture != self._posture:
            self.ledger.append("POSTURE", {"posture": posture}, ts_ns)
            self._posture = posture

    def denials(self, rec: np.ndarray, assets: Sequence[str]) -> None:
        """Record each entry the risk gate refused (``DENIAL_DTYPE`` records)."""
        for d in rec:
            self.ledger.append("DENIAL", {
                "bar": int(d["bar"]), "asset": assets[int(d["asset"])],
                "direction": int(d["direction"]), "reason": DENIAL_REASONS[int(d["reason"])],
                "posture": POSTURES[int(d["posture"])] if d["posture"] >= 0 else "UNKNOWN",
                "notional": float(d["notional"]), "equity": float(d["equity"]),
            }, int(d["ts"]))  # fmt: skip

    def order(self, ts_ns: int, action: str, asset: str, direction: int, notional: float,
              reason: str = "") -> None:
        """Record an order the engine decided, before it is sent."""
        self.ledger.append("ORDER", {"action": action, "asset": asset, "direction": direction,
                                     "notional": float(notional), "reason": reason}, ts_ns)

    def fill(self, ts_ns: int, asset: str, side: int, qty: float, price: float,
             commission: float, order_id: str) -> None:
        """Record a venue fill."""
        self.ledger.append("FILL", {"asset": asset, "side": side, "qty": float(qty),
                                    "price": float(price), "commission": float(commission),
                                    "order_id": order_id}, ts_ns)

    def funding(self, ts_ns: int, paid: float) -> None:
        """Record a funding payment the position made (negative: received)."""
        self.ledger.append("FUNDING", {"paid": float(paid)}, ts_ns)

    def capital(self, ts_ns: int, balance: float) -> None:
        """Record the account balance after a position closed."""
        self.ledger.append("CAPITAL", {"balance": float(balance)}, ts_ns)
