"""``BarBuilder``: live trades or exchange klines -> one cross-sectional bar set per interval.

Pure (no I/O, no clock of its own): the caller hands it market data and, for the wall-clock
deadline, the time (``flush(now_ns)``). Every interval is a fixed number of whole seconds,
anchored at the epoch like Binance klines, and labelled by its OPEN time (DESIGN.md "Data
contracts": bar timestamps are open times).

An interval is emitted only once it is known complete, never earlier:

- trades: a trade at or after the next interval's open arrives (any symbol);
- klines: every symbol of the set has sent its closed kline, or a closed kline of a later
  interval arrives;
- either source: ``flush(now_ns)`` with ``now_ns >= interval end + grace``.

Emission is gapless: when time jumps several intervals (an exchange outage), each missed
interval is emitted, every symbol in it carried. A carried bar repeats the symbol's previous
close with volume 0 and ``filled=True``; a symbol never seen has no bar at all. The carry here
is unlimited: the scanner's fill limit decides how long a carried asset stays in its universe,
exactly as the batch loader's fill does for a bar absent from a file.

Data for an interval already emitted (a late trade, an out-of-order kline) is counted in
``late_dropped`` and dropped; a symbol outside the set is counted in ``unknown_dropped``.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from typing import NamedTuple

from dolphin.core.clock import NS_PER_SECOND
from dolphin.core.errors import (
    BadInputError,
    BadPriceError,
    BadVolumeError,
    ConfigError,
    InconsistentPriceError,
)

#: Default bar of each source: the champion's 5 s bars from trades, Binance's 1 m klines.
DEFAULT_TRADE_INTERVAL_S = 5
DEFAULT_KLINE_INTERVAL_S = 60
#: How long past an interval's end ``flush`` waits for stragglers before emitting it.
DEFAULT_GRACE_S = 2.0


class BarSource(enum.Enum):
    """What a ``BarBuilder`` builds its bars from (a wiring choice, not a domain state)."""

    TRADES = "trades"
    KLINES = "klines"


class Kline(NamedTuple):
    """One exchange candle as the adapter hands it over (prices as floats, times in ns)."""

    symbol: str
    open_ts_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    closed: bool


class Bar(NamedTuple):
    """One symbol's bar in one interval; a carried bar has o=h=l=c=previous close, volume 0."""

    open: float
    high: float
    low: float
    close: float
    volume: float
    filled: bool


class BarSet(NamedTuple):
    """One interval across the symbol set: ``(open_ts_ns, {symbol: close}, {symbol: filled})``.

    ``bars`` holds the same symbols with their OHLCV (what a recorder writes). A symbol never
    seen is absent from all three.
    """

    open_ts_ns: int
    closes: dict[str, float]
    filled: dict[str, bool]
    bars: dict[str, Bar]


def _positive(value: float, symbol: str, field: str) -> float:
    """Return ``value`` as a float, or raise BadPriceError when it is not finite and > 0."""
    p = float(value)
    if not (math.isfinite(p) and p > 0):
        raise BadPriceError("price must be positive and finite", source="market data",
                            field=f"{symbol}.{field}", value=p)
    return p


def _volume(value: float, symbol: str) -> float:
    """Return ``value`` as a float, or raise BadVolumeError when it is not finite and >= 0."""
    v = float(value)
    if not (math.isfinite(v) and v >= 0):
        raise BadVolumeError("volume must be finite and >= 0", source="market data",
                             field=f"{symbol}.volume", value=v)
    return v


def _kline_bar(kline: Kline) -> list[float]:
    """Return ``[o, h, l, c, v]`` of a kline, checked the way the bar loader checks a file."""
    sym = kline.symbol
    o, h = _positive(kline.open, sym, "open"), _positive(kline.high, sym, "high")
    lo, c = _positive(kline.low, sym, "low"), _positive(kline.close, sym, "close")
    if not lo <= min(o, c) <= max(o, c) <= h:
        raise InconsistentPriceError("kline prices contradict each other (need low <= open, "
                                     "close <= high)", source="market data", field=sym,
                                     value=(o, h, lo, c))
    return [o, h, lo, c, _volume(kline.volume, sym)]


