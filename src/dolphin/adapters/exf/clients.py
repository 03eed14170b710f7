"""HTTP clients for the external factors (ExF): one client per source, typed validated values.

- ``BinanceExfClient`` (USDT-M public REST): funding-rate history, premium index, taker
  buy/sell volume ratio, open interest;
- ``DeribitDvolClient``: DVOL candles (``public/get_volatility_index_data``), following the
  ``continuation`` Deribit returns when a range holds more candles than one response;
- ``FearGreedClient``: alternative.me's Crypto Fear & Greed index.

Units are those of ``features.exf``: funding as a FRACTION per interval (as Binance sends it;
only the shared history file is in percent), DVOL in index points, F&G 0..100, taker as buy
volume / sell volume. ``ts_ns`` is the observation's own time (funding settlement, candle open,
F&G day start, open-interest time), int64 ns UTC, never the time it was fetched.

Transport (``ExfHttpClient``, a synchronous ``httpx.Client``; one client per thread):

- a client-side rate limit: request starts, retries included, are at least ``min_interval_s``
  apart on the injected clock;
- HTTP 429/418 wait ``Retry-After`` seconds (a wait longer than ``max_retry_after_s`` gives up at
  once), 5xx/408, timeouts and transport errors (resets, refused connections) back off
  exponentially with jitter; after ``retries`` retries, ``ExfUnavailableError`` (retryable);
- any other 4xx, a JSON-RPC error or a payload's own error field raises ``ExfRejectedError``;
- a malformed body (not JSON, wrong shape, a missing or mistyped field, a non-finite or
  out-of-range value, a timestamp before 2010 or in the future beyond ``max_future_s``, a
  duplicate timestamp) raises ``ExfResponseError`` naming the source, row, field and value.

Everything is counted in ``counters``. Log lines name the path, never the query string.
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from itertools import pairwise
from typing import Any, ClassVar, Self, TypeVar

import httpx
import msgspec

from dolphin.core.clock import Clock, LiveClock
from dolphin.core.errors import BadInputError, ConfigError, DataError, RetryableError

log = logging.getLogger(__name__)

T = TypeVar("T")
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
#: 2010-01-01 UTC: anything earlier is a unit mix-up (seconds read as ms), not an observation.
MIN_TS_NS = 1_262_304_000 * NS_PER_S
#: How far ahead of now Binance's ``nextFundingTime`` may lie (the longest interval is 8 h).
NEXT_FUNDING_AHEAD_NS = 24 * 3600 * NS_PER_S
_DECIMAL = re.compile(r"-?\d+(\.\d+)?")  # no '+', exponent, nan, inf or spaces
_DIGITS = re.compile(r"\d+")


# ------------------------------------------------------------------------------------- errors
class ExfResponseError(DataError):
    """A response body is malformed; the message names the source, row, field and value."""


class ExfRejectedError(BadInputError):
    """The source refused the request (4xx, JSON-RPC error, payload error): do not retry it."""

    def __init__(
        self, message: str, *, source: str, status: int, code: int | str | None = None
    ) -> None:
        self.status = status
        self.code = code
        super().__init__(f"HTTP {status}: {message}", source=source, value=code)


class ExfUnavailableError(RetryableError):
    """The source stayed unavailable through the retries, or asked for too long a wait."""

    def __init__(self, message: str, *, source: str, retry_after_s: float | None = None) -> None:
        self.source = source
        self.retry_after_s = retry_after_s
        super().__init__(f"{source}: {message}")


# ------------------------------------------------------------------------------------- config
@dataclass(frozen=True, kw_only=True)
class HttpPolicy:
    """Timeouts, retries, backoff and the client-side rate limit of one client."""

    timeout_s: float = 10.0  # each of connect / read / write / pool (httpx)
    retries: int = 4  # attempts = retries + 1
    backoff_s: float = 0.5  # the first backoff; doubles on each retry, up to backoff_max_s
    backoff_max_s: float = 30.0
    min_interval_s: float = 0.25  # between request starts
    max_retry_after_s: float = 120.0  # a longer Retry-After gives up at once
    max_future_s: float = 300.0  # clock skew allowed on an observation's timestamp

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not math.isfinite(value) or value < 0:
                raise ConfigError(
                    f"HttpPolicy.{f.name} must be a finite number >= 0, got {value!r}"
                )
        if not isinstance(self.retries, int):
            raise ConfigError(f"HttpPolicy.retries must be an int, got {self.retries!r}")
        if self.timeout_s == 0:
            raise ConfigError("HttpPolicy.timeout_s must be > 0")


@dataclass
class ExfCounters:
    """What one client did, counted."""

    requests: int = 0  # HTTP attempts, retries included
    ok: int = 0
    retries: int = 0
    http_429: int = 0  # and Deribit's too_many_requests error
    http_418: int = 0  # Binance's IP ban after ignored 429s
    http_5xx: int = 0  # and 408
    timeouts: int = 0
    transport_errors: int = 0  # resets, refused connections, protocol errors
    rejected: int = 0
    malformed: int = 0
    rate_waits: int = 0  # requests delayed by the client-side rate limit

    def as_dict(self) -> dict[str, int]:
        """Plain counters for a heartbeat or a log line."""
        return asdict(self)


# ------------------------------------------------------------------------------------ records
class Observation(msgspec.Struct, frozen=True, kw_only=True):
    """One value of one series at its own time."""

    source: str  # "binance-usdm", "deribit", "alternative.me"
    series: str  # e.g. "funding:BTCUSDT", "taker:BTCUSDT:1d", "dvol:BTC:1D", "fng"
    ts_ns: int
    value: float


class PremiumIndex(msgspec.Struct, frozen=True, kw_only=True):
    """Binance ``premiumIndex`` of one symbol: mark and index price, the current funding rate."""

    source: str
    symbol: str
    ts_ns: int
    mark_price: float
    index_price: float
    last_funding_rate: float  # fraction per interval
    next_funding_ns: int


# --------------------------------------------------------------------------------- validation
@dataclass(frozen=True)
class _Bounds:
    lo: float
    hi: float
    lo_open: bool = False

    def holds(self, x: float) -> bool:
        return math.isfinite(x) and (x > self.lo if self.lo_open else x >= self.lo) and x <= self.hi

    def __str__(self) -> str:
        return f"{'(' if self.lo_open else '['}{self.lo:g}, {self.hi:g}]"


#: Funding is a fraction per interval; venue caps are a few percent, 10 % is a broken value.
FUNDING = _Bounds(-0.1, 0.1)
PRICE = _Bounds(0.0, 1e9, lo_open=True)
OPEN_INTEREST = _Bounds(0.0, 1e12)
TAKER = _Bounds(0.0, 1e3, lo_open=True)
DVOL = _Bounds(0.0, 1e3, lo_open=True)
FNG = _Bounds(0.0, 100.0)


def _short(value: Any) -> Any:
    """Return ``value``, or a truncated text of it when it is long (error messages stay short)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str | list | dict) and len(repr(value)) > 80:
        return repr(value)[:80] + "..."
    return value


