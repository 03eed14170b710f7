"""The Binance USDT-M market-data client: combined WebSocket streams, local books, REST.

One asyncio task owns one combined-stream connection (``/stream?streams=…``) for N symbols:

- **books**: every depth diff goes to the symbol's ``book.OrderBook``. A book that needs a
  snapshot (at start, after a gap, after a crossed book, after a reconnect) gets one from
  ``/fapi/v1/depth`` while its diffs are buffered. The book module applies Binance's documented
  sync rules;
- **reconnects**: a closed or silent connection (no message for ``data_timeout_s``) is
  reconnected after a jittered exponential backoff (``backoff_s`` doubling up to
  ``backoff_max_s``, full jitter). Binance closes connections at 24 h; the client rolls over
  before that on its own (``max_connection_s``). After a reconnect, every book is discarded and
  resynced (diffs were missed), and the subscriptions are the current symbol set;
- **symbols**: ``refresh_symbols`` reads ``exchangeInfo`` and keeps the wanted symbols that are
  TRADING perpetuals. Symbols are added and removed on the live connection with SUBSCRIBE and
  UNSUBSCRIBE, as Binance allows;
- **REST**: ``RestClient`` keeps the request-weight budget (``X-MBX-USED-WEIGHT-1M`` header and
  its own count per minute), waits on 429/418 for ``Retry-After``, and retries 5xx and transport
  errors with backoff. Each of these is counted.

Records other than depth diffs (bookTicker, aggTrade, trade, markPrice, kline, forceOrder) go to
``on_record``. Each stream has its own message counter and exchange-to-receipt lag
(``lag_ms``, from the message's event time). Malformed messages are counted by the decoder and
skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from dolphin.adapters.binance.book import OrderBook, SyncRule
from dolphin.adapters.binance.wire import (
    BookTicker,
    Decoder,
    DepthDiff,
    Record,
    WireError,
    parse_depth_snapshot,
    parse_exchange_info,
)
from dolphin.core.errors import RetryableError

log = logging.getLogger(__name__)

#: Streams subscribed per symbol unless told otherwise.
DEFAULT_STREAMS = ("depth@0ms", "bookTicker", "aggTrade")
WEIGHT_LIMIT_1M = 2400
DEPTH_LIMIT = 1000
#: bookTickers kept per symbol while they wait for the diff with their ``u``.
EARLY_TOPS = 64


class RestError(RetryableError):
    """A REST request failed after its retries."""


@dataclass
class StreamStats:
    """Per-stream message count and the last and worst exchange-to-receipt lag."""

    messages: int = 0
    lag_ms: float = 0.0
    max_lag_ms: float = 0.0


@dataclass
class ClientCounters:
    """What happened on the connection, counted."""

    connects: int = 0
    reconnects: int = 0
    disconnects: int = 0
    timeouts: int = 0
    rollovers: int = 0
    snapshots: int = 0
    snapshot_failures: int = 0
    subscribes: int = 0
    unsubscribes: int = 0
    tops_checked: int = 0  # bookTickers at an applied diff's u, compared with the book's top
    top_mismatches: int = 0  # ... that did not equal it
    streams: dict[str, StreamStats] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain counters for a heartbeat or a log line."""
        out = {k: v for k, v in self.__dict__.items() if k != "streams"}
        out["streams"] = {k: dict(v.__dict__) for k, v in sorted(self.streams.items())}
        return out