class BarBuilder:
    """Build gapless fixed-interval bar sets for one symbol set (module docstring)."""

    def __init__(
        self,
        symbols: Iterable[str],
        *,
        source: BarSource = BarSource.TRADES,
        interval_s: int | None = None,
        grace_s: float = DEFAULT_GRACE_S,
    ) -> None:
        self.symbols = tuple(symbols)
        if not self.symbols or len(set(self.symbols)) != len(self.symbols):
            raise ConfigError(f"bar builder needs distinct symbols, got {self.symbols!r}")
        if interval_s is None:
            interval_s = (DEFAULT_TRADE_INTERVAL_S if source is BarSource.TRADES
                          else DEFAULT_KLINE_INTERVAL_S)
        if not isinstance(interval_s, int) or isinstance(interval_s, bool) or interval_s < 1:
            raise ConfigError("bar interval must be a whole number of seconds >= 1, "
                              f"got {interval_s!r}")
        if not (math.isfinite(grace_s) and grace_s >= 0):
            raise ConfigError(f"bar grace must be finite seconds >= 0, got {grace_s!r}")
        self.source = source
        self.interval_s = interval_s
        self.step_ns = interval_s * NS_PER_SECOND
        self.grace_ns = round(grace_s * NS_PER_SECOND)
        self._known = frozenset(self.symbols)
        self._open: int | None = None  # open time of the earliest interval not yet emitted
        self._building: dict[str, list[float]] = {}  # symbol -> [o, h, l, c, v] of that interval
        self._last_close: dict[str, float] = {}
        self.late_dropped = 0
        self.unknown_dropped = 0
        self.emitted = 0

    @property
    def pending_open_ns(self) -> int | None:
        """Return the open time of the interval being built (None before any data)."""
        return self._open

    def on_trade(self, symbol: str, ts_ns: int, price: float, qty: float) -> list[BarSet]:
        """Add one trade; return the bar sets it completes (oldest first)."""
        self._require(BarSource.TRADES)
        if symbol not in self._known:
            self.unknown_dropped += 1
            return []
        p, q = _positive(price, symbol, "price"), _volume(qty, symbol)
        start = ts_ns - ts_ns % self.step_ns
        if self._open is not None and start < self._open:
            self.late_dropped += 1
            return []
        done = self._advance_to(start)
        acc = self._building.get(symbol)
        if acc is None:
            self._building[symbol] = [p, p, p, p, q]
        else:
            acc[1] = max(acc[1], p)
            acc[2] = min(acc[2], p)
            acc[3] = p
            acc[4] += q
        return done

    def on_kline(self, kline: Kline) -> list[BarSet]:
        """Take one kline; return the bar sets it completes.

        An unclosed kline is ignored; a closed one repeated before its interval is emitted
        replaces the first (the exchange's last word), after it is late.
        """
        self._require(BarSource.KLINES)
        sym = kline.symbol
        if sym not in self._known:
            self.unknown_dropped += 1
            return []
        if not kline.closed:
            return []
        start = kline.open_ts_ns
        if start % self.step_ns:
            raise BadInputError(f"kline open is not on the {self.interval_s}s grid",
                                source="market data", field=f"{sym}.open_ts_ns", value=start)
        bar = _kline_bar(kline)
        if self._open is not None and start < self._open:
            self.late_dropped += 1
            return []
        done = self._advance_to(start)
        self._building[sym] = bar
        if len(self._building) == len(self.symbols):  # every symbol has reported: complete
            done.append(self._emit(start))
        return done

    def flush(self, now_ns: int) -> list[BarSet]:
        """Emit every interval whose end plus the grace is at or before ``now_ns``."""
        done: list[BarSet] = []
        while self._open is not None and now_ns >= self._open + self.step_ns + self.grace_ns:
            done.append(self._emit(self._open))
        return done

    def _require(self, source: BarSource) -> None:
        if self.source is not source:
            raise ConfigError(f"bar builder built from {self.source.value} was fed "
                              f"{source.value}")

    def _advance_to(self, start: int) -> list[BarSet]:
        """Emit every interval before the one opening at ``start`` and make that one current."""
        if self._open is None:
            self._open = start
            return []
        done = []
        while self._open < start:
            done.append(self._emit(self._open))
        return done

    def _emit(self, open_ns: int) -> BarSet:
        """Close the current interval (opening at ``open_ns``): real bars as built, carried
        bars for the rest."""
        closes: dict[str, float] = {}
        filled: dict[str, bool] = {}
        bars: dict[str, Bar] = {}
        building, last = self._building, self._last_close
        for sym in self.symbols:
            acc = building.get(sym)
            if acc is not None:
                bar = Bar(acc[0], acc[1], acc[2], acc[3], acc[4], False)
            elif sym in last:
                c = last[sym]
                bar = Bar(c, c, c, c, 0.0, True)
            else:
                continue
            last[sym] = closes[sym] = bar.close
            filled[sym] = bar.filled
            bars[sym] = bar
        self._building = {}
        self._open = open_ns + self.step_ns
        self.emitted += 1
        return BarSet(open_ns, closes, filled, bars)
