"""The EsoF service: its cadence on an injected clock, the §15 envelope, store failures."""

from __future__ import annotations

import pandas as pd

from dolphin.core.clock import SimulatedClock
from dolphin.features.esof import esof_at
from dolphin.services.component import ComponentState
from dolphin.services.esof_service import EsofService
from dolphin.store.errors import StoreUnavailableError
from dolphin.store.memory import MemoryStore
from dolphin.store.schema import ESOF_LATEST, FEATURES, decode_value

T0 = int(pd.Timestamp("2024-04-08 18:00", tz="UTC").value)


def test_it_publishes_on_its_cadence_with_the_clock_time():
    clock, store = SimulatedClock(T0), MemoryStore()
    svc = EsofService(store, clock=clock, period_s=60)
    svc.start()
    assert svc.tick() is True
    rec = decode_value(store.map(FEATURES).get(ESOF_LATEST))
    assert rec.ts_ns == T0 and rec.data == {**esof_at(T0), "source": "ephem"}
    clock.advance(59 * 10**9)
    assert svc.tick() is False  # within the period: nothing recomputed
    clock.advance(10**9)
    assert svc.tick() is True
    assert decode_value(store.map(FEATURES).get(ESOF_LATEST)).ts_ns == T0 + 60 * 10**9
    assert (svc.computed, svc.published) == (2, 2)
    assert svc.heartbeat()["last_ts_ns"] == T0 + 60 * 10**9


class _DownMap:
    def put(self, key, value):
        raise StoreUnavailableError("store down")


class _FlakyStore:
    """A store whose FEATURES map is down until ``up`` is set."""

    def __init__(self) -> None:
        self.real = MemoryStore()
        self.up = False

    def map(self, name):
        return self.real.map(name) if self.up else _DownMap()


def test_a_store_outage_degrades_after_the_retries_and_the_next_write_recovers():
    clock, store = SimulatedClock(T0), _FlakyStore()
    svc = EsofService(store, clock=clock, period_s=1, max_retries=3)
    svc.start()
    for _ in range(3):
        assert svc.tick() is False
        clock.advance(10**9)
    assert svc.state is ComponentState.DEGRADED and svc.published == 0
    store.up = True
    assert svc.tick() is True
    assert svc.state is ComponentState.RUNNING
    assert decode_value(store.real.map(FEATURES).get(ESOF_LATEST)).ts_ns == clock.now_ns()
