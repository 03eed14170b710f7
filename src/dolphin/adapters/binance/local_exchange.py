"""A local exchange that speaks Binance USDT-M's public protocol on 127.0.0.1.

These machines cannot reach Binance. The market-data client is real and is tested against this
server, which replays real recorded messages. It answers the public REST endpoints
(``/fapi/v1/ping``, ``time``, ``exchangeInfo``, ``depth``, ``klines``, ``fundingRate``,
``premiumIndex``) and serves WebSocket market streams the way ``fstream.binance.com`` does:
combined streams on ``/stream?streams=a/b``, raw streams on ``/ws/<stream>``, and
``SUBSCRIBE``/``UNSUBSCRIBE``/``LIST_SUBSCRIPTIONS`` requests on either. One websockets server
carries both protocols: a request without a WebSocket upgrade is answered as REST.

What it plays is a *tape*, a time-ordered list of messages:

- captures (``--capture FILE…``) play as recorded, the raw JSON exactly as it was received and
  the gaps between messages divided by ``speed``. Files are chained in order, so a capture that
  continues an earlier file's stream (no snapshot of its own) follows that file. A capture's REST
  depth snapshot seeds the exchange's own book; the exchange then applies every diff as it plays
  it. ``/depth`` answers from that book, with ``lastUpdateId`` the last diff played, so a client
  that syncs by Binance's procedure sees what it would see against Binance. A request made before
  the tape reaches the capture's snapshot waits for it (up to ``DEPTH_WAIT_S``), as Binance,
  which always has a book, would answer it late rather than not;
- bar files (``--bars FILE --bar 1m``) play as ``kline_1m`` (a closed kline at each bar's end),
  ``aggTrade`` (one trade at the close) and ``markPrice@1s`` streams, one bar every
  ``bar_seconds / speed`` seconds. ``/klines`` serves the bars already played.

The tape starts when the first WebSocket client connects (``start_tape`` starts it at once) and
plays once. ``max_connection_s`` closes every connection after that long, as Binance does at
24 h. A client whose send queue fills (``send_queue`` messages behind) is disconnected, as
Binance drops a slow consumer; ``slow_client="wait"`` instead pauses the tape until every queue
is below half, so a replay that must stay gap-free does not depend on how fast the machine is.
Faults (``Faults.parse``) act on the N-th message played (``drop``, ``stall``), the N-th
depth diff played (the message faults, aimed at the stream a book depends on) or the K-th REST
request:

=================  ==========================================================================
``drop@N``         close every connection abruptly (no close frame) at message N
``stall@N:S``      stop sending for S seconds at message N (connections stay open, pings too)
``gap@N``          never send depth diff N (the exchange's book still applies it)
``crossed@N``      send depth diff N with an extra bid at the best ask (a crossed book)
``malformed@N``    send half of depth diff N's JSON text before it
``dup@N``          send depth diff N twice
``reorder@N``      send the message after depth diff N before it
``rest429@K``      answer REST request K with 429 and ``Retry-After: 1``
``rest5xx@K``      answer REST request K with 503
=================  ==========================================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import http
import json
import logging
import time
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
import numpy as np
import pandas as pd
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from dolphin.adapters.binance.book import ASK, BID, OrderBook, SyncRule
from dolphin.adapters.binance.wire import (
    FIXED_DECIMALS,
    DepthDiff,
    DepthSnapshot,
    WireError,
    capture_line_body,
    decode_capture_line,
    open_capture,
)
from dolphin.core.errors import ConfigError, DataError
from dolphin.core.io import read_parquet

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
#: Binance closes every market-stream connection after 24 hours.
MAX_CONNECTION_S = 24 * 3600.0
#: Binance USDT-M pings every 3 minutes and drops a connection whose pong is 10 minutes late.
PING_INTERVAL_S, PONG_TIMEOUT_S = 180.0, 600.0
#: A client that cannot keep up with this many queued messages is disconnected.
SEND_QUEUE = 10_000
#: A /depth request before the tape reaches the capture's snapshot waits this long for it.
DEPTH_WAIT_S = 10.0
#: What a full send queue does: disconnect the client (Binance) or pause the tape.
SLOW_CLIENT = ("drop", "wait")
FAULT_KINDS = ("drop", "stall", "gap", "crossed", "malformed", "dup", "reorder", "rest429",
               "rest5xx")
BAR_SECONDS = {"1m": 60, "3m": 180, "5m": 300, "15m": 900, "1h": 3600}


# --------------------------------------------------------------------------- faults

@dataclass(frozen=True)
class Faults:
    """Where to inject faults: ``{kind: {n: argument}}`` (``stall``'s argument: seconds)."""

    at: dict[str, dict[int, float]] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str | None) -> Faults:
        """Parse ``"drop@500,stall@80:2.5,rest429@1"``; a bad entry is a ConfigError."""
        at: dict[str, dict[int, float]] = {}
        for part in filter(None, (p.strip() for p in (spec or "").split(","))):
            kind, sep, where = part.partition("@")
            n, _, arg = where.partition(":")
            if kind not in FAULT_KINDS or not sep or not n.isdigit() or int(n) < 1:
                raise ConfigError(f"--faults: bad entry {part!r} (kinds: "
                                  f"{', '.join(FAULT_KINDS)}; form kind@N[:seconds], N >= 1)")
            try:
                value = float(arg) if arg else 1.0
            except ValueError:
                raise ConfigError(f"--faults: bad seconds in {part!r}") from None
            at.setdefault(kind, {})[int(n)] = value
        return cls(at)

    def get(self, kind: str, n: int) -> float | None:
        """Return the argument of fault ``kind`` at ``n``, or None when there is none."""
        return self.at.get(kind, {}).get(n)