class RestClient:
    """Binance public REST with its weight budget, 429/418 back-off and 5xx retries."""

    def __init__(self, base_url: str, *, retries: int = 5, backoff_s: float = 0.2,
                 timeout_s: float = 10.0, weight_limit: int = WEIGHT_LIMIT_1M) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff_s = backoff_s
        self.weight_limit = weight_limit
        self.used_weight = 0  # as the exchange last reported it
        self._minute = int(time.time() // 60)
        self._spent = 0  # this minute, as counted here
        self.counters: Counter[str] = Counter()
        self._http = httpx.AsyncClient(timeout=timeout_s)

    async def close(self) -> None:
        """Close the HTTP connection pool."""
        await self._http.aclose()

    async def _budget(self, weight: int) -> None:
        """Wait for the next minute when this request would pass the weight limit."""
        while True:
            minute = int(time.time() // 60)
            if minute != self._minute:
                self._minute, self._spent, self.used_weight = minute, 0, 0
            if max(self._spent, self.used_weight) + weight <= self.weight_limit:
                self._spent += weight
                return
            self.counters["weight_waits"] += 1
            await asyncio.sleep(60 - time.time() % 60 + 0.01)

    async def get(self, path: str, params: dict[str, Any] | None = None,
                  weight: int = 1) -> bytes:
        """GET ``path``; return the body of a 200 or raise ``RestError`` after the retries."""
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            await self._budget(weight)
            try:
                r = await self._http.get(self.base_url + path, params=params)
            except httpx.HTTPError as exc:
                self.counters["transport_errors"] += 1
                why = f"{type(exc).__name__}: {exc}"
            else:
                used = r.headers.get("X-MBX-USED-WEIGHT-1M")
                if used is not None and used.isdigit():
                    self.used_weight = int(used)
                if r.status_code == 200:
                    self.counters["ok"] += 1
                    return r.content
                why = f"HTTP {r.status_code}"
                if r.status_code in (418, 429):
                    self.counters[f"http_{r.status_code}"] += 1
                    wait = _retry_after(r.headers.get("Retry-After"), delay)
                    log.warning("binance REST %s: %s, waiting %.1fs", path, why, wait)
                    await asyncio.sleep(wait)
                    continue
                if r.status_code < 500 and r.status_code != 408:
                    self.counters[f"http_{r.status_code}"] += 1
                    raise RestError(f"{path}: {why}: {r.text[:200]}")
                self.counters["http_5xx"] += 1
            if attempt < self.retries:
                await asyncio.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 10.0)
        raise RestError(f"{path}: failed after {self.retries + 1} attempts ({why})")


def _retry_after(header: str | None, default: float) -> float:
    try:
        return max(float(header), 0.0) if header is not None else default
    except ValueError:
        return default


class MarketDataClient:
    """Keep local books and stream records for a set of symbols (module docstring)."""

    def __init__(
        self,
        http_url: str,
        ws_url: str,
        symbols: Iterable[str],
        *,
        streams: Iterable[str] = DEFAULT_STREAMS,
        on_record: Callable[[Record], None] | None = None,
        on_book: Callable[[OrderBook, DepthDiff], None] | None = None,
        data_timeout_s: float = 10.0,
        backoff_s: float = 0.1,
        backoff_max_s: float = 5.0,
        max_connection_s: float = 23.5 * 3600,
        seed: int | None = None,
    ) -> None:
        self.rest = RestClient(http_url)
        self.ws_url = ws_url.rstrip("/")
        self.stream_kinds = tuple(streams)
        self.symbols: list[str] = sorted({s.upper() for s in symbols})
        self.on_record = on_record
        self.on_book = on_book
        self.data_timeout_s = data_timeout_s
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.max_connection_s = max_connection_s
        self.books: dict[str, OrderBook] = {}
        self.decoder = Decoder("binance-ws")
        self.counters = ClientCounters()
        self._rng = random.Random(seed)
        self._ws: Any = None
        self._stopping = asyncio.Event()
        self._fetching: dict[str, asyncio.Task] = {}
        self._req_id = 0
        self._last_diff_u: dict[str, int] = {}
        self._early_tops: dict[str, dict[int, BookTicker]] = {}
        for s in self.symbols:
            self._new_book(s)

    # ---------------------------------------------------------------- public
    def stream_names(self, symbols: Iterable[str] | None = None) -> list[str]:
        """Return the stream names for ``symbols`` (default: the current set)."""
        return [f"{s.lower()}@{k}" for s in (symbols or self.symbols) for k in self.stream_kinds]

    async def run(self) -> None:
        """Connect and keep connected until ``stop``; never raises on a network fault."""
        delay = self.backoff_s
        try:
            while not self._stopping.is_set():
                try:
                    await self._session()
                    delay = self.backoff_s  # a session that ran resets the backoff
                except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as exc:
                    self.counters.disconnects += 1
                    log.warning("binance ws: %s: %s", type(exc).__name__, exc)
                if self._stopping.is_set():
                    break
                self.counters.reconnects += 1
                await self._sleep(self._rng.uniform(0, delay))  # full jitter
                delay = min(delay * 2, self.backoff_max_s)
        finally:
            for task in self._fetching.values():
                task.cancel()
            await self.rest.close()

    def stop(self) -> None:
        """Ask ``run`` to return (it closes the connection)."""
        self._stopping.set()
        if self._ws is not None:
            asyncio.get_running_loop().create_task(self._ws.close())

    async def refresh_symbols(self, wanted: Iterable[str] | None = None) -> tuple[list, list]:
        """Read exchangeInfo; keep the wanted symbols that are TRADING perpetuals. Return
        ``(added, removed)``; the live connection is re-subscribed accordingly."""
        info = parse_exchange_info(await self.rest.get("/fapi/v1/exchangeInfo", weight=1))
        trading = {s.symbol for s in info.symbols
                   if s.status == "TRADING" and s.contract_type == "PERPETUAL"}
        want = {s.upper() for s in (wanted if wanted is not None else self.symbols)}
        keep = sorted(want & trading)
        added = sorted(set(keep) - set(self.symbols))
        removed = sorted(set(self.symbols) - set(keep))
        self.symbols = keep
        for s in added:
            self._new_book(s)
        for s in removed:
            self.books.pop(s, None)
        if self._ws is not None:
            if added:
                await self._send_method("SUBSCRIBE", self.stream_names(added))
                self.counters.subscribes += 1
            if removed:
                await self._send_method("UNSUBSCRIBE", self.stream_names(removed))
                self.counters.unsubscribes += 1
        return added, removed

    # ---------------------------------------------------------------- connection
    async def _session(self) -> None:
        url = f"{self.ws_url}/stream?streams=" + "/".join(self.stream_names())
        async with websockets.connect(url, ping_interval=20, ping_timeout=20,
                                      max_size=2**24, compression=None) as ws:
            self._ws = ws
            self.counters.connects += 1
            for symbol, book in self.books.items():  # whatever was missed: resync every book,
                book.discard()  # now: a quiet symbol sends no diff that would ask for it
                self._want_snapshot(symbol)
            opened = time.monotonic()
            try:
                while not self._stopping.is_set():
                    left = opened + self.max_connection_s - time.monotonic()
                    if left <= 0:
                        self.counters.rollovers += 1
                        return
                    try:
                        async with asyncio.timeout(min(self.data_timeout_s, left)):
                            raw = await ws.recv()
                    except TimeoutError:
                        if time.monotonic() - opened >= self.max_connection_s:
                            continue
                        self.counters.timeouts += 1
                        raise
                    self._on_message(raw)
            finally:
                self._ws = None

    async def _send_method(self, method: str, params: list[str]) -> None:
        self._req_id += 1
        await self._ws.send(json.dumps({"method": method, "params": params, "id": self._req_id}))

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    # ---------------------------------------------------------------- messages
    def _on_message(self, raw: str | bytes) -> None:
        if isinstance(raw, str) and raw.startswith('{"result"'):
            return  # a SUBSCRIBE/UNSUBSCRIBE acknowledgement
        record = self.decoder.message(raw)
        if record is None:
            return
        self._stat(record)
        if isinstance(record, DepthDiff):
            self._on_diff(record)
            return
        if isinstance(record, BookTicker):
            self._check_top(record)
        if self.on_record is not None:
            self.on_record(record)

    def _stat(self, record: Record) -> None:
        name = f"{getattr(record, 'symbol', '').lower()}@{type(record).__name__}"
        st = self.counters.streams.get(name)
        if st is None:
            st = self.counters.streams[name] = StreamStats()
        st.messages += 1
        ts = getattr(record, "ts_event", 0)
        if ts:
            st.lag_ms = (time.time_ns() - ts) / 1e6
            st.max_lag_ms = max(st.max_lag_ms, st.lag_ms)

    def _on_diff(self, diff: DepthDiff) -> None:
        book = self.books.get(diff.symbol)
        if book is None:
            return  # unsubscribed while in flight
        if book.on_diff(diff):
            self._last_diff_u[diff.symbol] = diff.final_update_id
            early = self._early_tops.get(diff.symbol)
            if early:
                t = early.pop(diff.final_update_id, None)
                for u in [u for u in early if u < diff.final_update_id]:
                    del early[u]  # the book moved past them: not comparable any more
                if t is not None:
                    self._compare_top(book, t)
            if self.on_book is not None:
                self.on_book(book, diff)
        if book.needs_snapshot:
            self._want_snapshot(diff.symbol)

    def _want_snapshot(self, symbol: str) -> None:
        """Fetch a snapshot for ``symbol`` unless one is on its way."""
        if symbol not in self._fetching:
            task = asyncio.get_running_loop().create_task(self._snapshot(symbol))
            self._fetching[symbol] = task

    def _check_top(self, t: BookTicker) -> None:
        """A bookTicker at an applied diff's u must equal the book's top (counted if not).

        The two streams are not ordered with each other: a ticker ahead of its diff waits for
        it (a few per symbol at most)."""
        book = self.books.get(t.symbol)
        if book is None or book.needs_snapshot:
            return
        last = self._last_diff_u.get(t.symbol, -1)
        if t.update_id == last:
            self._compare_top(book, t)
        elif t.update_id > last:
            early = self._early_tops.setdefault(t.symbol, {})
            if len(early) < EARLY_TOPS:
                early[t.update_id] = t

    def _compare_top(self, book: OrderBook, t: BookTicker) -> None:
        self.counters.tops_checked += 1
        if book.top() != (t.bid_px, t.bid_qty, t.ask_px, t.ask_qty):
            self.counters.top_mismatches += 1

    async def _snapshot(self, symbol: str) -> None:
        try:
            delay = self.backoff_s
            while not self._stopping.is_set():
                try:
                    body = await self.rest.get("/fapi/v1/depth",
                                               {"symbol": symbol, "limit": DEPTH_LIMIT},
                                               weight=20)
                    snap = parse_depth_snapshot(body, symbol)
                except (RestError, WireError) as exc:
                    self.counters.snapshot_failures += 1
                    log.warning("binance %s depth snapshot: %s", symbol, exc)
                    await self._sleep(self._rng.uniform(0, delay))
                    delay = min(delay * 2, self.backoff_max_s)
                    continue
                book = self.books.get(symbol)
                if book is not None and book.needs_snapshot:
                    self.counters.snapshots += 1
                    book.on_snapshot(snap)
                    if book.needs_snapshot:  # the buffer did not bridge it: try again
                        await self._sleep(self._rng.uniform(0, delay))
                        continue
                return
        finally:
            self._fetching.pop(symbol, None)

    def _new_book(self, symbol: str) -> None:
        self.books[symbol] = OrderBook(symbol, SyncRule.FUTURES)
