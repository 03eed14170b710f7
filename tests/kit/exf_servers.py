"""Local HTTP replay servers for the ExF clients: Binance USDT-M, Deribit DVOL, alternative.me.

Each server is a stdlib ``ThreadingHTTPServer`` on 127.0.0.1 (port 0, HTTP/1.1 keep-alive) run in
a daemon thread; use it as a context manager and point a client at ``server.url``. It serves the
REAL shared histories in ``indices/``, cut by the query parameters the way the source documents:

- Binance ``/fapi/v1/fundingRate`` from ``funding_rate_btc.json`` (8-hourly, PERCENT, served as
  Binance's fraction strings with 8 decimals) and ``/futures/data/takerlongshortRatio``
  (``period=1d`` only) from ``taker_ratio_btc.json``: ``limit``, ``startTime``, ``endTime``; no
  window gives the latest ``limit``, a start gives ``limit`` from it on. ``premiumIndex`` and
  ``openInterest`` serve the Binance documentation payloads (no history exists). Only BTCUSDT.
- Deribit ``get_volatility_index_data`` (BTC, ``1D``) from ``dvol_btc.json``: candles in
  ``[start_timestamp, end_timestamp]``; more than ``page`` of them gives the latest ``page`` and a
  ``continuation`` (the earliest timestamp served) for the next ``end_timestamp``. The file holds
  closes only: the close is served in the open, high and low places too.
- alternative.me ``/fng/`` from ``fear_greed_index.csv``: the latest ``limit`` days, newest first
  (``limit=0``: all), each stamped at its day's 00:00 UTC in seconds.

Fields the histories do not hold (Binance ``markPrice`` in funding rows, taker ``buyVol`` and
``sellVol``, F&G ``time_until_update``) are left out rather than invented.

Faults: ``faults={n: Fault...}`` replaces the response to the n-th request (1-based, counted over
every path) with an HTTP error (429 with ``Retry-After``, 500, 503 ...), a slow response, a body
edit (a field set, dropped, or the JSON truncated), a raw body, or a connection reset.
Every request is recorded in ``hits`` with its arrival time.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import socket
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, Self
from urllib.parse import parse_qsl, urlsplit

from tests.kit.paths import SHARED_DATA, require

INDICES = SHARED_DATA / "indices"
DOCS_HTTP = SHARED_DATA / "raw_ws" / "nautilus_samples" / "docs_examples_futures_http"
FUNDING_FILE = INDICES / "funding_rate_btc.json"
TAKER_FILE = INDICES / "taker_ratio_btc.json"
DVOL_FILE = INDICES / "dvol_btc.json"
FNG_FILE = INDICES / "fear_greed_index.csv"
PREMIUM_DOC = DOCS_HTTP / "http_futures_market_premium_index.json"
OI_DOC = DOCS_HTTP / "http_futures_market_open_interest.json"


# -------------------------------------------------------------------------------------- faults
class FaultKind(Enum):
    """What an injected fault does to one response."""

    HTTP = "http"  # answer with this status (and Retry-After) instead
    SLOW = "slow"  # wait delay_s, then answer normally
    SET = "set"  # set the value at path in the normal payload
    DROP = "drop"  # delete the key/index at path in the normal payload
    TRUNCATE = "truncate"  # send the first half of the normal body
    RAW = "raw"  # send this body with status 200
    RESET = "reset"  # close the connection with a TCP RST, no response


@dataclass(frozen=True)
class Fault:
    """One injected fault; build it with the class methods."""

    kind: FaultKind
    status: int = 200
    retry_after: str | None = None
    delay_s: float = 0.0
    path: tuple[str | int, ...] = ()
    value: Any = None
    body: bytes = b""

    @classmethod
    def http(cls, status: int, retry_after: str | None = None, body: bytes = b"") -> Fault:
        """Answer with HTTP ``status`` and ``body`` (default: the source's error body for the
        status), with ``Retry-After`` if given."""
        return cls(FaultKind.HTTP, status=status, retry_after=retry_after, body=body)

    @classmethod
    def slow(cls, delay_s: float) -> Fault:
        """Answer normally after ``delay_s`` seconds."""
        return cls(FaultKind.SLOW, delay_s=delay_s)

    @classmethod
    def set(cls, path: tuple[str | int, ...], value: Any) -> Fault:
        """Set ``payload[path[0]][path[1]]...`` to ``value`` (wrong type, out of range ...)."""
        return cls(FaultKind.SET, path=path, value=value)

    @classmethod
    def drop(cls, path: tuple[str | int, ...]) -> Fault:
        """Delete the key (or list index) at ``path`` of the payload."""
        return cls(FaultKind.DROP, path=path)

    @classmethod
    def truncate(cls) -> Fault:
        """Send only the first half of the normal JSON body."""
        return cls(FaultKind.TRUNCATE)

    @classmethod
    def raw(cls, body: bytes) -> Fault:
        """Send ``body`` as a 200 response."""
        return cls(FaultKind.RAW, body=body)

    @classmethod
    def reset(cls) -> Fault:
        """Reset the connection without answering."""
        return cls(FaultKind.RESET)

    def edit(self, payload: Any) -> Any:
        """Apply a SET or DROP to ``payload`` in place and return it."""
        *walk, last = self.path
        target = payload
        for key in walk:
            target = target[key]
        if self.kind is FaultKind.DROP:
            del target[last]
        else:
            target[last] = self.value
        return payload


@dataclass(frozen=True)
class Hit:
    """One request as the server saw it."""

    n: int  # 1-based request number
    path: str
    params: dict[str, str]
    t: float  # time.monotonic() at arrival


class ReplyError(Exception):
    """Raised by a route to answer with the source's error body."""

    def __init__(self, status: int, code: int | None, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


# ------------------------------------------------------------------------------------- servers
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms stall
    server: _Httpd

    def do_GET(self) -> None:
        split = urlsplit(self.path)
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        replay = self.server.replay
        fault = replay.record(split.path, params)
        if fault is not None and fault.kind is FaultKind.RESET:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if (
            fault is not None
            and fault.kind is FaultKind.SLOW
            and replay.stopping.wait(fault.delay_s)
        ):
            return
        status, body, headers = replay.respond(split.path, params, fault)
        try:
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up (a timeout) and closed the connection
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


class _Httpd(ThreadingHTTPServer):
    daemon_threads = True
    replay: ReplayServer


class ReplayServer:
    """Base of the replay servers: the HTTP plumbing, the request log and the faults."""

    ROUTES: ClassVar[dict[str, str]] = {}  # path -> method name

    def __init__(self, faults: Mapping[int, Fault] | None = None) -> None:
        self.faults = dict(faults or {})
        self.hits: list[Hit] = []
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._httpd = _Httpd(("127.0.0.1", 0), _Handler)
        self._httpd.replay = self
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=type(self).__name__,
            daemon=True,
        )

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def record(self, path: str, params: dict[str, str]) -> Fault | None:
        """Log a request; return the fault scheduled for its number, if any."""
        with self._lock:
            n = len(self.hits) + 1
            self.hits.append(Hit(n, path, params, time.monotonic()))
            return self.faults.get(n)

    def respond(
        self, path: str, params: dict[str, str], fault: Fault | None
    ) -> tuple[int, bytes, dict[str, str]]:
        """Return status, body and extra headers for a request, with its fault applied."""
        if fault is not None and fault.kind is FaultKind.HTTP:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            body = fault.body or _json(
                self.error(fault.status, None, f"injected HTTP {fault.status}")
            )
            return fault.status, body, headers
        if fault is not None and fault.kind is FaultKind.RAW:
            return 200, fault.body, {}
        try:
            method = self.ROUTES.get(path.rstrip("/") or "/")
            if method is None:
                raise ReplyError(404, None, f"no such path {path}")
            payload = getattr(self, method)(params)
        except ReplyError as reply:
            return reply.status, _json(self.error(reply.status, reply.code, reply.message)), {}
        if fault is not None and fault.kind in (FaultKind.SET, FaultKind.DROP):
            payload = fault.edit(payload)
        body = _json(payload)
        if fault is not None and fault.kind is FaultKind.TRUNCATE:
            body = body[: len(body) // 2]
        return 200, body, {}

    def error(self, status: int, code: int | None, message: str) -> Any:
        """The source's error payload (``code`` None: the source's code for ``status``)."""
        raise NotImplementedError


class BinanceReplayServer(ReplayServer):
    """Binance USDT-M public REST for the ExF endpoints (module docstring)."""

    ROUTES: ClassVar[dict[str, str]] = {
        "/fapi/v1/fundingRate": "funding_rate",
        "/fapi/v1/premiumIndex": "premium_index",
        "/futures/data/takerlongshortRatio": "taker_ratio",
        "/fapi/v1/openInterest": "open_interest",
    }
    SYMBOL = "BTCUSDT"

    def __init__(self, faults: Mapping[int, Fault] | None = None) -> None:
        super().__init__(faults)
        self.funding = _pairs(FUNDING_FILE)
        self.taker = _pairs(TAKER_FILE)
        self.premium_doc = json.loads(require(PREMIUM_DOC).read_text())
        self.oi_doc = json.loads(require(OI_DOC).read_text())

    def error(self, status: int, code: int | None, message: str) -> Any:
        """Binance's ``{"code", "msg"}``; throttling is -1003 TOO_MANY_REQUESTS."""
        if code is None:
            code = -1003 if status in (418, 429) else -1000
        return {"code": code, "msg": message}

    def funding_rate(self, q: dict[str, str]) -> list[dict[str, Any]]:
        """Funding history; the file's percent become Binance's 8-decimal fraction strings."""
        self._symbol(q, required=False)
        rows = _cut(self.funding, q, "startTime", "endTime", _int(q, "limit", 100, 1, 1000))
        return [
            {"symbol": self.SYMBOL, "fundingRate": f"{pct / 100:.8f}", "fundingTime": ms}
            for ms, pct in rows
        ]

    def taker_ratio(self, q: dict[str, str]) -> list[dict[str, Any]]:
        """Daily taker buy/sell ratio (timestamps as strings, as Binance's documentation)."""
        self._symbol(q, required=True)
        if q.get("period") != "1d":
            raise ReplyError(400, -1102, "the replay holds period=1d only")
        rows = _cut(self.taker, q, "startTime", "endTime", _int(q, "limit", 30, 1, 500))
        return [{"buySellRatio": f"{v:.4f}", "timestamp": str(ms)} for ms, v in rows]

    def premium_index(self, q: dict[str, str]) -> Any:
        """The documentation payload; without a symbol, a list of it."""
        if "symbol" not in q:
            return [dict(self.premium_doc)]
        self._symbol(q, required=True)
        return dict(self.premium_doc)

    def open_interest(self, q: dict[str, str]) -> Any:
        """The documentation payload."""
        self._symbol(q, required=True)
        return dict(self.oi_doc)

    def _symbol(self, q: dict[str, str], *, required: bool) -> None:
        if "symbol" not in q and required:
            raise ReplyError(400, -1102, "Mandatory parameter 'symbol' was not sent.")
        if q.get("symbol", self.SYMBOL) != self.SYMBOL:
            raise ReplyError(400, -1121, "Invalid symbol.")


class DeribitReplayServer(ReplayServer):
    """Deribit ``public/get_volatility_index_data`` over HTTP GET (module docstring)."""

    ROUTES: ClassVar[dict[str, str]] = {
        "/api/v2/public/get_volatility_index_data": "volatility_index"
    }

    def __init__(self, faults: Mapping[int, Fault] | None = None, *, page: int = 1000) -> None:
        super().__init__(faults)
        self.page = page
        self.dvol = _pairs(DVOL_FILE)

    def error(self, status: int, code: int | None, message: str) -> Any:
        """A JSON-RPC error envelope; throttling is Deribit's 10028 too_many_requests."""
        if code is None:
            code, message = (10028, "too_many_requests") if status == 429 else (-32000, message)
        return {
            "jsonrpc": "2.0",
            "error": {"code": code, "message": message},
            "testnet": False,
            **_us_stamps(),
        }

    def volatility_index(self, q: dict[str, str]) -> dict[str, Any]:
        """Daily candles in the window, the latest ``page`` of them, with a continuation."""
        for name in ("currency", "start_timestamp", "end_timestamp", "resolution"):
            if name not in q:
                raise ReplyError(400, -32602, f"Invalid params: {name} missing")
        if q["currency"] != "BTC" or q["resolution"] != "1D":
            raise ReplyError(400, -32602, "Invalid params: the replay holds BTC at 1D only")
        start = _int(q, "start_timestamp", 0, 0, 2**63, code=-32602)
        end = _int(q, "end_timestamp", 0, 0, 2**63, code=-32602)
        rows = [(ms, v) for ms, v in self.dvol if start <= ms <= end]
        more = rows[-self.page][0] if len(rows) > self.page else None
        data = [[ms, v, v, v, v] for ms, v in rows[-self.page :]]
        return {
            "jsonrpc": "2.0",
            "result": {"data": data, "continuation": more},
            "testnet": False,
            **_us_stamps(),
        }


class FearGreedReplayServer(ReplayServer):
    """alternative.me ``/fng/`` (module docstring)."""

    ROUTES: ClassVar[dict[str, str]] = {"/fng": "fng"}
    NAME = "Fear and Greed Index"

    def __init__(self, faults: Mapping[int, Fault] | None = None) -> None:
        super().__init__(faults)
        self.rows = _fng_rows()

    def error(self, status: int, code: int | None, message: str) -> Any:
        """alternative.me reports errors in ``metadata.error``."""
        return {"name": self.NAME, "data": [], "metadata": {"error": message}}

    def fng(self, q: dict[str, str]) -> dict[str, Any]:
        """The latest ``limit`` days, newest first."""
        if q.get("format", "json") != "json":
            raise ReplyError(400, None, "the replay serves format=json only")
        limit = _int(q, "limit", 1, 0, 10**6, code=None)
        rows = self.rows[::-1] if limit == 0 else self.rows[::-1][:limit]
        data = [
            {"value": str(value), "value_classification": cls, "timestamp": str(sec)}
            for sec, value, cls in rows
        ]
        return {"name": self.NAME, "data": data, "metadata": {"error": None}}


# ------------------------------------------------------------------------------------- helpers
def _fng_rows(path: Path = FNG_FILE) -> list[tuple[int, int, str]]:
    """``(day start in s, value, classification)`` from the F&G CSV, oldest first."""
    with require(path).open(newline="") as f:
        out = []
        for row in csv.DictReader(f):
            day = dt.datetime.fromisoformat(row["Date"]).replace(tzinfo=dt.UTC)
            out.append((int(day.timestamp()), int(row["fng_value"]), row["fng_class"]))
    return out


def _pairs(path: Path) -> list[tuple[int, float]]:
    return [(int(ms), float(v)) for ms, v in json.loads(require(path).read_text())]


def _int(
    q: dict[str, str], name: str, default: int, lo: int, hi: int, code: int | None = -1130
) -> int:
    """An integer query parameter in [lo, hi]; else a 400 with the source's ``code``."""
    raw = q.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise ReplyError(400, code, f"Data sent for parameter '{name}' is not valid.")
    return int(raw)


def _cut(
    rows: list[tuple[int, float]], q: dict[str, str], start_key: str, end_key: str, limit: int
) -> list[tuple[int, float]]:
    """Binance's window rule: from the start on when one is given, else the latest."""
    start = _int(q, start_key, 0, 0, 2**63) if start_key in q else None
    end = _int(q, end_key, 0, 0, 2**63) if end_key in q else None
    sel = [r for r in rows if (start is None or r[0] >= start) and (end is None or r[0] <= end)]
    return sel[:limit] if start is not None else sel[-limit:]


def _us_stamps() -> dict[str, int]:
    us = time.time_ns() // 1000
    return {"usIn": us, "usOut": us + 50, "usDiff": 50}


def _json(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