# --------------------------------------------------------------------------- the tape

@dataclass(frozen=True, slots=True)
class TapeMessage:
    """One message to play: offset from the tape's start (recorded time), stream, raw text."""

    t_ns: int
    stream: str
    text: str
    record: Any = None  # the parsed depth diff (for the exchange's book), else None


@dataclass
class CaptureTape:
    """The messages, snapshots and exchangeInfo read from capture files."""

    messages: list[TapeMessage] = field(default_factory=list)
    snapshots: list[tuple[int, DepthSnapshot]] = field(default_factory=list)
    exchange_info: dict[str, Any] | None = None
    bad_lines: int = 0


def _capture_lines(path: Path, tape: CaptureTape) -> Iterator[tuple[int, Any, bytes]]:
    """Yield ``(ts_recv, record, raw JSON)`` of a capture file's good lines; count bad ones."""
    try:
        with open_capture(path) as fh:
            for line in fh:
                try:
                    got = decode_capture_line(line)
                except WireError:
                    tape.bad_lines += 1
                    continue
                if got is not None:
                    yield got[0], got[1], capture_line_body(line)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"cannot read the capture ({exc})", source=str(path)) from None


def read_captures(paths: Iterable[Path]) -> CaptureTape:
    """Read capture files in order into one tape (later files continue earlier ones)."""
    tape, t0 = CaptureTape(), None
    for path in paths:
        offset = tape.messages[-1].t_ns if tape.messages else 0
        first_msg, first_snap = len(tape.messages), len(tape.snapshots)
        for ts, record, body in _capture_lines(path, tape):
            t0 = ts if t0 is None else t0
            t = max(ts - t0, offset)  # a later file never plays before the last one
            if isinstance(record, DepthSnapshot):
                tape.snapshots.append((t, record))
            elif body.startswith(b'{"timezone"'):
                tape.exchange_info = json.loads(body)
            elif (stream := json.loads(body).get("stream")) is not None:
                diff = record if isinstance(record, DepthDiff) else None
                tape.messages.append(TapeMessage(t, stream, body.decode(), diff))
        had_info = tape.exchange_info is not None
        if len(tape.messages) == first_msg and len(tape.snapshots) == first_snap and not had_info:
            raise DataError(f"no Binance capture line ({tape.bad_lines:,} bad lines so far)",
                            source=str(path))
        _name_snapshots(tape, first_msg, first_snap, path)
    tape.messages.sort(key=lambda m: m.t_ns)
    return tape


