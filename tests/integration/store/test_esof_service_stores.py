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
