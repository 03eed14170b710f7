"""Independent session logging (Bible §8.4): settings JSON + trades CSV, and round-trip pairing.

The logger sees only fills, never the engine's own bookkeeping, so its CSV is an independent
record of what the venue did. Every CSV line is written with one ``os.write`` on an ``O_APPEND``
descriptor and fsynced before ``log`` returns (fills are rare, so one fsync per fill costs nothing
that matters, and a logged fill survives a power loss); a short write raises. A line torn by a
crash (power loss mid-write) is cut off when the file is opened again, so the file only ever
holds whole lines. The settings file is written to a temp file and renamed. ``RoundTrips`` pairs
entry and exit fills into trades (qty-weighted average prices, commissions summed) for the
backtest output and the parity report.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dolphin.core.io import atomic_write_text
from dolphin.core.records import FILL_DTYPE

TRADE_FIELDS = (
    "ts_ns", "ts_wall_ns", "event", "asset", "side", "qty", "price", "commission", "order_id",
    "reason",
)


@dataclass
class RoundTrip:
    """One position from entry fills to exit fills, as the venue filled it."""

    asset: str
    direction: int
    entry_ts_ns: int
    qty: float = 0.0
    entry_cost: float = 0.0
    exit_qty: float = 0.0
    exit_cost: float = 0.0
    entry_fee: float = 0.0
    exit_fee: float = 0.0
    exit_ts_ns: int = 0
    entry_bar: int = -1
    exit_bar: int = -1
    reason: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def entry_price(self) -> float:
        """Quantity-weighted entry price."""
        return self.entry_cost / self.qty if self.qty else float("nan")

    @property
    def exit_price(self) -> float:
        """Quantity-weighted exit price."""
        return self.exit_cost / self.exit_qty if self.exit_qty else float("nan")

    @property
    def closed(self) -> bool:
        """True once the exit fills cover the entry quantity."""
        return self.exit_qty > 0 and self.exit_qty >= self.qty * (1 - 1e-12)

    @property
    def pnl(self) -> float:
        """Net PnL: direction × (exit value − entry value) less both commissions."""
        return self.direction * (self.exit_cost - self.entry_cost) - self.entry_fee - self.exit_fee


class RoundTrips:
    """Pair fills into round trips: fills that grow the open trip are entries, others exits."""

    def __init__(self) -> None:
        self.open: dict[str, RoundTrip] = {}
        self.done: list[RoundTrip] = []
        self._fills: list[tuple] = []  # FILL_DTYPE rows, asset by name until ``fills``

    def on_fill(self, asset: str, side: int, qty: float, price: float, commission: float,
                ts_ns: int, bar: int = -1, reason: str = "") -> RoundTrip | None:
        """Record a fill (``side`` +1 buy, −1 sell); return the trip it completes, if any."""
        trip = self.open.get(asset)
        if trip is None:
            trip = self.open[asset] = RoundTrip(asset, side, ts_ns, entry_bar=bar)
        self._fills.append((int(ts_ns), int(bar), len(self.done), asset, int(side), float(qty),
                            float(price), float(commission)))
        if side == trip.direction:
            trip.qty += qty
            trip.entry_cost += qty * price
            trip.entry_fee += commission
            return None
        trip.exit_qty += qty
        trip.exit_cost += qty * price
        trip.exit_fee += commission
        trip.exit_ts_ns, trip.exit_bar, trip.reason = ts_ns, bar, reason or trip.reason
        if not trip.closed:
            return None
        del self.open[asset]
        self.done.append(trip)
        return trip

    def fills(self, assets: list[str]) -> np.ndarray:
        """Return every fill so far as ``FILL_DTYPE`` records (``asset``: index in ``assets``)."""
        index = {a: i for i, a in enumerate(assets)}
        rows = [(t, b, k, index[a], side, q, p, c) for t, b, k, a, side, q, p, c in self._fills]
        return np.array(rows, dtype=FILL_DTYPE)

    def unrealized(self, asset: str, price: float) -> float:
        """Return the open trip's unrealised PnL at ``price`` (0 when flat)."""
        trip = self.open.get(asset)
        if trip is None:
            return 0.0
        return trip.direction * trip.qty * price - trip.direction * trip.entry_cost

    def records(self) -> list[dict[str, Any]]:
        """Return the closed trips as plain dicts (for a DataFrame)."""
        out = []
        for t in self.done:
            row = asdict(t)
            row.update(entry_price=t.entry_price, exit_price=t.exit_price, pnl=t.pnl)
            out.append(row)
        return out


def _cut_torn_line(path: Path) -> int:
    """Truncate ``path`` after its last newline when a crash left a partial last line; return
    the size kept (0 when the file is missing)."""
    if not path.exists():
        return 0
    with path.open("rb+") as fh:
        size = fh.seek(0, os.SEEK_END)
        block = min(size, 1 << 16)
        fh.seek(size - block)
        tail = fh.read(block)
        if not tail or tail.endswith(b"\n"):
            return size
        cut = tail.rfind(b"\n")
        if cut < 0 and block < size:
            return size  # no line end in the last 64 KiB: not a torn CSV line, leave it alone
        keep = size - block + cut + 1
        fh.truncate(keep)
        os.fsync(fh.fileno())
        return keep


def session_name(now_ns: int | None = None) -> str:
    """Return a session name no other session shares: UTC start time to the microsecond,
    process id and 32 random bits (two sessions started in the same second differ)."""
    ns = time.time_ns() if now_ns is None else now_ns
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(ns // 1_000_000_000))
    return f"{stamp}.{ns // 1000 % 1_000_000:06d}Z-{os.getpid()}-{os.urandom(4).hex()}"


class TradeLogger:
    """``settings_<session>.json`` once, then one ``trades_<session>.csv`` line per fill.

    ``ts_ns`` is the event's time on the session's clock (a replayed session: the bar's time),
    ``ts_wall_ns`` the wall time the line was written.
    """

    def __init__(self, folder: str | Path, settings: dict[str, Any],
                 session: str | None = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.session = session or session_name()
        self.settings_path = self.folder / f"settings_{self.session}.json"
        self.trades_path = self.folder / f"trades_{self.session}.csv"
        atomic_write_text(self.settings_path, json.dumps(settings, indent=2, sort_keys=True,
                                                         default=str) + "\n")
        fresh = _cut_torn_line(self.trades_path) == 0
        self._fd = os.open(self.trades_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if fresh:
            self._append(TRADE_FIELDS)
        self.rows = 0

    def _append(self, values: tuple[Any, ...]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerow(values)
        data = buf.getvalue().encode()
        written = os.write(self._fd, data)  # one write per line: atomic on O_APPEND
        if written != len(data):
            raise OSError(f"{self.trades_path}: short write ({written} of {len(data)} bytes)")
        os.fsync(self._fd)

    def log(self, **row: Any) -> None:
        """Append one event (keys of ``TRADE_FIELDS``; missing ones are blank)."""
        unknown = set(row) - set(TRADE_FIELDS)
        if unknown:
            raise ValueError(f"unknown trade log fields {sorted(unknown)}")
        row.setdefault("ts_wall_ns", time.time_ns())
        self._append(tuple(row.get(k, "") for k in TRADE_FIELDS))
        self.rows += 1

    def close(self) -> None:
        """Flush to disk and close the CSV. Idempotent."""
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
