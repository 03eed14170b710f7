"""Fills are FILL_DTYPE records; round trips are paired from them."""

from __future__ import annotations

import numpy as np

from dolphin.core.records import FILL_DTYPE
from dolphin.ledger.tradelog import RoundTrips


def test_fills_are_records_with_their_round_trip():
    trips = RoundTrips()
    trips.on_fill("ETHUSDT", -1, 2.0, 100.0, 0.1, 1_000, bar=5)  # open a short
    done = trips.on_fill("ETHUSDT", 1, 2.0, 90.0, 0.09, 2_000, bar=9, reason="FIXED_TP")
    assert done is not None and done.pnl == (-1) * (180.0 - 200.0) - 0.1 - 0.09
    trips.on_fill("BTCUSDT", 1, 0.5, 20_000.0, 5.0, 3_000, bar=12)  # the next trip opens
    rec = trips.fills(["BTCUSDT", "ETHUSDT"])
    assert rec.dtype == FILL_DTYPE
    assert rec["asset"].tolist() == [1, 1, 0]
    assert rec["side"].tolist() == [-1, 1, 1]
    assert rec["trip"].tolist() == [0, 0, 1]
    assert rec["bar"].tolist() == [5, 9, 12]
    assert np.array_equal(rec["price"], [100.0, 90.0, 20_000.0])
    assert rec["commission"].sum() == 0.1 + 0.09 + 5.0
