"""Acceptance: an ACB day driven by live factors equals the replay's ACB for the same date.

The path under test is the real ExF clients against the replay servers, which serve the shared
indices histories over HTTP. The ExF service runs with its fetchers on a clock set to the
day's 00:00 UTC, and the ACB processor reads `exf_latest`. Its verdict must equal
`AdaptiveCircuitBreaker(cfg, ExfTable.from_dir(indices)).day(date)`: the research path, which
reads the files directly, with the same as-of rules.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from dolphin.adapters.exf.clients import BinanceExfClient, DeribitDvolClient, FearGreedClient
from dolphin.adapters.exf.fetchers import factor_specs
from dolphin.core.clock import SimulatedClock
from dolphin.core.config import AcbConfig
from dolphin.features.exf import FACTORS, ExfTable
from dolphin.risk.acb import AdaptiveCircuitBreaker
from dolphin.services.acb_processor import AcbProcessor
from dolphin.services.exf_service import ExfService
from dolphin.store.memory import MemoryStore
from dolphin.store.schema import ACB_BOOST, FEATURES, decode_value
from tests.kit.exf_servers import BinanceReplayServer, DeribitReplayServer, FearGreedReplayServer
from tests.kit.paths import SHARED_DATA, require

INDICES = SHARED_DATA / "indices"
#: Days across the histories: the FTX crash (2022-11-10: three signals), the 2024-08-05 and
#: 2025-04-07 sell-offs (fear and funding), quiet days, the taker window (2025-10-07 .. 11-05)
#: where all four factors exist, and a day past the DVOL and funding histories (absent).
DATES = ["2022-11-10", "2023-07-19", "2024-03-01", "2024-08-05", "2025-04-07", "2025-10-20",
         "2025-11-04", "2026-01-10"]


@pytest.fixture(scope="module")
def servers():
    with BinanceReplayServer() as b, DeribitReplayServer() as d, FearGreedReplayServer() as f:
        yield b, d, f


@pytest.fixture(scope="module")
def table():
    return ExfTable.from_dir(require(INDICES))


@pytest.mark.parametrize("date", DATES)
def test_the_processors_verdict_equals_the_replays_acb(servers, table, date):
    b, d, f = servers
    now = int(pd.Timestamp(date, tz="UTC").value)
    clients = (BinanceExfClient(b.url), DeribitDvolClient(d.url), FearGreedClient(f.url))
    store, clock = MemoryStore(), SimulatedClock(now)
    exf = ExfService(store, factor_specs(*clients, fng_limit=0), clock=clock)
    exf.start()
    assert exf.tick()
    acb = AcbProcessor(store, AcbConfig(), clock=clock)
    acb.start()
    live = acb.tick()
    want = AdaptiveCircuitBreaker(AcbConfig(), table).day(date)
    for k in FACTORS:
        a, e = live.factors[k], want.factors[k]
        assert (math.isnan(a) and math.isnan(e)) or a == pytest.approx(e, rel=1e-12), (k, a, e)
    assert live.absent == want.absent
    assert (live.signals, live.boost, live.beta) == (want.signals, want.boost, want.beta)
    verdict = decode_value(store.map(FEATURES).get(ACB_BOOST)).data
    assert verdict["date"] == date and verdict["boost"] == want.boost
    for c in clients:
        c.close()


def test_the_dates_cover_bearish_days_and_absent_factors(table):
    days = [AdaptiveCircuitBreaker(AcbConfig(), table).day(d) for d in DATES]
    assert any(day.boost > 1.0 for day in days)  # a day with signals
    assert any("dvol_btc" in day.absent for day in days)  # past the DVOL history
    assert any(not day.absent for day in days)  # all four factors known
