"""The EsoF service writes the §15 envelope into both stores (embedded and a real Hazelcast
member) and another client reads it back as written."""

from __future__ import annotations

import pandas as pd

from dolphin.core.clock import SimulatedClock
from dolphin.features.esof import esof_at
from dolphin.services.esof_service import EsofService
from dolphin.store.schema import ESOF_LATEST, FEATURES, decode_value


def test_esof_latest_lands_in_the_store_with_its_time(store, second_handle):
    t0 = int(pd.Timestamp("2025-03-15 09:00", tz="UTC").value)
    svc = EsofService(store, clock=SimulatedClock(t0))
    svc.start()
    assert svc.tick()
    rec = decode_value(second_handle.map(FEATURES).get(ESOF_LATEST))
    assert rec.ts_ns == t0
    assert rec.data["mercury_retrograde"] is True  # stationed retrograde at 06:46 UTC that day
    assert rec.data == {**esof_at(t0), "source": "ephem"}
    svc.stop()


def test_exf_and_acb_verdicts_land_in_the_store_and_a_trader_reads_them(store, second_handle):
    import math

    from dolphin.core.config import AcbConfig
    from dolphin.services.acb_processor import AcbProcessor
    from dolphin.services.exf_service import ExfService, FactorSpec, Observation, live_factors
    from dolphin.store.schema import ACB_BOOST, EXF_LATEST

    t0 = int(pd.Timestamp("2024-03-01 00:01", tz="UTC").value)
    clock = SimulatedClock(t0)
    exf = ExfService(store, {
        "fng": FactorSpec(lambda now: Observation(10.0, t0 - 60 * 10**9, t0 - 60 * 10**9,
                                                  "alternative.me"), 3600, 2 * 86400),
        "funding_btc": FactorSpec(lambda now: Observation(-0.001, t0 - 10**9, t0 - 10**9,
                                                          "binance"), 60, 86400),
    }, clock=clock)
    exf.start()
    assert exf.tick()
    got = decode_value(second_handle.map(FEATURES).get(EXF_LATEST))
    assert got.ts_ns == t0
    assert live_factors(got.data, t0) == {"fng": 10.0, "funding_btc": -0.001}
    acb = AcbProcessor(store, AcbConfig(), clock=clock)
    acb.start()
    day = acb.tick()
    assert day is not None and day.signals == 2.0  # funding very bearish + confirmed F&G
    verdict = decode_value(second_handle.map(FEATURES).get(ACB_BOOST)).data
    assert verdict["boost"] == day.boost == 1 + 0.5 * math.log1p(2.0)
    assert sorted(verdict["absent"]) == ["dvol_btc", "taker"]
    acb.stop()
    exf.stop()
