"""Binance public market data on the wire: stream messages, REST payloads and capture lines.

Every parser turns Binance JSON into a typed record (a frozen ``msgspec.Struct``) or raises a
:class:`WireError` naming the reason. Conventions of every record:

- Timestamps are int64 nanoseconds UTC (Binance sends milliseconds: ``ms * 1_000_000``); a
  timestamp the message does not carry (spot has no ``T``) is ``0``.
- Prices, quantities and rates are exact fixed-point integers, ``value * 10**8`` ("ticks"): the
  decimal text is parsed digit by digit, never through a float, so ``"28145.10"`` and
  ``"28145.1"`` are the same ``2814510000000``. Binance sends at most 8 decimals; more (other
  than trailing zeros) is rejected. :func:`to_float` makes the float for outputs only.
- Ticks are int64: values up to 92,233,720,368.54775807; larger ones are rejected too.
- Depth levels (diffs and snapshots) are one int64 array of ``(price, qty)`` rows, bids first
  (``n_bids`` rows) then asks: a compiled kernel parses them, because a depth message carries
  tens of levels and Python-level parsing of each string would cap replay near 60k messages/s.

:class:`Decoder` is the stream-level API: it never raises on bad input, it counts each rejected
message or line per reason, logs it and goes on. :func:`read_capture` reads capture files.
"""

from __future__ import annotations

import gzip
import logging
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any, Generic, Literal, NamedTuple, TypeVar
from urllib.parse import parse_qs, urlsplit

import msgspec
import numpy as np
from msgspec import Meta, Raw, Struct
from numba import njit

from dolphin.core.errors import DataError

log = logging.getLogger(__name__)

FIXED_DECIMALS = 8
FIXED_SCALE = 10**FIXED_DECIMALS
MS_NS = 1_000_000
INT64_MAX = 2**63 - 1
#: The largest millisecond timestamp whose nanoseconds still fit int64 (year 2262).
MAX_MS = INT64_MAX // MS_NS
#: Rejections logged at WARNING per reason; later ones go to DEBUG (a bad file has many).
LOG_FIRST = 5


class Reason(StrEnum):
    """Why a message or capture line was rejected (the :class:`Decoder`'s counter keys)."""

    LINE = "line"  # not a capture line: no timestamp and JSON body
    TIMESTAMP = "timestamp"  # the capture line's local timestamp is not a time
    JSON = "json"  # the body is not valid JSON
    SCHEMA = "schema"  # a field is missing, of the wrong type or out of range
    DECIMAL = "decimal"  # a price/quantity/rate is not a plain decimal of <= 8 places
    SYMBOL = "symbol"  # a depth snapshot whose symbol cannot be told
    UNSUPPORTED = "unsupported"  # well-formed, but a stream or event this module does not parse


class WireError(DataError):
    """A message or capture line is malformed; ``reason`` is its :class:`Reason`."""

    def __init__(self, reason: Reason, message: str, **where: Any) -> None:
        self.reason = reason
        super().__init__(message, **where)


# --------------------------------------------------------------------------- decimals

_DECIMAL_RE = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")


def parse_fixed(text: str, *, signed: bool = False, field: str | None = None) -> int:
    """Return the decimal ``text`` as exact fixed-point ticks (``value * 10**8``).

    Accepts ASCII digits with at most one point and, when ``signed``, a leading minus; rejects
    everything else (exponents, ``NaN``, spaces, more than 8 significant decimals, values
    beyond int64) with a :class:`WireError` of reason ``DECIMAL``.
    """
    m = _DECIMAL_RE.fullmatch(text) if isinstance(text, str) else None
    if m is None or (m[1] and not signed):
        raise WireError(Reason.DECIMAL, "not a plain decimal", field=field, value=text)
    whole, frac = m[2].lstrip("0"), (m[3] or "").rstrip("0")
    if len(frac) > FIXED_DECIMALS:
        raise WireError(Reason.DECIMAL, "more than 8 decimals", field=field, value=text)
    value = int((whole or "0") + frac.ljust(FIXED_DECIMALS, "0")) if len(whole) <= 19 else -1
    if not 0 <= value <= INT64_MAX:
        raise WireError(Reason.DECIMAL, "too large for int64 ticks", field=field, value=text)
    return -value if m[1] else value


def to_float(ticks: int) -> float:
    """Return fixed-point ``ticks`` as the float nearest the decimal (what ``float(text)`` gives).

    Python's int / int division is correctly rounded, so this equals ``float`` of the original
    decimal text exactly.
    """
    return ticks / FIXED_SCALE


def to_float_array(ticks: np.ndarray) -> np.ndarray:
    """Return int64 ``ticks`` as float64, each the float nearest its decimal (see :func:`to_float`).

    Below 2**53 numpy's division is exact in, correctly rounded out; larger ticks (quantities
    above 90 million units) go through Python's int division.
    """
    ticks = np.asarray(ticks, dtype=np.int64)
    if ticks.size and int(np.abs(ticks).max()) >= 2**53:
        return np.array([t / FIXED_SCALE for t in ticks.ravel().tolist()]).reshape(ticks.shape)
    return ticks / FIXED_SCALE


