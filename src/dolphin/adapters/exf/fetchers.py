"""The ExF service's fetchers: each client's history, reduced to the latest value known at a time.

A fetcher is ``fetch(now_ns) -> services.exf_service.Observation``. It asks its client for a
short window ending at ``now_ns``, then keeps the newest row that was already available then.
The as-of rules are ``features/exf.py``'s, so the live ACB sees what the replay's ``ExfTable``
sees for the same instant:

- a funding print is known at its settlement time;
- a daily DVOL or taker candle is known at its close, one day after the open it is stamped
  with, so the candle still open today is never used;
- the Fear & Greed value for day D is known from D 00:00 UTC.

When no row of the window is available yet, the fetch fails as retryable
(``ExfUnavailableError``): the service keeps the last value until it ages out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from dolphin.adapters.exf.clients import (
    BinanceExfClient,
    DeribitDvolClient,
    ExfUnavailableError,
    FearGreedClient,
)
from dolphin.adapters.exf.clients import Observation as ClientObservation
from dolphin.services.exf_service import FactorSpec, Fetcher, Observation

DAY_NS = 86_400 * 10**9
HOUR_S = 3600.0
#: How far back each fetch looks; longer than the factor's maximum age.
LOOKBACK_NS = 4 * DAY_NS
#: features/exf.py's MAX_AGE: older than this at the clock's time, a value is absent.
MAX_AGE_S = 2 * 86_400.0


def latest_available(rows: Sequence[ClientObservation], now_ns: int, delay_ns: int,
                     source: str) -> Observation:
    """Return the newest row known at ``now_ns`` (known ``delay_ns`` after its stamp)."""
    known = [r for r in rows if r.ts_ns + delay_ns <= now_ns]
    if not known:
        raise ExfUnavailableError(f"no value available at {now_ns} ns", source=source)
    r = max(known, key=lambda o: o.ts_ns)
    return Observation(r.value, r.ts_ns, r.ts_ns + delay_ns, source)


def funding_fetcher(client: BinanceExfClient, symbol: str = "BTCUSDT") -> Fetcher:
    """The latest settled funding rate (fraction) of ``symbol``."""
    def fetch(now_ns: int) -> Observation:
        rows = client.funding_rates(symbol, limit=100, start_ns=now_ns - LOOKBACK_NS,
                                    end_ns=now_ns)
        return latest_available(rows, now_ns, 0, client.SOURCE)
    return fetch


def taker_fetcher(client: BinanceExfClient, symbol: str = "BTCUSDT") -> Fetcher:
    """The taker buy/sell ratio of the last closed daily candle."""
    def fetch(now_ns: int) -> Observation:
        rows = client.taker_ratio(symbol, period="1d", limit=10,
                                  start_ns=now_ns - LOOKBACK_NS, end_ns=now_ns)
        return latest_available(rows, now_ns, DAY_NS, client.SOURCE)
    return fetch


def dvol_fetcher(client: DeribitDvolClient, currency: str = "BTC") -> Fetcher:
    """The DVOL close of the last closed daily candle."""
    def fetch(now_ns: int) -> Observation:
        rows = client.dvol(currency, start_ns=now_ns - LOOKBACK_NS, end_ns=now_ns)
        return latest_available(rows, now_ns, DAY_NS, client.SOURCE)
    return fetch


def fng_fetcher(client: FearGreedClient, limit: int = 10) -> Fetcher:
    """The Fear & Greed value of the current day (the latest ``limit`` days are read; 0: all,
    for a clock in the past)."""
    def fetch(now_ns: int) -> Observation:
        return latest_available(client.fear_greed(limit), now_ns, 0, client.SOURCE)
    return fetch


def factor_specs(binance: BinanceExfClient, deribit: DeribitDvolClient, fng: FearGreedClient,
                 *, fng_limit: int = 10,
                 cadence_s: Callable[[str], float] | None = None) -> dict[str, FactorSpec]:
    """The four ACB factors as the ExF service keeps them: funding and taker from Binance,
    DVOL from Deribit, F&G from alternative.me; refetched hourly unless ``cadence_s`` says
    otherwise, absent beyond ``MAX_AGE_S``."""
    period = cadence_s or (lambda name: HOUR_S)
    fetchers = {"funding_btc": funding_fetcher(binance), "dvol_btc": dvol_fetcher(deribit),
                "fng": fng_fetcher(fng, fng_limit), "taker": taker_fetcher(binance)}
    return {k: FactorSpec(f, period(k), MAX_AGE_S) for k, f in fetchers.items()}
