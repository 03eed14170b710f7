"""The ExF clients against local replay servers of the real shared histories, under every fault.

Expected values are read here from the files with plain ``json``/``csv``, never from a client or
from the servers' own loading code. Timings are measured at the server (arrival times of the
requests), on the same monotonic clock.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import time
from itertools import pairwise

import httpx
import pytest

from dolphin.adapters.exf.clients import (
    BinanceExfClient,
    DeribitDvolClient,
    ExfRejectedError,
    ExfResponseError,
    ExfUnavailableError,
    FearGreedClient,
    HttpPolicy,
)
from dolphin.core.clock import SimulatedClock
from dolphin.core.errors import ConfigError, DataError, ErrorAction, RetryableError, action_for
from tests.kit.exf_servers import (
    BinanceReplayServer,
    DeribitReplayServer,
    Fault,
    FearGreedReplayServer,
)
from tests.kit.paths import SHARED_DATA, require

INDICES = SHARED_DATA / "indices"
DOCS = SHARED_DATA / "raw_ws" / "nautilus_samples" / "docs_examples_futures_http"
MS = 1_000_000
#: Fast retries for tests; real timeouts, so a slow response really times out.
FAST = HttpPolicy(timeout_s=2.0, retries=3, backoff_s=0.01, backoff_max_s=0.05, min_interval_s=0.0)
#: Slack for the server-side arrival-time measurements (both ends share one monotonic clock):
#: an earlier request that reaches the server late (a loaded CPU) shortens the next gap.
SLACK_S = 0.08


class RecordingClock(SimulatedClock):
    """A simulated clock, started at the real time, that keeps every sleep instead of waiting."""

    def __init__(self):
        super().__init__(start_ns=time.time_ns())
        self.sleeps = []

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        super().sleep(seconds)


def _ms(day: str) -> int:
    return int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp()) * 1000


def _pairs(name: str) -> list[list[float]]:
    return json.loads(require(INDICES / name).read_text())


def _fng_csv() -> list[dict[str, str]]:
    with require(INDICES / "fear_greed_index.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _doc(name: str) -> dict:
    return json.loads(require(DOCS / name).read_text())


# Each source: its server, its client, and one call whose result is known from the files.
def _binance_call(c):
    return c.funding_rates("BTCUSDT", limit=3, start_ns=_ms("2024-03-01") * MS)


def _dvol_call(c):
    return c.dvol("BTC", start_ns=_ms("2024-02-25") * MS, end_ns=_ms("2024-03-01") * MS)


def _fng_call(c):
    return c.fear_greed(limit=3)


SOURCES = {
    "binance": (BinanceReplayServer, BinanceExfClient, _binance_call),
    "deribit": (DeribitReplayServer, DeribitDvolClient, _dvol_call),
    "fng": (FearGreedReplayServer, FearGreedClient, _fng_call),
}


def _run(source, faults=None, policy=FAST, **client_kw):
    """Call the source's known request through its server with ``faults``; return
    (result or exception, client, server)."""
    server_cls, client_cls, call = SOURCES[source]
    with server_cls(faults) as server, client_cls(server.url, policy=policy, **client_kw) as client:
        try:
            result = call(client)
        except Exception as exc:  # the test inspects it
            result = exc
    return result, client, server


def _clean(source):
    result, _, _ = _run(source)
    assert not isinstance(result, Exception), result
    return result


# ------------------------------------------------------------------------- values vs history
def test_funding_rates_equal_the_percent_history_converted_to_fractions():
    rows = _pairs("funding_rate_btc.json")
    start = _ms("2024-03-01")
    expected = [r for r in rows if r[0] >= start][:9]
    with BinanceReplayServer() as s, BinanceExfClient(s.url, policy=FAST) as c:
        got = c.funding_rates("BTCUSDT", limit=9, start_ns=start * MS)
    assert [o.ts_ns for o in got] == [int(ms) * MS for ms, _ in expected]
    assert [o.value for o in got] == pytest.approx([pct / 100 for _, pct in expected], abs=1e-12)
    # by hand: the file says 0.053322 (percent) at 2024-03-01 00:00 UTC; Binance's fraction
    assert expected[0] == [1709251200000, pytest.approx(0.053322, abs=1e-12)]
    assert got[0].value == 0.00053322
    assert {o.source for o in got} == {"binance-usdm"} and got[0].series == "funding:BTCUSDT"


def test_funding_without_a_window_is_the_latest_and_keeps_negative_rates():
    rows = _pairs("funding_rate_btc.json")
    with BinanceReplayServer() as s, BinanceExfClient(s.url, policy=FAST) as c:
        latest = c.funding_rates(limit=5)
        window = c.funding_rates(
            limit=1000, start_ns=_ms("2023-01-01") * MS, end_ns=_ms("2023-02-01") * MS
        )
    assert [o.ts_ns for o in latest] == [int(ms) * MS for ms, _ in rows[-5:]]
    expected = [r for r in rows if _ms("2023-01-01") <= r[0] <= _ms("2023-02-01")]
    assert len(window) == len(expected) == 93
    negatives = [pct for _, pct in expected if pct < 0]
    assert negatives and sum(o.value < 0 for o in window) == len(negatives)


def test_premium_index_and_open_interest_equal_the_documentation_payloads():
    prem = _doc("http_futures_market_premium_index.json")
    oi = _doc("http_futures_market_open_interest.json")
    with BinanceReplayServer() as s, BinanceExfClient(s.url, policy=FAST) as c:
        p = c.premium_index("BTCUSDT")
        o = c.open_interest("BTCUSDT")
    assert (p.mark_price, p.index_price, p.last_funding_rate) == (
        float(prem["markPrice"]),
        float(prem["indexPrice"]),
        float(prem["lastFundingRate"]),
    )
    assert (p.ts_ns, p.next_funding_ns) == (prem["time"] * MS, prem["nextFundingTime"] * MS)
    assert (o.value, o.ts_ns, o.series) == (
        float(oi["openInterest"]),
        oi["time"] * MS,
        "open_interest:BTCUSDT",
    )


def test_taker_ratio_equals_the_daily_history():
    rows = _pairs("taker_ratio_btc.json")
    with BinanceReplayServer() as s, BinanceExfClient(s.url, policy=FAST) as c:
        got = c.taker_ratio("BTCUSDT", period="1d", limit=30)
        first = c.taker_ratio("BTCUSDT", limit=2, start_ns=_ms("2025-10-07") * MS)
    assert [(o.ts_ns, o.value) for o in got] == [(int(ms) * MS, v) for ms, v in rows]
    assert [o.value for o in first] == [0.8914, 1.0774]


def test_dvol_last_close_before_a_date_equals_the_history():
    rows = _pairs("dvol_btc.json")
    day = _ms("2024-03-01")
    before = [r for r in rows if r[0] < day]
    with DeribitReplayServer() as s, DeribitDvolClient(s.url, policy=FAST) as c:
        got = c.dvol("BTC", start_ns=(day - 10 * 86_400_000) * MS, end_ns=(day - 1) * MS)
    assert got[-1].ts_ns == int(before[-1][0]) * MS == _ms("2024-02-29") * MS
    assert got[-1].value == before[-1][1] == 65.54
    assert len(got) == 10 and got[0].series == "dvol:BTC:1D"


@pytest.mark.parametrize(("page", "requests"), [(1000, 2), (100, 12)])
def test_dvol_full_history_follows_the_continuation(page, requests):
    rows = _pairs("dvol_btc.json")
    with DeribitReplayServer(page=page) as s, DeribitDvolClient(s.url, policy=FAST) as c:
        got = c.dvol("BTC", start_ns=_ms("2022-01-01") * MS, end_ns=_ms("2026-01-01") * MS)
    assert [(o.ts_ns, o.value) for o in got] == [(int(ms) * MS, v) for ms, v in rows]
    assert c.counters.requests == requests
    days = {o.ts_ns for o in got}
    assert _ms("2025-11-11") * MS not in days  # a gap of the history stays a gap


def test_fear_greed_equals_the_csv():
    rows = _fng_csv()
    with FearGreedReplayServer() as s, FearGreedClient(s.url, policy=FAST) as c:
        everything = c.fear_greed(limit=0)
        latest = c.fear_greed(limit=7)
    by_day = {
        dt.datetime.fromtimestamp(o.ts_ns / 1e9, dt.UTC).date().isoformat(): o.value
        for o in everything
    }
    assert (
        by_day["2024-03-01"]
        == 80.0
        == float(next(r["fng_value"] for r in rows if r["Date"] == "2024-03-01"))
    )
    assert len(everything) == len(rows) == 2942
    assert [o.value for o in everything] == [float(r["fng_value"]) for r in rows]
    assert [o.ts_ns for o in latest] == [_ms(r["Date"]) * MS for r in rows[-7:]]
    assert "2024-10-26" not in by_day  # the CSV has no row for it; nothing is invented


# ------------------------------------------------------------------------------ transient faults
@pytest.mark.parametrize("source", SOURCES)
def test_a_429_is_retried_after_its_retry_after(source):
    result, client, server = _run(source, {1: Fault.http(429, retry_after="1")})
    assert result == _clean(source)
    assert (client.counters.http_429, client.counters.retries, client.counters.ok) == (1, 1, 1)
    assert server.hits[1].t - server.hits[0].t >= 1.0 - SLACK_S


def test_a_binance_418_ban_is_retried_after_its_retry_after():
    result, client, server = _run("binance", {1: Fault.http(418, retry_after="1")})
    assert result == _clean("binance") and client.counters.http_418 == 1
    assert server.hits[1].t - server.hits[0].t >= 1.0 - SLACK_S


def test_deribit_too_many_requests_in_a_400_is_retried():
    body = b'{"jsonrpc":"2.0","error":{"code":10028,"message":"too_many_requests"}}'
    result, client, _ = _run("deribit", {1: Fault.http(400, body=body)})
    assert result == _clean("deribit") and client.counters.http_429 == 1


@pytest.mark.parametrize("source", SOURCES)
def test_5xx_are_retried_and_counted(source):
    result, client, _ = _run(source, {1: Fault.http(500), 2: Fault.http(503)})
    assert result == _clean(source)
    assert (client.counters.http_5xx, client.counters.retries, client.counters.requests) == (
        2,
        2,
        3,
    )


@pytest.mark.parametrize("source", SOURCES)
def test_a_slow_response_times_out_and_is_retried(source):
    # the retry must answer within the timeout even on a loaded machine: 1 s, against 3 s slow
    policy = HttpPolicy(timeout_s=1.0, retries=2, backoff_s=0.01, min_interval_s=0.0)
    result, client, _ = _run(source, {1: Fault.slow(3.0)}, policy=policy)
    assert result == _clean(source)
    assert (client.counters.timeouts, client.counters.retries) == (1, 1)


@pytest.mark.parametrize("source", SOURCES)
def test_a_connection_reset_is_retried(source):
    result, client, _ = _run(source, {1: Fault.reset()})
    assert result == _clean(source)
    assert (client.counters.transport_errors, client.counters.retries) == (1, 1)


@pytest.mark.parametrize("source", SOURCES)
def test_exhausted_retries_raise_a_retryable_error(source):
    faults = {n: Fault.http(503) for n in range(1, 5)}
    result, client, server = _run(source, faults)
    assert isinstance(result, ExfUnavailableError) and isinstance(result, RetryableError)
    assert action_for(result) is ErrorAction.RETRY
    assert "503" in str(result) and result.source == client.SOURCE
    assert (client.counters.requests, client.counters.retries, len(server.hits)) == (4, 3, 4)


def test_a_retry_after_beyond_the_allowed_wait_gives_up_at_once():
    result, client, server = _run("binance", {1: Fault.http(418, retry_after="7200")})
    assert isinstance(result, ExfUnavailableError) and result.retry_after_s == 7200.0
    assert len(server.hits) == 1 and client.counters.retries == 0


def test_a_429_without_a_usable_retry_after_backs_off():
    clock = RecordingClock()
    result, client, _ = _run("binance", {1: Fault.http(429, retry_after="soon")}, clock=clock)
    assert result == _clean("binance")
    counts = client.counters.as_dict()
    assert {k: counts[k] for k in ("requests", "ok", "retries", "http_429")} == {
        "requests": 2,
        "ok": 1,
        "retries": 1,
        "http_429": 1,
    }
    assert len(clock.sleeps) == 1 and 0.005 <= clock.sleeps[0] <= 0.01  # FAST's first backoff


def test_backoff_grows_exponentially_with_jitter():
    clock = RecordingClock()
    policy = HttpPolicy(retries=3, backoff_s=0.02, backoff_max_s=1.0, min_interval_s=0.0)
    result, _, _ = _run(
        "fng", {n: Fault.http(500) for n in range(1, 5)}, policy=policy, clock=clock
    )
    assert isinstance(result, ExfUnavailableError)
    assert len(clock.sleeps) == 3
    for k, wait in enumerate(clock.sleeps):  # equal jitter: in [cap/2, cap], cap = 0.02 * 2^k
        assert 0.01 * 2**k <= wait <= 0.02 * 2**k


# ---------------------------------------------------------------------------- malformed bodies
MALFORMED = [
    ("binance", Fault.truncate(), "body", "not JSON"),
    ("binance", Fault.raw(b"<html>502 Bad Gateway</html>"), "body", "not JSON"),
    ("binance", Fault.set((0, "fundingRate"), 0.0001), "fundingRate", "decimal string"),
    ("binance", Fault.set((0, "fundingRate"), "NaN"), "fundingRate", "decimal string"),
    ("binance", Fault.set((1, "fundingRate"), "0.50000000"), "fundingRate", "outside"),
    ("binance", Fault.drop((2, "fundingTime")), "fundingTime", "missing"),
    ("binance", Fault.set((0, "fundingTime"), 4102444800000), "fundingTime", "future"),
    ("binance", Fault.set((0, "fundingTime"), 1709251200), "fundingTime", "before 2010"),
    ("binance", Fault.set((1, "fundingTime"), 1709251200000), "fundingTime", "duplicate"),
    ("binance", Fault.set((0, "symbol"), "ETHUSDT"), "symbol", "expected 'BTCUSDT'"),
    ("binance", Fault.set((0,), "row"), None, "JSON object"),
    ("deribit", Fault.set(("result", "data", 0, 4), -5.0), "close", "outside"),
    ("deribit", Fault.set(("result", "data", 1, 1), "58.36"), "open", "expected a number"),
    ("deribit", Fault.set(("result", "data", 2, 2), 1.0), "high", "high below"),
    (
        "deribit",
        Fault.set(("result", "data", 0), [1708819200000, 50.0, 60.0, 55.0, 52.0]),
        "low",
        "low above",
    ),
    (
        "deribit",
        Fault.set(("result", "data", 0), [1709251200000, 1.0]),
        "result.data",
        "timestamp, open",
    ),
    ("deribit", Fault.drop(("result", "data")), "result.data", "missing"),
    ("deribit", Fault.drop(("result",)), "result", "missing"),
    ("deribit", Fault.truncate(), "body", "not JSON"),
    ("fng", Fault.set(("data", 0, "value"), "150"), "value", "outside"),
    ("fng", Fault.set(("data", 1, "value"), None), "value", "expected an integer"),
    ("fng", Fault.set(("data", 0, "value"), "40.5"), "value", "expected an integer"),
    ("fng", Fault.set(("data", 2, "timestamp"), "1771891200000"), "timestamp", "future"),
    ("fng", Fault.set(("data",), {"value": "40"}), "data", "JSON list"),
    ("fng", Fault.truncate(), "body", "not JSON"),
]


@pytest.mark.parametrize(
    ("source", "fault", "field", "words"),
    MALFORMED,
    ids=[f"{s}-{f.kind.value}-{n}" for s, f, n, _ in MALFORMED],
)
def test_a_malformed_body_raises_a_typed_error_naming_the_field(source, fault, field, words):
    result, client, server = _run(source, {1: fault})
    assert isinstance(result, ExfResponseError) and isinstance(result, DataError), result
    assert action_for(result) is ErrorAction.DEGRADE
    assert result.field == field and words in str(result)
    assert result.source.startswith(client.SOURCE)
    assert (client.counters.malformed, len(server.hits)) == (1, 1)  # never retried


def test_error_messages_name_the_offending_value():
    result, _, _ = _run("fng", {1: Fault.set(("data", 0, "value"), "150")})
    assert result.value == 150 and result.row == 0
    assert str(result) == (
        "alternative.me /fng/, row 0, field 'value': outside [0, 100] (value: 150)"
    )


def test_a_timestamp_after_the_injected_clock_is_future_dated():
    clock = SimulatedClock(start_ns=_ms("2024-03-01") * MS)
    with (
        FearGreedReplayServer() as s,
        FearGreedClient(s.url, policy=FAST, clock=clock) as c,
        pytest.raises(ExfResponseError, match="future") as err,
    ):
        c.fear_greed(limit=0)
    assert err.value.field == "timestamp"


# ---------------------------------------------------------------------------------- rejections
def test_a_binance_4xx_is_rejected_without_retries():
    with BinanceReplayServer() as s, BinanceExfClient(s.url, policy=FAST) as c:
        with pytest.raises(ExfRejectedError) as err:
            c.funding_rates("ETHUSDT")
        assert (err.value.status, err.value.code) == (400, -1121)
        assert "Invalid symbol" in str(err.value) and action_for(err.value) is ErrorAction.DEGRADE
        assert (c.counters.rejected, c.counters.requests, len(s.hits)) == (1, 1, 1)


def test_a_deribit_json_rpc_error_is_rejected_with_its_code():
    with (
        DeribitReplayServer() as s,
        DeribitDvolClient(s.url, policy=FAST) as c,
        pytest.raises(ExfRejectedError) as err,
    ):
        c.dvol("ETH", start_ns=_ms("2024-01-01") * MS, end_ns=_ms("2024-02-01") * MS)
    assert (err.value.status, err.value.code) == (400, -32602) and len(s.hits) == 1


@pytest.mark.parametrize("source", SOURCES)
def test_a_403_is_rejected_without_retries(source):
    result, client, server = _run(source, {1: Fault.http(403)})
    assert isinstance(result, ExfRejectedError) and result.status == 403
    assert "injected HTTP 403" in str(result) and result.source.startswith(client.SOURCE)
    assert (client.counters.rejected, client.counters.retries, len(server.hits)) == (1, 0, 1)


@pytest.mark.parametrize("source", ["binance", "deribit"])
def test_a_4xx_without_the_sources_error_body_is_rejected_with_its_text(source):
    result, _, _ = _run(source, {1: Fault.http(403, body=b"<html>Forbidden</html>")})
    assert isinstance(result, ExfRejectedError) and result.status == 403
    assert "<html>Forbidden</html>" in str(result) and result.code is None


def test_a_deribit_continuation_that_does_not_move_back_is_malformed():
    end = _ms("2024-03-01")
    with (
        DeribitReplayServer({1: Fault.set(("result", "continuation"), end)}) as s,
        DeribitDvolClient(s.url, policy=FAST) as c,
    ):
        with pytest.raises(ExfResponseError, match="does not move back") as err:
            c.dvol(start_ns=_ms("2023-01-01") * MS, end_ns=end * MS)
        assert err.value.field == "result.continuation" and c.counters.malformed == 1


def test_deribit_paging_stops_at_max_pages():
    with DeribitReplayServer(page=100) as s, DeribitDvolClient(s.url, policy=FAST) as c:
        with pytest.raises(ExfResponseError, match="after 3 pages"):
            c.dvol(start_ns=_ms("2022-01-01") * MS, end_ns=_ms("2026-01-01") * MS, max_pages=3)
        assert len(s.hits) == 3 and c.counters.malformed == 1


def test_a_fear_greed_metadata_error_is_rejected():
    result, client, _ = _run("fng", {1: Fault.set(("metadata", "error"), "Rate limited")})
    assert isinstance(result, ExfRejectedError) and "Rate limited" in str(result)
    assert client.counters.rejected == 1


# ------------------------------------------------------------------------ rate limit, config, logs
@pytest.mark.parametrize("source", SOURCES)
def test_the_rate_limit_spaces_requests(source):
    policy = HttpPolicy(timeout_s=2.0, retries=2, backoff_s=0.001, min_interval_s=0.3)
    server_cls, client_cls, call = SOURCES[source]
    with server_cls({3: Fault.http(503)}) as s, client_cls(s.url, policy=policy) as c:
        for _ in range(4):  # the first one opens the connection (its arrival may lag)
            call(c)
    gaps = [b.t - a.t for a, b in pairwise(s.hits[1:])]
    assert len(s.hits) == 5 and all(g >= 0.3 - SLACK_S for g in gaps), gaps  # the retry too
    assert c.counters.rate_waits == 4


def test_the_rate_limit_waits_the_rest_of_the_interval_exactly():
    clock = RecordingClock()
    policy = HttpPolicy(retries=2, backoff_s=0.05, backoff_max_s=0.05, min_interval_s=0.2)
    with (
        FearGreedReplayServer({2: Fault.http(503)}) as s,
        FearGreedClient(s.url, policy=policy, clock=clock) as c,
    ):
        for _ in range(3):
            c.fear_greed()
    pace, backoff, rest, pace2 = clock.sleeps  # the first request does not wait
    assert pace == pace2 == pytest.approx(0.2, abs=1e-9)
    assert 0.025 <= backoff <= 0.05 and backoff + rest == pytest.approx(0.2, abs=1e-9)


def test_bad_arguments_fail_before_any_request():
    with BinanceReplayServer() as s, BinanceExfClient(s.url, policy=FAST) as c:
        for bad in (0, 1001, True):
            with pytest.raises(ValueError, match="limit"):
                c.funding_rates(limit=bad)
        with pytest.raises(ValueError, match="limit"):
            c.taker_ratio(limit=501)
    with (
        DeribitReplayServer() as d,
        DeribitDvolClient(d.url, policy=FAST) as dc,
        pytest.raises(ValueError, match="resolution"),
    ):
        dc.dvol(start_ns=0, resolution="5m")
    assert s.hits == [] and d.hits == []


@pytest.mark.parametrize(
    "kw",
    [
        {"retries": -1},
        {"timeout_s": 0.0},
        {"backoff_s": float("nan")},
        {"min_interval_s": -0.1},
        {"retries": 1.5},
    ],
)
def test_invalid_policies_are_config_errors(kw):
    with pytest.raises(ConfigError):
        HttpPolicy(**kw)


@pytest.mark.parametrize(
    ("cls", "url"),
    [
        (BinanceExfClient, "https://fapi.binance.com"),
        (DeribitDvolClient, "https://www.deribit.com"),
        (FearGreedClient, "https://api.alternative.me"),
    ],
)
def test_production_base_urls_are_the_defaults(cls, url):
    with cls() as client:
        assert client.base_url == url


def test_retry_logs_name_the_path_but_not_the_query(caplog):
    with caplog.at_level(logging.DEBUG, logger="dolphin.adapters.exf"):
        _run("binance", {1: Fault.http(503)})
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("dolphin")]
    assert ours and all("/fapi/v1/fundingRate" in m and "symbol=" not in m for m in ours)


# ------------------------------------------------------------------------- the servers themselves
def test_the_binance_server_cuts_windows_like_binance():
    rows = _pairs("funding_rate_btc.json")
    with BinanceReplayServer() as s:

        def get(**q):
            return httpx.get(s.url + "/fapi/v1/fundingRate", params={"symbol": "BTCUSDT", **q})

        from_start = get(startTime=rows[10][0], limit=3).json()
        to_end = get(endTime=rows[10][0], limit=3).json()
        too_many = get(limit=1001)
    assert [r["fundingTime"] for r in from_start] == [r[0] for r in rows[10:13]]
    assert [r["fundingTime"] for r in to_end] == [r[0] for r in rows[8:11]]
    assert from_start[0]["fundingRate"] == f"{rows[10][1] / 100:.8f}"
    assert too_many.status_code == 400 and too_many.json()["code"] == -1130


def test_the_deribit_server_pages_from_the_end_with_a_continuation():
    rows = _pairs("dvol_btc.json")
    with DeribitReplayServer() as s:
        body = httpx.get(
            s.url + DeribitDvolClient.PATH,
            params={
                "currency": "BTC",
                "start_timestamp": 0,
                "end_timestamp": rows[-1][0],
                "resolution": "1D",
            },
        ).json()
    data = body["result"]["data"]
    assert len(data) == 1000 and data[-1] == [rows[-1][0], *[rows[-1][1]] * 4]
    assert body["result"]["continuation"] == data[0][0] == rows[-1000][0]


def test_the_fng_server_is_newest_first_and_faults_hit_only_their_request():
    rows = _fng_csv()
    with FearGreedReplayServer({2: Fault.http(503)}) as s:
        first = httpx.get(s.url + "/fng/", params={"limit": 2, "format": "json"})
        second = httpx.get(s.url + "/fng/", params={"limit": 2})
        third = httpx.get(s.url + "/fng/", params={"limit": 2})
    assert [d["value"] for d in first.json()["data"]] == [
        rows[-1]["fng_value"],
        rows[-2]["fng_value"],
    ]
    assert first.json()["data"][0]["timestamp"] == str(_ms(rows[-1]["Date"]) // 1000)
    assert second.status_code == 503 and third.json() == first.json()
    assert [h.n for h in s.hits] == [1, 2, 3]


@pytest.mark.parametrize(
    ("server_cls", "path", "params", "status", "code"),
    [
        (BinanceReplayServer, "/fapi/v1/nothing", {}, 404, -1000),
        (
            BinanceReplayServer,
            BinanceExfClient.TAKER_PATH,
            {"symbol": "BTCUSDT", "period": "1h"},
            400,
            -1102,
        ),
        (BinanceReplayServer, BinanceExfClient.OI_PATH, {}, 400, -1102),
        (DeribitReplayServer, DeribitDvolClient.PATH, {"currency": "BTC"}, 400, -32602),
    ],
)
def test_the_servers_refuse_what_they_cannot_replay(server_cls, path, params, status, code):
    with server_cls() as s:
        r = httpx.get(s.url + path, params=params)
    body = r.json()
    assert r.status_code == status
    assert (body.get("code") if "code" in body else body["error"]["code"]) == code


def test_the_servers_defaults_and_lists():
    with BinanceReplayServer() as b, FearGreedReplayServer() as f:
        listed = httpx.get(b.url + BinanceExfClient.PREMIUM_PATH).json()
        one = httpx.get(f.url + "/fng/").json()
        csv_format = httpx.get(f.url + "/fng/", params={"format": "csv"})
    assert listed == [_doc("http_futures_market_premium_index.json")]
    assert len(one["data"]) == 1 and one["data"][0]["value"] == _fng_csv()[-1]["fng_value"]
    assert csv_format.status_code == 400 and csv_format.json()["metadata"]["error"]