# Kernel status codes (STYLE.md §3: kernels return codes, the wrapper raises).
_E_SHAPE = -1
_E_DECIMAL = -2
_E_PRECISION = -3
_E_RANGE = -4
_E_ZERO_PRICE = -5
_LEVEL_ERRORS = {
    _E_SHAPE: (Reason.SCHEMA, "levels are not an array of [price, qty] string pairs"),
    _E_DECIMAL: (Reason.DECIMAL, "a price or quantity is not a plain decimal"),
    _E_PRECISION: (Reason.DECIMAL, "a price or quantity has more than 8 decimals"),
    _E_RANGE: (Reason.DECIMAL, "a price or quantity is too large for int64 ticks"),
    _E_ZERO_PRICE: (Reason.DECIMAL, "a level's price is zero"),
}
_POW10 = np.array([10**k for k in range(FIXED_DECIMALS + 1)], dtype=np.int64)
#: The fewest bytes one level can take (``["1","0"]``): bounds the rows a buffer can hold.
_MIN_LEVEL_BYTES = 9


@njit(cache=True)
def _exact_nb(buf, i, end):
    """Ticks of the checked decimal text ``buf[i:end]`` with overflow checks, or ``_E_RANGE``.

    The slow path of :func:`_text_nb`, for texts of 19 or more digits.
    """
    value = 0
    kept = -1  # decimals kept; -1 before the point
    for j in range(i, end):
        d = buf[j] - 48
        if d == 46 - 48:
            kept = 0
        elif kept < FIXED_DECIMALS:
            if value > (INT64_MAX - d) // 10:
                return _E_RANGE
            value = value * 10 + d
            kept += kept >= 0
    scale = _POW10[FIXED_DECIMALS - max(kept, 0)]
    return _E_RANGE if value > INT64_MAX // scale else value * scale


@njit(cache=True)
def _text_nb(buf, i, n):
    """Parse a decimal's text from ``i`` (after the opening quote) through the closing quote.

    Returns ``(index after the quote, ticks)`` or ``(negative status, 0)``: ASCII digits with
    at most one point and digits on both sides; past the 8th decimal only zeros.
    """
    start = i
    value = 0
    digits = 0  # digits accumulated into value
    kept = -1  # decimals accumulated; -1 before the point
    while i < n:
        c = buf[i]
        i += 1
        d = c - 48
        if 0 <= d <= 9:
            if kept < FIXED_DECIMALS:
                value = value * 10 + d  # may wrap past 18 digits: redone exactly below
                digits += 1
                kept += kept >= 0
            elif d != 0:
                return _E_PRECISION, 0
        elif c == 34:  # '"'
            if digits == 0 or kept == 0:
                return _E_DECIMAL, 0
            if digits > 18:
                ticks = _exact_nb(buf, start, i - 1)
            else:
                scale = _POW10[FIXED_DECIMALS - max(kept, 0)]
                ticks = _E_RANGE if value > INT64_MAX // scale else value * scale
            return (i, ticks) if ticks >= 0 else (ticks, 0)
        elif c != 46 or kept >= 0 or digits == 0:  # anything but the first point after digits
            return _E_DECIMAL, 0
        else:
            kept = 0
    return _E_SHAPE, 0


@njit(cache=True)
def _close_level_nb(out, row, strings):
    """Check the level just closed by ``]``: two strings and a positive price."""
    if strings != 2:
        return _E_SHAPE
    return _E_ZERO_PRICE if out[row, 0] == 0 else 0


@njit(cache=True)
def _levels_nb(buf, out, row):
    """Parse a JSON array of ``[price, qty]`` string pairs into ``out[row:]``.

    ``buf`` must be valid JSON (a ``msgspec.Raw``), so only its shape is checked here: one
    array of arrays of exactly two decimal strings. Returns the number of levels parsed, or a
    negative status; ``out`` is never written past its last row.
    """
    n = len(buf)
    start = row
    depth = 0
    strings = 0  # in the level being read
    outer = False
    i = 0
    while i < n:
        c = buf[i]
        i += 1
        if c == 34:  # '"'
            if depth != 2 or strings == 2 or row >= out.shape[0]:
                return _E_SHAPE
            i, value = _text_nb(buf, i, n)
            if i < 0:
                return i
            out[row, strings] = value
            strings += 1
        elif c == 91:  # '['
            depth += 1
            if depth > 2 or (depth == 1 and outer):
                return _E_SHAPE
            outer, strings = True, 0
        elif c == 93:  # ']'
            status = _close_level_nb(out, row, strings) if depth == 2 else 0
            if status < 0:
                return status
            row += depth == 2
            depth -= 1
        elif c != 44 and c != 32 and c != 10 and c != 13 and c != 9:  # ',' or whitespace
            return _E_SHAPE
    return row - start if outer and depth == 0 else _E_SHAPE


@njit(cache=True)
def _book_levels_nb(bids, asks, out):
    """Parse both sides into ``out`` (bids first); return ``(n_bids, n_asks)`` or a status."""
    n_bids = _levels_nb(bids, out, 0)
    if n_bids < 0:
        return n_bids, 0
    n_asks = _levels_nb(asks, out, n_bids)
    if n_asks < 0:
        return n_asks, 0
    return n_bids, n_asks


