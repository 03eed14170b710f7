"""Time rules of stored values: beyond the clock skew in the future is malformed, a negative age
is never fresh (DESIGN.md "Failure behaviour": unknown is never healthy)."""

from __future__ import annotations

import math

import pytest

from dolphin.store.events import PendingSlot
from dolphin.store.features import ShardedFeatureStore, posture_cell
from dolphin.store.memory import MemoryStore
from dolphin.store.ports import EntryEvent, EntryEventKind
from dolphin.store.schema import SAFETY, encode_value
from dolphin.store.values import (
    MAX_CLOCK_SKEW_S,
    FutureValueError,
    MalformedCounter,
    RecordMap,
    is_fresh,
)

NOW = 1_700_000_000_000_000_000
S = 1_000_000_000


def _records(store: MemoryStore) -> RecordMap:
    return RecordMap(store.map("M"), clock=lambda: NOW)


def test_the_allowed_clock_skew_is_five_seconds() -> None:
    assert MAX_CLOCK_SKEW_S == 5.0


def test_a_value_beyond_the_skew_in_the_future_is_malformed_and_counted() -> None:
    with MemoryStore() as store:
        records = _records(store)
        records.write("k", {"v": 1}, ts_ns=NOW + 6 * S)
        with pytest.raises(FutureValueError, match=r"6\.000s in the future") as info:
            records.read("k")
        assert info.value.field == "ts_ns" and "M['k']" in str(info.value)
        assert records.counter.total == 1
        assert records.staleness_s("k") == math.inf
        assert records.read_many(["k"]) == {}


def test_a_value_within_the_skew_in_the_future_is_readable_but_never_fresh() -> None:
    with MemoryStore() as store:
        records = _records(store)
        records.write("k", {"v": 1}, ts_ns=NOW + 2 * S)
        assert records.read("k").data == {"v": 1}
        assert records.read_fresh("k", 3600.0) is None
        assert records.staleness_s("k") == math.inf
        assert records.counter.total == 0


def test_a_value_exactly_now_is_fresh_and_negative_ages_never_are() -> None:
    assert is_fresh(0.0, 1.0) and is_fresh(1.0, 1.0)
    assert not is_fresh(-1e-9, 1.0) and not is_fresh(1.5, 1.0)
    with MemoryStore() as store:
        records = _records(store)
        records.write("k", 1)
        assert records.read_fresh("k", 1.0) is not None
        assert records.staleness_s("k") == 0.0


def test_the_posture_cell_rejects_a_future_dated_posture() -> None:
    with MemoryStore() as store:
        store.map(SAFETY).put("latest", encode_value({"posture": "APEX"}, NOW + 60 * S, seq=1))
        cell = posture_cell(store, clock=lambda: NOW)
        with pytest.raises(FutureValueError):
            cell.read()
        assert cell.staleness_s() == math.inf
        assert cell.counter.total >= 1


def test_sharded_features_reject_future_values() -> None:
    with MemoryStore() as store:
        features = ShardedFeatureStore(store, clock=lambda: NOW)
        features.put("BTCUSDT", "imbalance", 0.3, ts_ns=NOW + 10 * S)
        with pytest.raises(FutureValueError):
            features.get("BTCUSDT", "imbalance")
        assert features.get_many("BTCUSDT", ["imbalance"]) == {}
        assert features.staleness_s("BTCUSDT", "imbalance") == math.inf


def test_the_pending_slot_skips_and_counts_a_future_dated_event() -> None:
    counter = MalformedCounter()
    slot = PendingSlot(counter=counter, clock=lambda: NOW)
    future = encode_value({"boost": 1.2, "beta": 0.2}, NOW + 30 * S)
    slot.on_event(EntryEvent("DOLPHIN_FEATURES", EntryEventKind.UPDATED, "acb_boost", future, None))
    assert slot.take() is None and counter.total == 1
    ok = encode_value({"boost": 1.2, "beta": 0.2}, NOW + 1 * S)  # within the skew: accepted
    slot.on_event(EntryEvent("DOLPHIN_FEATURES", EntryEventKind.UPDATED, "acb_boost", ok, None))
    assert slot.take().data["boost"] == 1.2