class _Row:
    """One JSON object of a payload, read field by field; errors name source, row and field."""

    def __init__(self, label: str, index: int | None, raw: Any, prefix: str = "") -> None:
        self.label, self.index, self.prefix = label, index, prefix
        if not isinstance(raw, dict):
            raise self.error("expected a JSON object", prefix.rstrip(".") or None, raw)
        self.obj = raw

    def error(self, message: str, name: str | None, value: Any) -> ExfResponseError:
        """Return the error for ``value`` of field ``name`` of this row."""
        return ExfResponseError(
            message, source=self.label, row=self.index, field=name, value=_short(value)
        )

    def get(self, name: str) -> Any:
        """Return the raw field ``name``; it must be present."""
        if name not in self.obj:
            raise self.error("missing field", self.prefix + name, None)
        return self.obj[name]

    def child(self, name: str) -> _Row:
        """Return the nested object ``name``."""
        return _Row(self.label, self.index, self.get(name), f"{self.prefix}{name}.")

    def bounded(self, name: str, x: float, bounds: _Bounds) -> float:
        """Return ``x`` if it is finite and within ``bounds``."""
        if not bounds.holds(x):
            raise self.error(f"outside {bounds}", self.prefix + name, x)
        return x

    def decimal(self, name: str, bounds: _Bounds) -> float:
        """Read a decimal string (Binance): plain digits, an optional '-' and fraction."""
        raw = self.get(name)
        if not isinstance(raw, str) or not _DECIMAL.fullmatch(raw):
            raise self.error("expected a decimal string", self.prefix + name, raw)
        return self.bounded(name, float(raw), bounds)

    def number(self, name: str, bounds: _Bounds) -> float:
        """Read a JSON number (Deribit)."""
        raw = self.get(name)
        if isinstance(raw, bool) or not isinstance(raw, int | float):
            raise self.error("expected a number", self.prefix + name, raw)
        return self.bounded(name, float(raw), bounds)

    def integer(self, name: str, bounds: _Bounds) -> int:
        """Read an integer sent as a JSON integer or a string of digits."""
        raw = self.get(name)
        if isinstance(raw, str) and _DIGITS.fullmatch(raw):
            raw = int(raw)
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise self.error("expected an integer", self.prefix + name, raw)
        if not bounds.lo <= raw <= bounds.hi:  # int comparisons: exact, no float overflow
            raise self.error(f"outside {bounds}", self.prefix + name, raw)
        return raw

    def timestamp(self, name: str, unit_ns: int, latest_ns: int) -> int:
        """Read an integer timestamp in ``unit_ns`` units; return ns, after 2010, <= latest."""
        raw = self.integer(name, _Bounds(0.0, math.inf))
        ts = raw * unit_ns
        if ts < MIN_TS_NS:
            raise self.error("timestamp before 2010 (wrong unit?)", self.prefix + name, raw)
        if ts > latest_ns:
            raise self.error("timestamp in the future", self.prefix + name, raw)
        return ts

    def equals(self, name: str, expected: str) -> None:
        """Check that field ``name`` is ``expected`` (the symbol asked for)."""
        raw = self.get(name)
        if raw != expected:
            raise self.error(f"expected {expected!r}", self.prefix + name, raw)