def _parse_levels(bids: Raw, asks: Raw) -> tuple[np.ndarray, int]:
    """Return ``(levels, n_bids)``: two decoded JSON level arrays as one int64 ``(n, 2)`` array.

    ``levels[:n_bids]`` are the bids and the rest the asks, each row ``(price, qty)`` in ticks,
    in the message's order. Raises :class:`WireError` on any malformed level.
    """
    b, a = bytes(bids), bytes(asks)
    out = np.empty(((len(b) + len(a)) // _MIN_LEVEL_BYTES + 1, 2), dtype=np.int64)
    n_bids, n_asks = _book_levels_nb(b, a, out)
    if n_bids < 0:
        reason, message = _LEVEL_ERRORS[n_bids]
        raise WireError(reason, message, field="b/a")
    return out[: n_bids + n_asks], n_bids


# --------------------------------------------------------------------------- records


class _Sides:
    """``bids``/``asks`` views of a record's ``levels`` (bids first, ``n_bids`` of them)."""

    __slots__ = ()
    levels: np.ndarray
    n_bids: int

    @property
    def bids(self) -> np.ndarray:
        """The bid rows of ``levels``."""
        return self.levels[: self.n_bids]

    @property
    def asks(self) -> np.ndarray:
        """The ask rows of ``levels``."""
        return self.levels[self.n_bids :]


class DepthDiff(_Sides, Struct, frozen=True, gc=False, eq=False):
    """One ``depthUpdate`` diff: the levels that changed over update ids ``U..u``.

    ``levels`` is int64 ``(n, 2)`` (price, qty) ticks, bids first; qty 0 removes a level.
    Compared by identity (the array has no single truth value).
    """

    symbol: str
    first_update_id: int  # U
    final_update_id: int  # u
    prev_final_update_id: int  # pu on USDT-M futures; -1 on spot, which has none
    ts_event: int  # E
    ts_transaction: int  # T on futures; 0 on spot
    levels: np.ndarray
    n_bids: int


class DepthSnapshot(_Sides, Struct, frozen=True, gc=False, eq=False):
    """A REST depth snapshot (``/fapi/v1/depth``, ``/api/v3/depth``) as of ``last_update_id``.

    ``symbol`` is ``""`` when the payload came without one (it never carries it; captures name
    it in the request URL or not at all). Levels as in :class:`DepthDiff`.
    """

    symbol: str
    last_update_id: int
    ts_event: int  # E on futures; 0 on spot
    ts_transaction: int  # T on futures; 0 on spot
    levels: np.ndarray
    n_bids: int


class BookTicker(Struct, frozen=True, gc=False):
    """Best bid and ask after order-book update ``update_id``."""

    symbol: str
    update_id: int
    bid_px: int
    bid_qty: int
    ask_px: int
    ask_qty: int
    ts_event: int  # E on futures; 0 on spot
    ts_transaction: int  # T on futures; 0 on spot


class Trade(Struct, frozen=True, gc=False):
    """One trade (``trade`` stream)."""

    symbol: str
    trade_id: int
    price: int
    qty: int
    buyer_is_maker: bool
    ts_event: int
    ts_trade: int


class AggTrade(Struct, frozen=True, gc=False):
    """Trades at one price aggregated by Binance (``aggTrade`` stream)."""

    symbol: str
    agg_id: int
    price: int
    qty: int
    first_trade_id: int
    last_trade_id: int
    buyer_is_maker: bool
    ts_event: int
    ts_trade: int


class MarkPrice(Struct, frozen=True, gc=False):
    """Mark price and funding (``markPriceUpdate``); ``funding_rate`` is signed ticks."""

    symbol: str
    mark_price: int
    index_price: int
    est_settle_price: int
    funding_rate: int
    ts_event: int
    ts_next_funding: int


class Kline(Struct, frozen=True, gc=False):
    """One candle (``kline`` stream or a REST ``klines`` row; REST rows have ``ts_event`` 0)."""

    symbol: str
    interval: str
    ts_open: int
    ts_close: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    quote_volume: int
    trades: int
    taker_buy_volume: int
    taker_buy_quote_volume: int
    closed: bool
    ts_event: int


class Liquidation(Struct, frozen=True, gc=False):
    """A liquidation order (``forceOrder`` stream)."""

    symbol: str
    side: str
    order_type: str
    time_in_force: str
    status: str
    qty: int
    price: int
    avg_price: int
    last_filled_qty: int
    filled_qty: int
    ts_event: int
    ts_trade: int


class FundingRate(Struct, frozen=True, gc=False):
    """One settled funding rate (REST ``fundingRate``); the rate is signed ticks."""

    symbol: str
    funding_rate: int
    ts_funding: int


class PremiumIndex(Struct, frozen=True, gc=False):
    """Mark/index price and funding of one symbol (REST ``premiumIndex``)."""

    symbol: str
    mark_price: int
    index_price: int
    est_settle_price: int
    last_funding_rate: int
    interest_rate: int
    ts_next_funding: int
    ts_event: int


class SymbolInfo(Struct, frozen=True, gc=False):
    """One symbol of ``exchangeInfo`` with its trading filters (ticks; 0 when absent)."""

    symbol: str
    pair: str
    contract_type: str
    status: str
    base_asset: str
    quote_asset: str
    margin_asset: str
    price_precision: int
    quantity_precision: int
    tick_size: int
    min_price: int
    max_price: int
    step_size: int
    min_qty: int
    max_qty: int
    min_notional: int
    ts_onboard: int
    ts_delivery: int


class ExchangeInfo(Struct, frozen=True, gc=False):
    """The REST ``exchangeInfo`` payload: server time and the symbols."""

    ts_server: int
    symbols: tuple[SymbolInfo, ...]


Record = (DepthDiff | DepthSnapshot | BookTicker | Trade | AggTrade | MarkPrice | Kline
          | Liquidation | ExchangeInfo)  # fmt: skip

# --------------------------------------------------------------------------- wire structs
# They mirror Binance's JSON field names; msgspec checks types and ranges in C.

Id = Annotated[int, Meta(ge=0)]
Ms = Annotated[int, Meta(ge=0, le=MAX_MS)]
Sym = Annotated[str, Meta(min_length=1)]
_D = TypeVar("_D")


class _Env(Struct, Generic[_D], gc=False):
    stream: str
    data: _D


class _Probe(Struct, gc=False, rename="camel"):
    stream: str | None = None
    data: Raw = Raw()  # empty when absent (msgspec takes no Raw | None)
    e: str | None = None
    last_update_id: int | None = None
    u: int | None = None


class _WDepth(Struct, gc=False):
    e: Literal["depthUpdate"]
    E: Ms
    s: Sym
    U: Id
    u: Id
    b: Raw
    a: Raw
    T: Ms = 0
    pu: Id = -1


class _WSnapshot(Struct, gc=False, rename="camel"):
    last_update_id: Id
    bids: Raw
    asks: Raw
    E: Ms = 0
    T: Ms = 0


class _WBookTicker(Struct, gc=False):
    u: Id
    s: Sym
    b: str
    B: str
    a: str
    A: str
    e: Literal["bookTicker"] = "bookTicker"
    E: Ms = 0
    T: Ms = 0


class _WTrade(Struct, gc=False):
    e: Literal["trade"]
    E: Ms
    T: Ms
    s: Sym
    t: Id
    p: str
    q: str
    m: bool


class _WAggTrade(Struct, gc=False):
    e: Literal["aggTrade"]
    E: Ms
    T: Ms
    s: Sym
    a: Id
    p: str
    q: str
    f: Id
    last: Id = msgspec.field(name="l")
    m: bool


class _WMarkPrice(Struct, gc=False):
    e: Literal["markPriceUpdate"]
    E: Ms
    s: Sym
    p: str
    i: str
    P: str
    r: str
    T: Ms


class _WKlineBody(Struct, gc=False):
    t: Ms
    T: Ms
    i: str
    o: str
    c: str
    h: str
    low: str = msgspec.field(name="l")
    v: str
    n: Id
    x: bool
    q: str
    V: str
    Q: str


class _WKline(Struct, gc=False):
    e: Literal["kline"]
    E: Ms
    s: Sym
    k: _WKlineBody


class _WOrder(Struct, gc=False):
    s: Sym
    S: str
    o: str
    f: str
    q: str
    p: str
    ap: str
    X: str
    z: str
    T: Ms
    last: str = msgspec.field(name="l")


class _WForceOrder(Struct, gc=False):
    e: Literal["forceOrder"]
    E: Ms
    o: _WOrder


class _WFunding(Struct, gc=False, rename="camel"):
    symbol: Sym
    funding_rate: str
    funding_time: Ms


class _WPremium(Struct, gc=False, rename="camel"):
    symbol: Sym
    mark_price: str
    index_price: str
    estimated_settle_price: str
    last_funding_rate: str
    interest_rate: str
    next_funding_time: Ms
    time: Ms


class _WSymbol(Struct, gc=False, rename="camel"):
    symbol: Sym
    status: str
    base_asset: str
    quote_asset: str
    filters: list[dict[str, Any]]
    pair: str = ""
    contract_type: str = ""
    margin_asset: str = ""
    price_precision: int = 0
    quantity_precision: int = 0
    onboard_date: Ms = 0
    delivery_date: Ms = 0


class _WExchangeInfo(Struct, gc=False, rename="camel"):
    server_time: Ms
    symbols: list[_WSymbol]


_KlineRow = tuple[Ms, str, str, str, str, str, Ms, str, Id, str, str, Any]

# --------------------------------------------------------------------------- builders


def _depth(w: _WDepth) -> DepthDiff:
    if w.u < w.U:
        raise WireError(Reason.SCHEMA, "first update id U above final u", value=(w.U, w.u))
    levels, n_bids = _parse_levels(w.b, w.a)
    return DepthDiff(w.s, w.U, w.u, w.pu, w.E * MS_NS, w.T * MS_NS, levels, n_bids)


def _snapshot(w: _WSnapshot, symbol: str = "") -> DepthSnapshot:
    levels, n_bids = _parse_levels(w.bids, w.asks)
    return DepthSnapshot(symbol, w.last_update_id, w.E * MS_NS, w.T * MS_NS, levels, n_bids)


def _book_ticker(w: _WBookTicker) -> BookTicker:
    return BookTicker(w.s, w.u, parse_fixed(w.b, field="b"), parse_fixed(w.B, field="B"),
                      parse_fixed(w.a, field="a"), parse_fixed(w.A, field="A"),
                      w.E * MS_NS, w.T * MS_NS)


def _trade(w: _WTrade) -> Trade:
    return Trade(w.s, w.t, parse_fixed(w.p, field="p"), parse_fixed(w.q, field="q"), w.m,
                 w.E * MS_NS, w.T * MS_NS)


def _agg_trade(w: _WAggTrade) -> AggTrade:
    return AggTrade(w.s, w.a, parse_fixed(w.p, field="p"), parse_fixed(w.q, field="q"), w.f,
                    w.last, w.m, w.E * MS_NS, w.T * MS_NS)


def _mark_price(w: _WMarkPrice) -> MarkPrice:
    return MarkPrice(w.s, parse_fixed(w.p, field="p"), parse_fixed(w.i, field="i"),
                     parse_fixed(w.P, field="P"), parse_fixed(w.r, signed=True, field="r"),
                     w.E * MS_NS, w.T * MS_NS)


def _kline(w: _WKline) -> Kline:
    k = w.k
    return Kline(w.s, k.i, k.t * MS_NS, k.T * MS_NS, *_fixed(k.o, k.h, k.low, k.c, k.v, k.q), k.n,
                 *_fixed(k.V, k.Q), k.x, w.E * MS_NS)


def _liquidation(w: _WForceOrder) -> Liquidation:
    o = w.o
    return Liquidation(o.s, o.S, o.o, o.f, o.X, *_fixed(o.q, o.p, o.ap, o.last, o.z),
                       w.E * MS_NS, o.T * MS_NS)


def _fixed(*texts: str) -> list[int]:
    return [parse_fixed(t) for t in texts]


class _Kind(NamedTuple):
    bare: msgspec.json.Decoder  # the data object alone
    wrapped: msgspec.json.Decoder  # the whole {"stream":..,"data":{..}} envelope
    build: Callable[[Any], Record]


def _kind(wire: type, build: Callable[[Any], Record]) -> _Kind:
    return _Kind(msgspec.json.Decoder(wire), msgspec.json.Decoder(_Env[wire]), build)


#: Stream event name (``e``) -> how to decode it.
_EVENTS = {
    "depthUpdate": _kind(_WDepth, _depth),
    "bookTicker": _kind(_WBookTicker, _book_ticker),
    "trade": _kind(_WTrade, _trade),
    "aggTrade": _kind(_WAggTrade, _agg_trade),
    "markPriceUpdate": _kind(_WMarkPrice, _mark_price),
    "kline": _kind(_WKline, _kline),
    "forceOrder": _kind(_WForceOrder, _liquidation),
}
#: Stream channel (``<symbol>@<channel>[@<speed>]``) -> event name. ``depth5/10/20`` (partial
#: book snapshots) are deliberately absent: applied as diffs they would corrupt a book.
_CHANNELS = {"depth": "depthUpdate", "bookTicker": "bookTicker", "trade": "trade",
             "aggTrade": "aggTrade", "markPrice": "markPriceUpdate", "forceOrder": "forceOrder"}
_SNAPSHOT = msgspec.json.Decoder(_WSnapshot)
_PROBE = msgspec.json.Decoder(_Probe)
_EXCHANGE_INFO = msgspec.json.Decoder(_WExchangeInfo)
_KLINES = msgspec.json.Decoder(list[_KlineRow])
_FUNDING = msgspec.json.Decoder(list[_WFunding])
_PREMIUM = msgspec.json.Decoder(_WPremium)
_STREAM_PREFIX = b'{"stream":"'
_PREFIX_LEN = len(_STREAM_PREFIX)


#: All-market streams (``!<channel>@arr``) that still send one event per message.
_ALL_MARKET = frozenset({"forceOrder", "bookTicker"})
#: Stream name as raw JSON bytes -> its kind, learned by the general path (the fast path's key).
_KNOWN_STREAMS: dict[bytes, _Kind] = {}
_MAX_KNOWN_STREAMS = 4096


def _stream_kind(stream: str) -> _Kind:
    """The decoder of a combined stream's messages, from the stream name."""
    parts = stream.split("@")
    if parts[0].startswith("!"):
        channel = parts[0][1:] if parts[0][1:] in _ALL_MARKET else ""
    else:
        channel = parts[1] if len(parts) > 1 else ""
    event = "kline" if channel.startswith("kline_") else _CHANNELS.get(channel)
    if event is None:
        raise WireError(Reason.UNSUPPORTED, "stream not parsed here", value=stream)
    kind = _EVENTS[event]
    if "\\" not in stream and '"' not in stream:  # its raw JSON bytes are its UTF-8 bytes
        if len(_KNOWN_STREAMS) >= _MAX_KNOWN_STREAMS:
            _KNOWN_STREAMS.clear()
        _KNOWN_STREAMS[stream.encode()] = kind
    return kind


def _decode(decoder: msgspec.json.Decoder, body: bytes | Raw) -> Any:
    """Decode ``body``; turn msgspec's errors into :class:`WireError` (schema before JSON)."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise WireError(Reason.SCHEMA, str(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # msgspec checks UTF-8 itself
        raise WireError(Reason.JSON, str(exc)) from None


def decode_message(raw: bytes | str) -> Record:
    """Decode one stream message, bare or in a combined-stream envelope, or a depth snapshot.

    Raises :class:`WireError`: reason ``UNSUPPORTED`` for a well-formed message of a stream not
    parsed here (partial depth, tickers, all-market arrays), another reason when malformed.
    """
    body = raw if isinstance(raw, bytes) else raw.encode()
    if body.startswith(_STREAM_PREFIX):
        # The fast path: a stream seen before is decoded in one typed pass over the envelope.
        end = body.find(b'"', _PREFIX_LEN)
        kind = _KNOWN_STREAMS.get(body[_PREFIX_LEN:end]) if end > 0 else None
        if kind is not None:
            return kind.build(_decode(kind.wrapped, body).data)
    probe = _decode(_PROBE, body)
    if probe.stream is not None and probe.data:
        kind = _stream_kind(probe.stream)
        return kind.build(_decode(kind.bare, probe.data))
    if probe.e is not None:
        kind = _EVENTS.get(probe.e)
        if kind is None:
            raise WireError(Reason.UNSUPPORTED, "event not parsed here", value=probe.e)
        return kind.build(_decode(kind.bare, body))
    if probe.last_update_id is not None:
        return _snapshot(_decode(_SNAPSHOT, body))
    if probe.u is not None:  # spot bookTicker: the only stream message without "e"
        return _book_ticker(_decode(_EVENTS["bookTicker"].bare, body))
    raise WireError(Reason.SCHEMA, "neither a stream message nor a depth snapshot")


# --------------------------------------------------------------------------- REST payloads


def _bytes(raw: bytes | str) -> bytes:
    return raw.encode() if isinstance(raw, str) else raw


def parse_depth_snapshot(raw: bytes | str, symbol: str = "") -> DepthSnapshot:
    """Parse a REST depth snapshot (``/fapi/v1/depth`` or spot ``/api/v3/depth``)."""
    return _snapshot(_decode(_SNAPSHOT, _bytes(raw)), symbol)


def _filters(filters: list[dict[str, Any]]) -> dict[str, int]:
    by_type = {f.get("filterType"): f for f in filters}
    price, lot = by_type.get("PRICE_FILTER", {}), by_type.get("LOT_SIZE", {})
    notional = by_type.get("MIN_NOTIONAL", by_type.get("NOTIONAL", {}))
    texts = {"tick_size": price.get("tickSize"), "min_price": price.get("minPrice"),
             "max_price": price.get("maxPrice"), "step_size": lot.get("stepSize"),
             "min_qty": lot.get("minQty"), "max_qty": lot.get("maxQty"),
             "min_notional": notional.get("notional", notional.get("minNotional"))}
    return {k: 0 if v is None else parse_fixed(v, field=k) for k, v in texts.items()}


def parse_exchange_info(raw: bytes | str) -> ExchangeInfo:
    """Parse a REST ``exchangeInfo`` payload; filters absent from a symbol read as 0."""
    w = _decode(_EXCHANGE_INFO, _bytes(raw))
    return ExchangeInfo(w.server_time * MS_NS, tuple(
        SymbolInfo(s.symbol, s.pair, s.contract_type, s.status, s.base_asset, s.quote_asset,
                   s.margin_asset, s.price_precision, s.quantity_precision,
                   **_filters(s.filters), ts_onboard=s.onboard_date * MS_NS,
                   ts_delivery=s.delivery_date * MS_NS)
        for s in w.symbols))


def parse_klines(raw: bytes | str, symbol: str, interval: str) -> list[Kline]:
    """Parse a REST ``klines`` payload (rows of 12 fields) for ``symbol`` and ``interval``."""
    rows = _decode(_KLINES, _bytes(raw))
    return [Kline(symbol, interval, r[0] * MS_NS, r[6] * MS_NS, *_fixed(*r[1:6], r[7]), r[8],
                  *_fixed(r[9], r[10]), True, 0) for r in rows]


def parse_funding_rates(raw: bytes | str) -> list[FundingRate]:
    """Parse a REST ``fundingRate`` payload (a list of settled rates)."""
    rows = _decode(_FUNDING, _bytes(raw))
    return [FundingRate(r.symbol, parse_fixed(r.funding_rate, signed=True, field="fundingRate"),
                        r.funding_time * MS_NS) for r in rows]


def parse_premium_index(raw: bytes | str) -> PremiumIndex:
    """Parse a REST ``premiumIndex`` payload of one symbol."""
    w = _decode(_PREMIUM, _bytes(raw))
    return PremiumIndex(w.symbol, *_fixed(w.mark_price, w.index_price, w.estimated_settle_price),
                        parse_fixed(w.last_funding_rate, signed=True, field="lastFundingRate"),
                        parse_fixed(w.interest_rate, signed=True, field="interestRate"),
                        w.next_funding_time * MS_NS, w.time * MS_NS)


# --------------------------------------------------------------------------- capture lines

#: Cryptofeed's lines that are not data: the websocket it opened, the feed configuration.
_HEADER_PREFIXES = (b"wss://", b"ws://", b"configuration: ")
#: An integer local timestamp's unit, told by its digits (s, ms, µs, ns): ns per unit.
_TS_UNITS = {10: 10**9, 13: MS_NS, 16: 1_000, 19: 1}
_EARLIEST_NS = 10**18  # 2001-09-09


def _local_ns(text: bytes) -> int:
    """A capture's local timestamp: integer s/ms/µs/ns (told by its digits) or decimal seconds."""
    if text.isdigit():
        ns = int(text) * _TS_UNITS.get(len(text), 0)
    else:
        whole, point, frac = text.partition(b".")
        if not (point and whole.isdigit() and len(whole) <= 10 and frac.isdigit()
                and len(frac) <= 9):
            raise WireError(Reason.TIMESTAMP, "not a local timestamp", value=text[:40])
        ns = int(whole) * 1_000_000_000 + int(frac.ljust(9, b"0"))
    if not _EARLIEST_NS <= ns <= INT64_MAX:
        raise WireError(Reason.TIMESTAMP, "local timestamp out of range", value=text[:40])
    return ns


def _http_line(line: bytes) -> tuple[int, Record]:
    url, _, rest = line.partition(b" -> ")
    stamp, sep, body = rest.partition(b": ")
    if not sep:
        raise WireError(Reason.LINE, "REST line without '-> <time>: <json>'", value=line[:60])
    ts = _local_ns(stamp)
    parts = urlsplit(url.decode("ascii", "replace"))
    if parts.path.endswith("/depth"):
        symbol = parse_qs(parts.query).get("symbol", [""])[0].upper()
        return ts, parse_depth_snapshot(body, symbol)
    if parts.path.endswith("/exchangeInfo"):
        return ts, parse_exchange_info(body)
    raise WireError(Reason.UNSUPPORTED, "REST endpoint not parsed here", value=parts.path)


def capture_line_body(line: bytes) -> bytes:
    """Return the raw JSON of a capture line as it was received (formats:
    ``decode_capture_line``)."""
    stamp, _, body = line.partition(b" ")
    if stamp.isdigit():
        return body.strip()
    if line.startswith((b"http://", b"https://")):
        return line.partition(b" -> ")[2].partition(b": ")[2].strip()
    return line.partition(b": ")[2].strip()


def decode_capture_line(line: bytes) -> tuple[int, Record] | None:
    """Decode one capture line into ``(ts_recv, record)``; ``None`` for a blank or header line.

    Formats: ``<local ts> <json>`` (hftbacktest's Binance captures: µs or ns integers),
    ``<unix seconds>: <json>`` (cryptofeed websocket) and ``<url> -> <unix seconds>: <json>``
    (cryptofeed REST). ``ts_recv`` is the capture's local receive time in ns.
    """
    stamp, sep, body = line.partition(b" ")
    if sep and stamp.isdigit():  # hftbacktest's lines, nearly all of a replay: first
        return _local_ns(stamp), decode_message(body)
    if not line or line.isspace() or line.startswith(_HEADER_PREFIXES):
        return None
    if line.startswith((b"http://", b"https://")):
        return _http_line(line)
    if not sep or not stamp.endswith(b":") or not body.startswith(b"{"):
        raise WireError(Reason.LINE, "not '<time> <json>'", value=line[:60])
    return _local_ns(stamp[:-1]), decode_message(body)


class Decoder:
    """Decode messages or capture lines; count, log and skip the bad ones, never raise on them.

    Every input lands in exactly one counter: ``records`` (per record type), ``malformed``
    (per :class:`Reason`), ``unsupported`` (per stream/event) or ``skipped`` (blank and header
    lines), so ``seen == total of all four``.
    """

    def __init__(self, source: str = "stream") -> None:
        self.source = source
        self.seen = 0
        self.skipped = 0
        self._by_type: dict[type, int] = {}
        self.malformed: Counter[str] = Counter()
        self.unsupported: Counter[str] = Counter()

    def message(self, raw: bytes | str) -> Record | None:
        """Return the record of one stream message, or ``None`` (counted) when it is bad."""
        self.seen += 1
        try:
            record = decode_message(raw)
        except WireError as exc:
            self._reject(exc, None)
            return None
        self._count(type(record), 1)
        return record

    def line(self, line: bytes, lineno: int | None = None) -> tuple[int, Record] | None:
        """Return ``(ts_recv, record)`` of one capture line, or ``None`` (counted)."""
        self.seen += 1
        try:
            got = decode_capture_line(line)
        except WireError as exc:
            self._reject(exc, lineno)
            return None
        if got is None:
            self.skipped += 1
        else:
            self._count(type(got[1]), 1)
        return got

    def reject(self, record: Record, exc: WireError, lineno: int | None = None) -> None:
        """Count a record this decoder returned as rejected after all (a later check failed)."""
        self._count(type(record), -1)
        self._reject(exc, lineno)

    @property
    def records(self) -> Counter[str]:
        """Records decoded, per record type name."""
        return Counter({kind.__name__: n for kind, n in self._by_type.items() if n})

    def _count(self, kind: type, n: int) -> None:
        self._by_type[kind] = self._by_type.get(kind, 0) + n

    def _reject(self, exc: WireError, lineno: int | None) -> None:
        if exc.reason is Reason.UNSUPPORTED:
            self.unsupported[str(exc.value)] += 1
            return
        self.malformed[exc.reason] += 1
        level = logging.WARNING if self.malformed[exc.reason] <= LOG_FIRST else logging.DEBUG
        where = f"{self.source}:{lineno}" if lineno is not None else self.source
        log.log(level, "binance wire: rejected %s (reason=%s): %s", where, exc.reason, exc)

    @property
    def total_malformed(self) -> int:
        """Messages or lines rejected as malformed, all reasons."""
        return sum(self.malformed.values())


# --------------------------------------------------------------------------- capture files

_GZIP_MAGIC = b"\x1f\x8b"


def open_capture(path: Path) -> IO[bytes]:
    """Open a capture file for reading bytes: gzip told by its magic bytes, else plain text
    (a ``.gz`` name that is not gzip is an error); a missing file is a ``DataError``."""
    if not path.is_file():
        raise DataError("no such capture file", source=str(path))
    with path.open("rb") as fh:
        magic = fh.read(2)
    if magic == _GZIP_MAGIC:
        return gzip.open(path, "rb")
    if path.suffix == ".gz":
        raise DataError("not a gzip file", source=str(path))
    return path.open("rb")


class _SnapshotSymbols:
    """Name the snapshots of a capture that came without a symbol (hftbacktest's lines).

    Such a capture records one symbol's streams, so a snapshot takes the symbol of the file's
    stream messages: it waits until the first one when it comes first, and is rejected when the
    file carries several symbols.
    """

    def __init__(self) -> None:
        self.symbols: set[str] = set()
        self.waiting: list[tuple[int, int, DepthSnapshot]] = []

    def passes(self, record: Record) -> bool:
        """Whether ``record`` goes out as it is: a known symbol's, and no snapshot waits."""
        return not self.waiting and getattr(record, "symbol", None) in self.symbols

    def see(
        self, lineno: int, ts: int, record: Record, decoder: Decoder
    ) -> Iterator[tuple[int, Record]]:
        """Yield what goes out now: ``record``, snapshots it names, or nothing."""
        symbol = getattr(record, "symbol", "")
        if isinstance(record, DepthSnapshot) and not symbol:
            if len(self.symbols) == 1:
                yield ts, msgspec.structs.replace(record, symbol=next(iter(self.symbols)))
            elif not self.symbols:
                self.waiting.append((lineno, ts, record))
            else:
                self._reject(lineno, record, decoder)
            return
        if symbol:
            self.symbols.add(symbol)
            if self.waiting and len(self.symbols) == 1:
                for _, wts, snap in self.waiting:
                    yield wts, msgspec.structs.replace(snap, symbol=symbol)
                self.waiting.clear()
        yield ts, record

    def finish(self, decoder: Decoder) -> None:
        """Reject the snapshots still waiting at the end of the file."""
        for lineno, _, snap in self.waiting:
            self._reject(lineno, snap, decoder)

    def _reject(self, lineno: int, snap: DepthSnapshot, decoder: Decoder) -> None:
        exc = WireError(Reason.SYMBOL, "depth snapshot without a symbol in a capture of "
                        f"{len(self.symbols)} symbols", row=lineno)
        decoder.reject(snap, exc, lineno)


def read_capture(path: str | Path, decoder: Decoder | None = None) -> Iterator[tuple[int, Record]]:
    """Yield ``(ts_recv, record)`` for every good line of a capture file, in file order.

    Reads gzip or plain text (told by the gzip magic bytes; a ``.gz`` name that is not gzip is
    an error). Bad lines are counted by ``decoder`` (its ``source`` is set to the file) and
    skipped. Raises :class:`DataError` naming the file when it is missing, not gzip, corrupt,
    or holds no good line at all.
    """
    path = Path(path)
    decoder = Decoder() if decoder is None else decoder
    decoder.source = str(path)
    before = decoder.records.total()
    names = _SnapshotSymbols()
    lineno = 0
    with open_capture(path) as fh:
        try:
            for lineno, line in enumerate(fh, start=1):
                got = decoder.line(line, lineno)
                if got is None:
                    continue
                if names.passes(got[1]):
                    yield got
                else:
                    yield from names.see(lineno, got[0], got[1], decoder)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataError(f"cannot read the capture ({exc})", source=str(path),
                            row=lineno + 1) from None
    names.finish(decoder)
    if decoder.records.total() == before:
        raise DataError(f"no Binance capture line in {lineno:,} lines", source=str(path))