def _name_snapshots(tape: CaptureTape, first_msg: int, first_snap: int, path: Path) -> None:
    """Give a file's symbol-less snapshots (hftbacktest's: one symbol per file) its symbol."""
    symbols = {m.stream.split("@")[0].upper() for m in tape.messages[first_msg:]}
    for i in range(first_snap, len(tape.snapshots)):
        t, snap = tape.snapshots[i]
        if snap.symbol:
            continue
        if len(symbols) != 1:
            raise DataError(f"a depth snapshot without a symbol in a capture of {len(symbols)} "
                            "symbols", source=str(path))
        tape.snapshots[i] = (t, msgspec.structs.replace(snap, symbol=next(iter(symbols))))


def bar_tape(path: Path, bar: str = "1m") -> tuple[list[TapeMessage], pd.DataFrame]:
    """Turn a bars parquet (long layout) into kline/aggTrade/markPrice messages, bar by bar."""
    if bar not in BAR_SECONDS:
        raise ConfigError(f"--bar {bar!r}: one of {', '.join(BAR_SECONDS)}")
    try:
        bars = read_parquet(path, columns=["timestamp", "symbol", "open", "high", "low",
                                              "close", "volume"])
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"cannot read bars ({str(exc).splitlines()[0]})",
                        source=str(path)) from None
    bars = bars.sort_values(["timestamp", "symbol"], kind="stable").reset_index(drop=True)
    step_ms = BAR_SECONDS[bar] * 1000
    ts = pd.to_datetime(bars["timestamp"], utc=True)
    open_ms = (ts.astype("int64") // 1_000_000).to_numpy()
    t0 = int(open_ms.min())
    out: list[TapeMessage] = []
    cols = [bars[c].to_numpy() for c in ("symbol", "open", "high", "low", "close", "volume")]
    for i, (sym, o, h, lo, c, v) in enumerate(zip(*cols, strict=True)):
        if not np.isfinite(c) or c <= 0:
            continue
        s = str(sym).lower()
        close_ms = int(open_ms[i]) + step_ms - 1
        at = (close_ms + 1 - t0) * 1_000_000  # known at the bar's close
        k = {"t": int(open_ms[i]), "T": close_ms, "s": str(sym), "i": bar, "f": i, "L": i,
             "o": _num(o), "c": _num(c), "h": _num(h), "l": _num(lo), "v": _num(v), "n": 1,
             "x": True, "q": _num(float(v) * float(c)), "V": "0", "Q": "0", "B": "0"}
        e = close_ms + 1
        out.append(TapeMessage(at, f"{s}@kline_{bar}", json.dumps(
            {"stream": f"{s}@kline_{bar}", "data": {"e": "kline", "E": e, "s": str(sym), "k": k}},
            separators=(",", ":"))))
        out.append(TapeMessage(at, f"{s}@aggTrade", json.dumps(
            {"stream": f"{s}@aggTrade", "data": {"e": "aggTrade", "E": e, "s": str(sym), "a": i,
             "p": _num(c), "q": _num(v), "f": i, "l": i, "T": close_ms, "m": False}},
            separators=(",", ":"))))
        out.append(TapeMessage(at, f"{s}@markPrice@1s", json.dumps(
            {"stream": f"{s}@markPrice@1s", "data": {"e": "markPriceUpdate", "E": e,
             "s": str(sym), "p": _num(c), "i": _num(c), "P": _num(c), "r": "0.00010000",
             "T": (e // 28_800_000 + 1) * 28_800_000}}, separators=(",", ":"))))
    return out, bars


def _num(x: float) -> str:
    """A decimal string Binance-style: no exponent, the shortest text that reads back as the
    same float (so a replayed bar is the bar in the file), rounded to 8 decimals beyond that."""
    text = np.format_float_positional(float(x), unique=True, trim="0")
    frac = text.partition(".")[2]
    if len(frac) > FIXED_DECIMALS:
        text = np.format_float_positional(float(x), precision=FIXED_DECIMALS, unique=False,
                                          trim="0")
    return text


def _ticks_text(ticks: int) -> str:
    """Fixed-point ticks (``wire.FIXED_DECIMALS``) as a decimal string, exactly."""
    sign = "-" if ticks < 0 else ""
    whole, frac = divmod(abs(int(ticks)), 10**FIXED_DECIMALS)
    frac_text = f"{frac:0{FIXED_DECIMALS}d}".rstrip("0") or "0"
    return f"{sign}{whole}.{frac_text}"


# --------------------------------------------------------------------------- the exchange

class _Client:
    """One WebSocket connection: its subscriptions and its send queue."""

    def __init__(self, ws: ServerConnection, combined: bool, streams: set[str],
                 queue: int = SEND_QUEUE) -> None:
        self.ws = ws
        self.combined = combined
        self.streams = streams
        self.queue: asyncio.Queue[str | None] = asyncio.Queue(queue)
        self.opened = time.monotonic()


class LocalExchange:
    """Serve a tape over Binance USDT-M's public REST and WebSocket protocols."""

    def __init__(self, *, captures: Iterable[Path] = (), bars: Path | None = None,
                 bar: str = "1m", speed: float = 1.0, faults: Faults | None = None,
                 exchange_info: Path | None = None,
                 max_connection_s: float = MAX_CONNECTION_S,
                 ping_interval_s: float = PING_INTERVAL_S, send_queue: int = SEND_QUEUE,
                 slow_client: str = "drop") -> None:
        if not speed > 0:
            raise ConfigError(f"--speed must be positive, got {speed}")
        if slow_client not in SLOW_CLIENT:
            raise ConfigError(f"slow_client must be one of {SLOW_CLIENT}, got {slow_client!r}")
        if not send_queue >= 2:
            raise ConfigError(f"send_queue must be at least 2, got {send_queue}")
        self.send_queue = int(send_queue)
        self.slow_client = slow_client
        self.speed = speed
        self.faults = faults or Faults()
        self.max_connection_s = max_connection_s
        self.ping_interval_s = ping_interval_s
        tape = read_captures(list(captures))
        self.messages = tape.messages
        self.bars: pd.DataFrame | None = None
        if bars is not None:
            bar_messages, self.bars = bar_tape(bars, bar)
            self.messages = sorted(self.messages + bar_messages, key=lambda m: m.t_ns)
        self.bar = bar
        self.snapshots = sorted(tape.snapshots, key=lambda s: s[0])
        info = tape.exchange_info or _load_exchange_info(exchange_info)
        symbols = {m.stream.split("@")[0].upper() for m in self.messages}
        self.exchange_info = with_symbols(info, sorted(symbols))
        self.books: dict[str, OrderBook] = {}
        self.clients: set[_Client] = set()
        self.counters: Counter[str] = Counter()
        self.played = 0  # messages played (the N of the faults)
        self.played_t_ns = -1  # tape time of the last message played
        self.rest_requests = 0
        self.finished = asyncio.Event()
        self._depth_sent = 0
        self._tape_task: asyncio.Task | None = None
        self._server: Server | None = None
        self._held: TapeMessage | None = None  # reorder: the message sent after the next one
        self.port = 0

    # ---------------------------------------------------------------- lifecycle
    async def start(self, host: str = HOST, port: int = 0) -> int:
        """Listen on ``host:port`` (0: any free port); return the port."""
        # Pings are sent by ``_keepalive``: websockets' own carry random bytes, and some clients
        # (NautilusTrader's) echo the payload as text, as Binance's pings allow.
        self._server = await serve(self._ws_handler, host, port,
                                   process_request=self._process_request, compression=None,
                                   ping_interval=None, max_queue=64)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def start_tape(self) -> None:
        """Start playing the tape (the first WebSocket connection does this too)."""
        if self._tape_task is None:
            self._tape_task = asyncio.get_running_loop().create_task(self._play())

    async def stop(self) -> None:
        """Stop playing and close every connection and the listener."""
        if self._tape_task is not None:
            self._tape_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tape_task
        for c in list(self.clients):
            await c.queue.put(None)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def urls(self) -> dict[str, str]:
        """The base URLs a client points at."""
        return {"http": f"http://{HOST}:{self.port}", "ws": f"ws://{HOST}:{self.port}"}

    # ---------------------------------------------------------------- the tape
    async def _play(self) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time()
        snaps = list(self.snapshots)
        for msg in self.messages:
            while snaps and snaps[0][0] <= msg.t_ns:
                self._seed(snaps.pop(0)[1])
            wait = start + msg.t_ns / 1e9 / self.speed - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            else:  # behind the tape: let the senders and the clients run between messages
                await asyncio.sleep(0)
            if self.slow_client == "wait" and self._backlogged():
                paused = loop.time()
                while self._backlogged():
                    await asyncio.sleep(0.005)
                start += loop.time() - paused  # the tape's clock stops while it waits
            await self._emit(msg)
        for _, snap in snaps:
            self._seed(snap)
        if self._held is not None:
            self._broadcast(self._held)
            self._held = None
        self.finished.set()

    def _book(self, symbol: str) -> OrderBook:
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = OrderBook(symbol, SyncRule.FUTURES, max_pending=100_000)
        return book

    def _backlogged(self) -> bool:
        return any(c.queue.qsize() > self.send_queue // 2 for c in self.clients)

    def _seed(self, snap: DepthSnapshot) -> None:
        book = self._book(snap.symbol)
        if book.needs_snapshot:  # the diffs played so far are buffered: it bridges them
            book.on_snapshot(snap)

    async def _connection_faults(self, n: int) -> None:
        f = self.faults
        if f.get("stall", n) is not None:
            self.counters["stall"] += 1
            await asyncio.sleep(f.get("stall", n))
        if f.get("drop", n) is not None:
            self.counters["drop"] += 1
            for c in list(self.clients):
                c.ws.transport.abort()

    async def _emit(self, msg: TapeMessage) -> None:
        self.played += 1
        self.played_t_ns = msg.t_ns
        await self._connection_faults(self.played)
        f = self.faults
        diff = msg.record
        d = 0  # the depth diff's number; 0 for other messages (no message fault applies)
        if diff is not None:
            self._apply(diff)
            self._depth_sent += 1
            d = self._depth_sent
        if f.get("malformed", d) is not None:
            self.counters["malformed"] += 1
            self._broadcast(TapeMessage(msg.t_ns, msg.stream, msg.text[: len(msg.text) // 2]))
        if f.get("gap", d) is not None:
            self.counters["gap"] += 1
            return
        if f.get("crossed", d) is not None:
            self.counters["crossed"] += 1
            msg = TapeMessage(msg.t_ns, msg.stream, self._crossed(msg.text, diff.symbol))
        if f.get("reorder", d) is not None and self._held is None:
            self.counters["reorder"] += 1
            self._held = msg
            return
        self._broadcast(msg)
        if f.get("dup", d) is not None:
            self.counters["dup"] += 1
            self._broadcast(msg)
        if self._held is not None and self._held is not msg:
            self._broadcast(self._held)
            self._held = None

    def _apply(self, diff: DepthDiff) -> None:
        self._book(diff.symbol).on_diff(diff)

    def _crossed(self, text: str, symbol: str) -> str:
        doc = json.loads(text)
        book = self.books.get(symbol)
        ask = book.top()[2] if book is not None and not book.needs_snapshot else 0
        if ask > 0:
            doc["data"]["b"] = [*doc["data"].get("b", []), [_ticks_text(ask), "1"]]
        return json.dumps(doc, separators=(",", ":"))

    def _broadcast(self, msg: TapeMessage) -> None:
        for c in list(self.clients):
            if msg.stream not in c.streams:
                continue
            text = msg.text if c.combined else _raw_data(msg.text)
            try:
                c.queue.put_nowait(text)
            except asyncio.QueueFull:
                self.counters["slow_client_dropped"] += 1
                c.ws.transport.abort()

    # ---------------------------------------------------------------- WebSocket
    async def _ws_handler(self, ws: ServerConnection) -> None:
        parts = urlsplit(ws.request.path)
        if parts.path == "/stream":
            streams = set(filter(None, parse_qs(parts.query).get("streams", [""])[0].split("/")))
            client = _Client(ws, True, streams, self.send_queue)
        elif parts.path.startswith("/ws"):
            raw = parts.path[len("/ws"):].strip("/")
            client = _Client(ws, False, set(filter(None, raw.split("/"))), self.send_queue)
        else:
            await ws.close(1008, "unknown path")
            return
        self.clients.add(client)
        self.counters["connections"] += 1
        self.start_tape()
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self._send(client)), loop.create_task(self._keepalive(ws))]
        try:
            async for text in ws:
                self._request(client, text)
        except ConnectionClosed:
            pass
        finally:
            self.clients.discard(client)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _keepalive(self, ws: ServerConnection) -> None:
        """Ping with the server time as text; close a connection whose pong does not come."""
        try:
            while True:
                await asyncio.sleep(self.ping_interval_s)
                waiter = await ws.ping(str(time.time_ns() // 1_000_000))
                try:
                    async with asyncio.timeout(PONG_TIMEOUT_S):
                        await waiter
                except TimeoutError:
                    self.counters["pong_timeouts"] += 1
                    await ws.close(1011, "pong timeout")
                    return
                self.counters["pongs"] += 1
        except ConnectionClosed:
            return

    async def _send(self, client: _Client) -> None:
        deadline = client.opened + self.max_connection_s
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.counters["lifetime_closed"] += 1
                    await client.ws.close(1000, "connection lifetime reached")
                    return
                try:
                    async with asyncio.timeout(left):
                        text = await client.queue.get()
                except TimeoutError:
                    continue
                if text is None:
                    await client.ws.close(1001, "exchange stopping")
                    return
                await client.ws.send(text)
        except ConnectionClosed:
            return

    def _request(self, client: _Client, text: str | bytes) -> None:
        """A SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS request, answered as Binance does."""
        try:
            req = json.loads(text)
            method, rid = req["method"], req.get("id")
            params = [str(p) for p in req.get("params", [])]
        except (ValueError, KeyError, TypeError):
            self._reply(client, {"code": 2, "msg": "Invalid request", "id": None})
            return
        if method == "SUBSCRIBE":
            client.streams.update(params)
            self._reply(client, {"result": None, "id": rid})
        elif method == "UNSUBSCRIBE":
            client.streams.difference_update(params)
            self._reply(client, {"result": None, "id": rid})
        elif method == "LIST_SUBSCRIPTIONS":
            self._reply(client, {"result": sorted(client.streams), "id": rid})
        else:
            self._reply(client, {"code": 1, "msg": f"Unknown method {method!r}", "id": rid})

    def _reply(self, client: _Client, doc: dict[str, Any]) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            client.queue.put_nowait(json.dumps(doc, separators=(",", ":")))

    # ---------------------------------------------------------------- REST
    async def _process_request(self, ws: ServerConnection,
                               request: Request) -> Response | None:
        if "upgrade" in request.headers.get("Connection", "").lower():
            return None  # a WebSocket handshake
        parts = urlsplit(request.path)
        if parts.path == "/fapi/v1/depth":  # Binance always has a book: before the tape reaches
            await self._until_seeded(parts.query)  # the capture's snapshot, the answer waits
        return self._answer(request)

    async def _until_seeded(self, query: str) -> None:
        symbol = parse_qs(query).get("symbol", [""])[0].upper()
        if not any(snap.symbol == symbol for _, snap in self.snapshots):
            return
        deadline = time.monotonic() + DEPTH_WAIT_S
        while time.monotonic() < deadline and not self.finished.is_set():
            book = self.books.get(symbol)
            if book is not None and not book.needs_snapshot:
                return
            await asyncio.sleep(0.01)

    def _answer(self, request: Request) -> Response:
        self.rest_requests += 1
        k = self.rest_requests
        if self.faults.get("rest429", k) is not None:
            self.counters["rest429"] += 1
            return _json_response(429, {"code": -1003, "msg": "Too many requests."},
                                  [("Retry-After", "1")])
        if self.faults.get("rest5xx", k) is not None:
            self.counters["rest5xx"] += 1
            return _json_response(503, {"code": -1001, "msg": "Service unavailable."})
        parts = urlsplit(request.path)
        query = {key: v[0] for key, v in parse_qs(parts.query).items()}
        route = _ROUTES.get(parts.path)
        if route is None:  # counted by path: what a client needs beyond the public endpoints
            self.counters[f"unknown {parts.path}"] += 1
            return _json_response(404, {"code": -1, "msg": f"no route {parts.path}"})
        try:
            status, body = route(self, query)
        except (KeyError, ValueError) as exc:
            return _json_response(400, {"code": -1102, "msg": f"bad parameter ({exc})"})
        weight = _WEIGHTS.get(parts.path, 1)
        self.counters["rest_weight"] += weight
        return _json_response(status, body,
                              [("X-MBX-USED-WEIGHT-1M", str(self.counters["rest_weight"]))])

    def _time(self, query: dict[str, str]) -> tuple[int, Any]:
        return 200, {"serverTime": time.time_ns() // 1_000_000}

    def _ping(self, query: dict[str, str]) -> tuple[int, Any]:
        return 200, {}

    def _exchange_info(self, query: dict[str, str]) -> tuple[int, Any]:
        info = dict(self.exchange_info)
        info["serverTime"] = time.time_ns() // 1_000_000
        return 200, info

    def _depth(self, query: dict[str, str]) -> tuple[int, Any]:
        symbol = query["symbol"].upper()
        limit = int(query.get("limit", 500))
        book = self.books.get(symbol)
        if book is None or book.needs_snapshot:
            return 503, {"code": -1001, "msg": f"no book for {symbol} yet"}
        now = time.time_ns() // 1_000_000
        return 200, {"lastUpdateId": book.update_id, "E": now, "T": now,
                     "bids": _levels(book, BID, limit), "asks": _levels(book, ASK, limit)}

    def _klines(self, query: dict[str, str]) -> tuple[int, Any]:
        symbol = query["symbol"].upper()
        interval = query.get("interval", self.bar)
        if self.bars is None or interval != self.bar:
            return 200, []
        b = self.bars[self.bars["symbol"] == symbol]
        step = BAR_SECONDS[interval] * 1000
        open_ms = pd.to_datetime(b["timestamp"], utc=True).astype("int64") // 1_000_000
        t0 = int(pd.to_datetime(self.bars["timestamp"], utc=True).min().value // 1_000_000)
        played_ms = t0 + self.played_t_ns // 1_000_000  # bars closed on the tape so far
        keep = (open_ms + step <= played_ms).to_numpy()
        if "startTime" in query:
            keep &= (open_ms >= int(query["startTime"])).to_numpy()
        if "endTime" in query:
            keep &= (open_ms <= int(query["endTime"])).to_numpy()
        b, open_ms = b[keep], open_ms[keep]
        limit = min(int(query.get("limit", 500)), 1500)
        rows = [[int(t), _num(o), _num(h), _num(lo), _num(c), _num(v), int(t) + step - 1,
                 _num(v * c), 1, "0", "0", "0"]
                for t, o, h, lo, c, v in zip(open_ms, b["open"], b["high"], b["low"], b["close"],
                                             b["volume"], strict=True)]
        return 200, rows[:limit]

    def _account(self, query: dict[str, str]) -> tuple[int, Any]:
        """``/fapi/v2/account``: signed on Binance; here an empty paper account (fee tier 0), the
        one private read NautilusTrader's Binance data client makes when it loads instruments.
        The signature is not checked: this exchange holds no account."""
        return 200, {"feeTier": 0, "canTrade": False, "canDeposit": False,
                     "canWithdraw": False, "updateTime": 0, "assets": [], "positions": []}

    def _position_risk(self, query: dict[str, str]) -> tuple[int, Any]:
        """``/fapi/v3/positionRisk`` (signed on Binance): no positions."""
        return 200, []

    def _funding_rate(self, query: dict[str, str]) -> tuple[int, Any]:
        return 200, []

    def _premium_index(self, query: dict[str, str]) -> tuple[int, Any]:
        symbol = query["symbol"].upper()
        price = "0"
        book = self.books.get(symbol)
        if book is not None and not book.needs_snapshot:
            bid, _, ask, _ = book.top()
            price = _ticks_text((bid + ask) // 2)
        elif self.bars is not None:
            rows = self.bars[self.bars["symbol"] == symbol]
            if len(rows):
                price = _num(float(rows["close"].iloc[-1]))
        now = time.time_ns() // 1_000_000
        return 200, {"symbol": symbol, "markPrice": price, "indexPrice": price,
                     "estimatedSettlePrice": price, "lastFundingRate": "0.00010000",
                     "interestRate": "0.00010000",
                     "nextFundingTime": (now // 28_800_000 + 1) * 28_800_000, "time": now}


_ROUTES = {
    "/fapi/v1/ping": LocalExchange._ping,
    "/fapi/v1/time": LocalExchange._time,
    "/fapi/v1/exchangeInfo": LocalExchange._exchange_info,
    "/fapi/v1/depth": LocalExchange._depth,
    "/fapi/v1/klines": LocalExchange._klines,
    "/fapi/v1/fundingRate": LocalExchange._funding_rate,
    "/fapi/v1/premiumIndex": LocalExchange._premium_index,
    "/fapi/v2/account": LocalExchange._account,
    "/fapi/v3/positionRisk": LocalExchange._position_risk,
}
#: Request weights (Binance USDT-M, depth at limit <= 1000 counted as 10).
_WEIGHTS = {"/fapi/v1/exchangeInfo": 1, "/fapi/v1/depth": 10, "/fapi/v1/klines": 5}


def _levels(book: OrderBook, side: int, limit: int) -> list[list[str]]:
    rows = book.levels(side, limit)
    return [[_ticks_text(px), _ticks_text(qty)] for px, qty in rows]


def _raw_data(text: str) -> str:
    """A combined-stream envelope's ``data`` (what a raw ``/ws/<stream>`` sends)."""
    try:
        return json.dumps(json.loads(text)["data"], separators=(",", ":"))
    except (ValueError, KeyError, TypeError):
        return text  # a malformed message stays malformed


def _json_response(status: int, body: Any, extra: list[tuple[str, str]] = ()) -> Response:
    data = json.dumps(body, separators=(",", ":")).encode()
    headers = Headers([("Date", email.utils.formatdate(usegmt=True)), ("Connection", "close"),
                       ("Content-Length", str(len(data))),
                       ("Content-Type", "application/json"), *extra])
    return Response(status, http.HTTPStatus(status).phrase, headers, data)


def with_symbols(info: dict[str, Any], symbols: list[str]) -> dict[str, Any]:
    """Return ``info`` with an entry (status TRADING, PERPETUAL, USDT-margined) for every symbol
    the tape plays that it lacks, modelled on its first entry (a real one when there is one)."""
    info = dict(info)
    have = {s.get("symbol") for s in info.get("symbols", [])}
    template = info["symbols"][0] if info.get("symbols") else {
        "contractType": "PERPETUAL", "quoteAsset": "USDT", "marginAsset": "USDT",
        "pricePrecision": 8, "quantityPrecision": 8, "baseAssetPrecision": 8,
        "quotePrecision": 8, "filters": [], "orderTypes": ["LIMIT", "MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"]}
    added = [{**template, "symbol": s, "pair": s, "status": "TRADING",
              "baseAsset": s.removesuffix("USDT"), "contractType": "PERPETUAL"}
             for s in symbols if s not in have]
    info["symbols"] = [*info.get("symbols", []), *added]
    return info


def _load_exchange_info(path: Path | None) -> dict[str, Any]:
    """exchangeInfo from ``path`` (a capture REST line or plain JSON), or a minimal one."""
    if path is None:
        return {"timezone": "UTC", "serverTime": 0, "rateLimits": [], "exchangeFilters": [],
                "assets": [], "symbols": []}
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise DataError(f"cannot read exchangeInfo ({exc})", source=str(path)) from None
    for line in lines:  # plain JSON, or cryptofeed's "<url> -> <time>: <json>" REST line
        body = line if line.lstrip().startswith(b"{") else capture_line_body(line)
        if body.lstrip().startswith(b'{"timezone"'):
            try:
                return json.loads(body)
            except ValueError:
                break
    raise DataError("not an exchangeInfo document", source=str(path))