def _rows(label: str, payload: Any, name: str = "body") -> list[Any]:
    if not isinstance(payload, list):
        raise ExfResponseError(
            "expected a JSON list", source=label, field=name, value=_short(payload)
        )
    return payload


def _ascending(label: str, obs: list[Observation], name: str) -> list[Observation]:
    """Sort by time; two observations at one time contradict each other."""
    obs = sorted(obs, key=lambda o: o.ts_ns)
    for a, b in pairwise(obs):
        if a.ts_ns == b.ts_ns:
            raise ExfResponseError("duplicate timestamp", source=label, field=name, value=b.ts_ns)
    return obs


def _decode(label: str, body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ExfResponseError(
            f"body is not JSON ({exc})", source=label, field="body", value=_short(body)
        ) from None


def _window_ms(
    start_key: str, start_ns: int | None, end_key: str, end_ns: int | None
) -> dict[str, int]:
    out = {}
    if start_ns is not None:
        out[start_key] = start_ns // NS_PER_MS
    if end_ns is not None:
        out[end_key] = end_ns // NS_PER_MS
    return out


def _check_limit(limit: int, lo: int, hi: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not lo <= limit <= hi:
        raise ValueError(f"limit must be an int in [{lo}, {hi}], got {limit!r}")


def _retry_after_s(header: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header; None when absent or not a number of seconds."""
    if header is None:
        return None
    try:
        wait = float(header)
    except ValueError:
        return None
    return wait if math.isfinite(wait) and wait >= 0 else None


@dataclass(frozen=True)
class _Retry:
    why: str
    after_s: float | None = None  # the wait the server asked for (Retry-After)


# ---------------------------------------------------------------------------------- transport
class ExfHttpClient:
    """One source's HTTP transport: rate limit, retries with backoff and jitter, counters."""

    SOURCE: ClassVar[str]
    DEFAULT_URL: ClassVar[str]
    DEFAULT_POLICY: ClassVar[HttpPolicy] = HttpPolicy()

    def __init__(
        self,
        base_url: str | None = None,
        *,
        policy: HttpPolicy | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.base_url = (base_url or self.DEFAULT_URL).rstrip("/")
        self.policy = policy or self.DEFAULT_POLICY
        self.clock = clock or LiveClock()
        self.counters = ExfCounters()
        self._rng = rng or random.Random()
        self._last_start_ns: int | None = None
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=self.policy.timeout_s,
            headers={"Accept": "application/json"},
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _latest_ns(self) -> int:
        """The latest timestamp an observation may carry now."""
        return self.clock.now_ns() + int(self.policy.max_future_s * NS_PER_S)

    def _fetch(self, path: str, params: dict[str, Any], parse: Callable[[str, Any], T]) -> T:
        """GET ``path`` and parse its JSON with ``parse(label, payload)``, counting failures."""
        label = f"{self.SOURCE} {path}"
        response = self._request(label, path, params)
        try:
            return parse(label, _decode(label, response.content))
        except ExfResponseError:
            self.counters.malformed += 1
            raise
        except ExfRejectedError:
            self.counters.rejected += 1
            raise

    def _request(self, label: str, path: str, params: dict[str, Any]) -> httpx.Response:
        """Return a 200 response, retrying transient failures (module docstring)."""
        retries = self.policy.retries
        for attempt in range(retries + 1):
            if attempt:
                self.counters.retries += 1
            self._pace()
            outcome = self._attempt(label, path, params)
            if isinstance(outcome, httpx.Response):
                return outcome
            if outcome.after_s is not None and outcome.after_s > self.policy.max_retry_after_s:
                raise ExfUnavailableError(
                    f"{path}: {outcome.why}, Retry-After "
                    f"{outcome.after_s:g}s is beyond the "
                    f"{self.policy.max_retry_after_s:g}s allowed",
                    source=self.SOURCE,
                    retry_after_s=outcome.after_s,
                )
            if attempt == retries:
                break
            wait = self._wait_s(outcome, attempt)
            log.warning(
                "exf %s %s: %s; retry %d/%d in %.2fs",
                self.SOURCE,
                path,
                outcome.why,
                attempt + 1,
                retries,
                wait,
            )
            self.clock.sleep(wait)
        raise ExfUnavailableError(
            f"{path}: failed after {retries + 1} attempts ({outcome.why})",
            source=self.SOURCE,
            retry_after_s=outcome.after_s,
        )

    def _attempt(self, label: str, path: str, params: dict[str, Any]) -> httpx.Response | _Retry:
        """Send one request; return the 200 response or why to retry; raise on a rejection."""
        self.counters.requests += 1
        try:
            r = self._http.get(path, params=params)
        except httpx.TimeoutException as exc:
            self.counters.timeouts += 1
            return _Retry(f"timeout ({type(exc).__name__})")
        except httpx.TransportError as exc:
            self.counters.transport_errors += 1
            return _Retry(f"transport error ({type(exc).__name__})")
        code = r.status_code
        if code == 200:
            self.counters.ok += 1
            return r
        if self._throttled(r):
            if code == 418:
                self.counters.http_418 += 1
            else:
                self.counters.http_429 += 1
            return _Retry(f"HTTP {code} throttled", _retry_after_s(r.headers.get("Retry-After")))
        if code >= 500 or code == 408:
            self.counters.http_5xx += 1
            return _Retry(f"HTTP {code}")
        self.counters.rejected += 1
        raise self._rejection(label, r)

    def _pace(self) -> None:
        """Wait until ``min_interval_s`` has passed since the previous request started."""
        gap_ns = int(self.policy.min_interval_s * NS_PER_S)
        if self._last_start_ns is not None:
            wait_ns = self._last_start_ns + gap_ns - self.clock.monotonic_ns()
            if wait_ns > 0:
                self.counters.rate_waits += 1
                self.clock.sleep(wait_ns / NS_PER_S)
        self._last_start_ns = self.clock.monotonic_ns()

    def _wait_s(self, retry: _Retry, attempt: int) -> float:
        """Retry-After when the server gave one, else exponential backoff with equal jitter."""
        if retry.after_s is not None:
            return retry.after_s
        cap = min(self.policy.backoff_max_s, self.policy.backoff_s * 2.0**attempt)
        return cap / 2 + self._rng.uniform(0.0, cap / 2)

    def _throttled(self, r: httpx.Response) -> bool:
        """Whether ``r`` says "too many requests" (then ``Retry-After`` is honoured)."""
        return r.status_code in (418, 429)

    def _rejection(self, label: str, r: httpx.Response) -> ExfRejectedError:
        """The error for a refused request; sources override it to read their error body."""
        return ExfRejectedError(r.text[:200], source=label, status=r.status_code)


def _error_body(r: httpx.Response) -> Any:
    try:
        return msgspec.json.decode(r.content)
    except msgspec.DecodeError:
        return None


# ------------------------------------------------------------------------------------ sources
class BinanceExfClient(ExfHttpClient):
    """Binance USDT-M public market data for the ExF: funding, premium index, taker, OI."""

    SOURCE = "binance-usdm"
    DEFAULT_URL = "https://fapi.binance.com"
    DEFAULT_POLICY = HttpPolicy(min_interval_s=0.25)
    FUNDING_PATH = "/fapi/v1/fundingRate"
    PREMIUM_PATH = "/fapi/v1/premiumIndex"
    TAKER_PATH = "/futures/data/takerlongshortRatio"
    OI_PATH = "/fapi/v1/openInterest"

    def funding_rates(
        self,
        symbol: str = "BTCUSDT",
        *,
        limit: int = 100,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> list[Observation]:
        """Return settled funding rates (fraction per interval), oldest first.

        Without a window Binance returns the latest ``limit``; with ``start_ns``, up to
        ``limit`` from there on."""
        _check_limit(limit, 1, 1000)
        params = {
            "symbol": symbol,
            "limit": limit,
            **_window_ms("startTime", start_ns, "endTime", end_ns),
        }
        return self._fetch(
            self.FUNDING_PATH, params, lambda label, payload: self._funding(label, payload, symbol)
        )

    def premium_index(self, symbol: str = "BTCUSDT") -> PremiumIndex:
        """Return the mark price, index price and current funding rate of ``symbol``."""
        return self._fetch(
            self.PREMIUM_PATH,
            {"symbol": symbol},
            lambda label, payload: self._premium(label, payload, symbol),
        )

    def taker_ratio(
        self,
        symbol: str = "BTCUSDT",
        *,
        period: str = "1d",
        limit: int = 30,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> list[Observation]:
        """Return the taker buy/sell volume ratio per ``period`` (stamped at its open), oldest
        first."""
        _check_limit(limit, 1, 500)
        params = {
            "symbol": symbol,
            "period": period,
            "limit": limit,
            **_window_ms("startTime", start_ns, "endTime", end_ns),
        }
        series = f"taker:{symbol}:{period}"
        return self._fetch(
            self.TAKER_PATH, params, lambda label, payload: self._taker(label, payload, series)
        )

    def open_interest(self, symbol: str = "BTCUSDT") -> Observation:
        """Return the open interest of ``symbol`` in contracts (base asset)."""
        return self._fetch(
            self.OI_PATH,
            {"symbol": symbol},
            lambda label, payload: self._oi(label, payload, symbol),
        )

    def _funding(self, label: str, payload: Any, symbol: str) -> list[Observation]:
        latest = self._latest_ns()
        out = []
        for i, raw in enumerate(_rows(label, payload)):
            row = _Row(label, i, raw)
            row.equals("symbol", symbol)
            out.append(
                Observation(
                    source=self.SOURCE,
                    series=f"funding:{symbol}",
                    ts_ns=row.timestamp("fundingTime", NS_PER_MS, latest),
                    value=row.decimal("fundingRate", FUNDING),
                )
            )
        return _ascending(label, out, "fundingTime")

    def _premium(self, label: str, payload: Any, symbol: str) -> PremiumIndex:
        row = _Row(label, None, payload)
        row.equals("symbol", symbol)
        ts = row.timestamp("time", NS_PER_MS, self._latest_ns())
        return PremiumIndex(
            source=self.SOURCE,
            symbol=symbol,
            ts_ns=ts,
            mark_price=row.decimal("markPrice", PRICE),
            index_price=row.decimal("indexPrice", PRICE),
            last_funding_rate=row.decimal("lastFundingRate", FUNDING),
            next_funding_ns=row.timestamp(
                "nextFundingTime", NS_PER_MS, self.clock.now_ns() + NEXT_FUNDING_AHEAD_NS
            ),
        )

    def _taker(self, label: str, payload: Any, series: str) -> list[Observation]:
        latest = self._latest_ns()
        out = []
        for i, raw in enumerate(_rows(label, payload)):
            row = _Row(label, i, raw)
            out.append(
                Observation(
                    source=self.SOURCE,
                    series=series,
                    ts_ns=row.timestamp("timestamp", NS_PER_MS, latest),
                    value=row.decimal("buySellRatio", TAKER),
                )
            )
        return _ascending(label, out, "timestamp")

    def _oi(self, label: str, payload: Any, symbol: str) -> Observation:
        row = _Row(label, None, payload)
        row.equals("symbol", symbol)
        return Observation(
            source=self.SOURCE,
            series=f"open_interest:{symbol}",
            ts_ns=row.timestamp("time", NS_PER_MS, self._latest_ns()),
            value=row.decimal("openInterest", OPEN_INTEREST),
        )

    def _rejection(self, label: str, r: httpx.Response) -> ExfRejectedError:
        body = _error_body(r)
        if isinstance(body, dict) and "msg" in body:
            return ExfRejectedError(
                str(body["msg"]), source=label, status=r.status_code, code=body.get("code")
            )
        return super()._rejection(label, r)


class DeribitDvolClient(ExfHttpClient):
    """Deribit's volatility index (DVOL) candles over JSON-RPC-over-HTTP GET."""

    SOURCE = "deribit"
    DEFAULT_URL = "https://www.deribit.com"
    DEFAULT_POLICY = HttpPolicy(min_interval_s=0.1)
    PATH = "/api/v2/public/get_volatility_index_data"
    RESOLUTIONS = ("1", "60", "3600", "43200", "1D")
    #: Deribit's JSON-RPC error code for "too_many_requests": retried like an HTTP 429.
    TOO_MANY_REQUESTS = 10028

    def dvol(
        self,
        currency: str = "BTC",
        *,
        start_ns: int,
        end_ns: int | None = None,
        resolution: str = "1D",
        max_pages: int = 20,
    ) -> list[Observation]:
        """Return the candles' closes in ``[start_ns, end_ns]`` (end: now), oldest first,
        stamped at the candle's open. Follows ``continuation`` for up to ``max_pages`` pages."""
        if resolution not in self.RESOLUTIONS:
            raise ValueError(f"resolution must be one of {self.RESOLUTIONS}, got {resolution!r}")
        start_ms = start_ns // NS_PER_MS
        end_ms = (end_ns if end_ns is not None else self.clock.now_ns()) // NS_PER_MS
        series = f"dvol:{currency}:{resolution}"
        label = f"{self.SOURCE} {self.PATH}"
        got: dict[int, Observation] = {}
        for _ in range(max_pages):
            params = {
                "currency": currency,
                "start_timestamp": start_ms,
                "end_timestamp": end_ms,
                "resolution": resolution,
            }
            candles, more = self._fetch(
                self.PATH, params, lambda label, payload: self._page(label, payload, series)
            )
            for c in candles:
                got.setdefault(c.ts_ns, c)  # pages may share their edge candle
            if more is None or more < start_ms:
                return sorted(got.values(), key=lambda o: o.ts_ns)
            if more >= end_ms:
                self.counters.malformed += 1
                raise ExfResponseError(
                    "continuation does not move back",
                    source=label,
                    field="result.continuation",
                    value=more,
                )
            end_ms = more
        self.counters.malformed += 1
        raise ExfResponseError(
            f"continuation still set after {max_pages} pages",
            source=label,
            field="result.continuation",
            value=end_ms,
        )

    def _page(self, label: str, payload: Any, series: str) -> tuple[list[Observation], int | None]:
        result = _Row(label, None, payload).child("result")
        more = None
        if result.get("continuation") is not None:
            more = result.integer("continuation", _Bounds(0.0, math.inf))
        latest = self._latest_ns()
        out = [
            self._candle(label, i, raw, series, latest)
            for i, raw in enumerate(_rows(label, result.get("data"), "result.data"))
        ]
        return _ascending(label, out, "timestamp"), more

    def _candle(self, label: str, i: int, raw: Any, series: str, latest: int) -> Observation:
        if not isinstance(raw, list) or len(raw) != 5:
            raise ExfResponseError(
                "expected [timestamp, open, high, low, close]",
                source=label,
                row=i,
                field="result.data",
                value=_short(raw),
            )
        row = _Row(
            label, i, dict(zip(("timestamp", "open", "high", "low", "close"), raw, strict=True))
        )
        ts = row.timestamp("timestamp", NS_PER_MS, latest)
        o, h, lo, c = (row.number(k, DVOL) for k in ("open", "high", "low", "close"))
        if h < max(o, c, lo):
            raise row.error("high below open, low or close", "high", h)
        if lo > min(o, c):
            raise row.error("low above open or close", "low", lo)
        return Observation(source=self.SOURCE, series=series, ts_ns=ts, value=c)

    def _throttled(self, r: httpx.Response) -> bool:
        if super()._throttled(r):
            return True
        body = _error_body(r)
        error = body.get("error") if isinstance(body, dict) else None
        return isinstance(error, dict) and error.get("code") == self.TOO_MANY_REQUESTS

    def _rejection(self, label: str, r: httpx.Response) -> ExfRejectedError:
        body = _error_body(r)
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return ExfRejectedError(
                f"{error.get('message')} {error.get('data') or ''}".strip(),
                source=label,
                status=r.status_code,
                code=error.get("code"),
            )
        return super()._rejection(label, r)


class FearGreedClient(ExfHttpClient):
    """alternative.me's Crypto Fear & Greed index (daily, 0 extreme fear .. 100 extreme greed)."""

    SOURCE = "alternative.me"
    DEFAULT_URL = "https://api.alternative.me"
    DEFAULT_POLICY = HttpPolicy(min_interval_s=1.0)
    PATH = "/fng/"

    def fear_greed(self, limit: int = 1) -> list[Observation]:
        """Return the latest ``limit`` daily values (0: the whole history), oldest first."""
        _check_limit(limit, 0, 100_000)
        return self._fetch(self.PATH, {"limit": limit, "format": "json"}, self._fng)

    def _fng(self, label: str, payload: Any) -> list[Observation]:
        env = _Row(label, None, payload)
        error = env.child("metadata").get("error")
        if error is not None:
            raise ExfRejectedError(f"metadata.error: {error}", source=label, status=200)
        latest = self._latest_ns()
        out = []
        for i, raw in enumerate(_rows(label, env.get("data"), "data")):
            row = _Row(label, i, raw)
            out.append(
                Observation(
                    source=self.SOURCE,
                    series="fng",
                    ts_ns=row.timestamp("timestamp", NS_PER_S, latest),
                    value=float(row.integer("value", FNG)),
                )
            )
        return _ascending(label, out, "timestamp")
