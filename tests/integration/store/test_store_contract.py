"""The store contract: every test runs against MemoryStore and against a real Hazelcast member.

One suite for both adapters is what lets services be tested on the embedded store and run on
the cluster.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from dolphin.core.errors import BadInputError
from dolphin.store.errors import LockNotHeldError, MalformedValueError, StoreUnavailableError
from dolphin.store.events import PendingSlot
from dolphin.store.features import LatestCell, ShardedFeatureStore, posture_cell
from dolphin.store.ports import EntryEvent, EntryEventKind, Store, StoreMap
from dolphin.store.schema import (
    FEATURES,
    LATEST_EIGEN_SCAN,
    SAFETY,
    encode_value,
    shard_map_name,
)
from dolphin.store.values import MalformedCounter, RecordMap
from tests.integration.store.hzkit import Collector, wait_for

MAP = "DOLPHIN_STATE_BLUE"


def test_store_satisfies_the_protocols(store: Store) -> None:
    assert isinstance(store, Store)
    assert isinstance(store.map(MAP), StoreMap)
    assert store.map(MAP).name == MAP


def test_get_of_a_missing_key_is_none_and_put_then_get_round_trips(store: Store) -> None:
    m = store.map(MAP)
    assert m.get("nope") is None
    m.put("k", "v1")
    assert m.get("k") == "v1"
    m.put("k", "v2")
    assert m.get("k") == "v2"


def test_put_all_and_get_all_return_only_present_keys(store: Store) -> None:
    m = store.map(MAP)
    m.put_all({f"k{i}": f"v{i}" for i in range(50)})
    assert m.get_all(["k0", "k49", "absent"]) == {"k0": "v0", "k49": "v49"}
    assert m.get_all([]) == {}
    assert sorted(m.keys()) == sorted(f"k{i}" for i in range(50))


def test_delete_removes_and_deleting_a_missing_key_is_harmless(store: Store) -> None:
    m = store.map(MAP)
    m.put("k", "v")
    m.delete("k")
    m.delete("k")
    assert m.get("k") is None
    assert m.keys() == []


def test_clear_empties_the_map(store: Store) -> None:
    m = store.map(MAP)
    m.put_all({"a": "1", "b": "2"})
    m.clear()
    assert m.keys() == []


def test_put_if_absent_stores_once_and_returns_the_existing_value(store: Store) -> None:
    m = store.map(MAP)
    assert m.put_if_absent("k", "first") is None
    assert m.put_if_absent("k", "second") == "first"
    assert m.get("k") == "first"


def test_replace_if_same_swaps_only_on_an_exact_match(store: Store) -> None:
    m = store.map(MAP)
    assert m.replace_if_same("k", "x", "y") is False
    m.put("k", "x")
    assert m.replace_if_same("k", "other", "y") is False
    assert m.get("k") == "x"
    assert m.replace_if_same("k", "x", "y") is True
    assert m.get("k") == "y"


def test_non_string_values_are_rejected_with_a_typed_error(store: Store) -> None:
    m = store.map(MAP)
    with pytest.raises(BadInputError):
        m.put("k", {"not": "text"})  # type: ignore[arg-type]
    with pytest.raises(BadInputError):
        m.put(7, "v")  # type: ignore[arg-type]


def _in_thread(fn: Callable[[], object]) -> object:
    out: list[object] = []
    t = threading.Thread(target=lambda: out.append(fn()))
    t.start()
    t.join(15)
    return out[0] if out else None


def test_a_key_lock_excludes_other_threads_and_is_reentrant(store: Store) -> None:
    m = store.map(MAP)
    m.lock("k")
    try:
        assert m.is_locked("k")
        assert m.try_lock("k")  # re-entrant for the holder
        m.unlock("k")
        assert _in_thread(lambda: m.try_lock("k", 0.05)) is False
    finally:
        m.unlock("k")
    assert not m.is_locked("k")
    assert _in_thread(lambda: (m.try_lock("k", 1.0), m.unlock("k"))[0]) is True


def test_unlock_without_holding_raises_lock_not_held(store: Store) -> None:
    m = store.map(MAP)
    with pytest.raises(LockNotHeldError):
        m.unlock("never-locked")


def test_a_writer_waits_while_another_thread_holds_the_key(store: Store) -> None:
    m = store.map(MAP)
    m.put("k", "before")
    m.lock("k")
    writer = threading.Thread(target=lambda: m.put("k", "after"))
    try:
        writer.start()
        time.sleep(0.3)
        assert m.get("k") == "before"
    finally:
        m.unlock("k")
    writer.join(10)
    assert m.get("k") == "after"


def test_listeners_see_added_updated_removed_in_order_on_a_worker_thread(store: Store) -> None:
    m = store.map(MAP)
    seen = Collector()
    reg = m.add_listener(seen)
    m.put("k", "1")
    m.put("k", "2")
    m.delete("k")
    assert wait_for(lambda: len(seen.events) == 3)
    kinds = [e.kind for e in seen.events]
    assert kinds == [EntryEventKind.ADDED, EntryEventKind.UPDATED, EntryEventKind.REMOVED]
    assert [e.value for e in seen.events[:2]] == ["1", "2"]
    assert seen.events[2].value is None
    assert [e.old_value for e in seen.events] == [None, "1", "2"]
    assert all(e.map_name == MAP and e.key == "k" for e in seen.events)
    assert threading.get_ident() not in seen.threads
    assert m.remove_listener(reg) is True
    m.put("k", "3")
    time.sleep(0.3)
    assert len(seen.events) == 3


def test_a_key_listener_ignores_other_keys(store: Store) -> None:
    m = store.map(MAP)
    seen = Collector()
    m.add_listener(seen, key="watched")
    m.put("other", "x")
    m.put("watched", "y")
    assert wait_for(lambda: len(seen.events) == 1)
    time.sleep(0.2)
    assert [e.key for e in seen.events] == ["watched"]


def test_a_callback_may_call_the_store_and_a_failing_one_does_not_stop_delivery(
    store: Store,
) -> None:
    m = store.map(MAP)
    mirrored: list[str | None] = []

    def broken(event: EntryEvent) -> None:
        raise RuntimeError("listener bug")

    def mirror(event: EntryEvent) -> None:
        mirrored.append(m.get(event.key))  # a blocking store call from the callback

    m.add_listener(broken)
    m.add_listener(mirror)
    m.put("a", "1")
    m.put("b", "2")
    assert wait_for(lambda: len(mirrored) == 2)
    # Hazelcast orders events per key (its partition), not across keys: compare as a set
    assert sorted(mirrored) == ["1", "2"]


def test_writes_from_another_handle_reach_this_handle(store: Store, second_handle: Store) -> None:
    seen = Collector()
    store.map(FEATURES).add_listener(seen, key=LATEST_EIGEN_SCAN)
    assert store.map(FEATURES).get(LATEST_EIGEN_SCAN) is None  # warms a near cache
    second_handle.map(FEATURES).put(LATEST_EIGEN_SCAN, "scan-1")
    assert wait_for(lambda: store.map(FEATURES).get(LATEST_EIGEN_SCAN) == "scan-1", 2.0)
    assert wait_for(lambda: len(seen.events) == 1)
    second_handle.map(FEATURES).put(LATEST_EIGEN_SCAN, "scan-2")
    # The near cache must be invalidated at once, not after a batch interval.
    assert wait_for(lambda: store.map(FEATURES).get(LATEST_EIGEN_SCAN) == "scan-2", 1.0)


def test_cluster_view_reports_a_connected_store(store: Store) -> None:
    view = store.cluster_view()
    assert view.connected
    assert view.member_count >= 1
    assert len(view.members) == view.member_count


def test_record_reader_validates_counts_and_measures_staleness(store: Store) -> None:
    now = [1_000_000_000_000]
    counter = MalformedCounter()
    records = RecordMap(store.map(FEATURES), clock=lambda: now[0], counter=counter)
    written = records.write("acb_boost", {"boost": 1.35, "beta": 0.2})
    now[0] += 3_000_000_000
    got = records.read("acb_boost")
    assert got == written and got.data == {"boost": 1.35, "beta": 0.2}
    assert records.staleness_s("acb_boost") == pytest.approx(3.0)
    assert records.read_fresh("acb_boost", 2.0) is None
    assert records.staleness_s("missing") == float("inf")

    store.map(FEATURES).put("bad", "{not json")
    with pytest.raises(MalformedValueError):
        records.read("bad")
    assert records.read_many(["acb_boost", "bad", "missing"]).keys() == {"acb_boost"}
    assert counter.total == 2
    assert counter.by_map() == {FEATURES: 2}
    assert records.staleness_s("bad") == float("inf")


def test_sharded_feature_store_routes_by_symbol_and_discovers_symbols(store: Store) -> None:
    features = ShardedFeatureStore(store, clock=lambda: 42)
    features.put("BTCUSDT", "vel_div", -0.03)
    features.put_many("ETHUSDT", {"imbalance": 0.1, "depth_quality": 1.2})
    assert features.get("BTCUSDT", "vel_div").data == -0.03
    assert features.get("BTCUSDT", "missing") is None
    assert store.map(shard_map_name("BTCUSDT")).get("vel_div_BTCUSDT") is not None
    got = features.get_many("ETHUSDT", ["imbalance", "depth_quality", "absent"])
    assert {k: r.data for k, r in got.items()} == {"imbalance": 0.1, "depth_quality": 1.2}
    assert features.symbols() == {"BTCUSDT", "ETHUSDT"}
    features.delete("BTCUSDT", "vel_div")
    assert features.symbols() == {"ETHUSDT"}
    assert features.staleness_s("BTCUSDT", "vel_div") == float("inf")


def test_posture_cell_compare_and_set(store: Store) -> None:
    cell = posture_cell(store)
    assert cell.read() is None
    first = cell.compare_and_set(None, {"posture": "APEX", "Rm": 1.0})
    assert first is not None and first.seq == 1
    assert cell.compare_and_set(None, {"posture": "TURTLE"}) is None  # no longer empty
    second = cell.compare_and_set(first, {"posture": "STALKER", "Rm": 0.7})
    assert second is not None and second.seq == 2
    assert cell.compare_and_set(first, {"posture": "APEX"}) is None  # stale snapshot
    assert cell.read().data == {"posture": "STALKER", "Rm": 0.7}
    assert store.map(SAFETY).get("latest") == second.raw


def test_posture_cell_update_loses_no_concurrent_increment(store: Store) -> None:
    cell = LatestCell(store.map(SAFETY), "counter")
    threads = [
        threading.Thread(
            target=lambda: [cell.update(lambda n: (n or 0) + 1, attempts=200) for _ in range(15)]
        )
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    final = cell.read()
    assert final.data == 60 and final.seq == 60


def test_posture_cell_overwrite_repairs_a_malformed_value(store: Store) -> None:
    cell = posture_cell(store)
    store.map(SAFETY).put("latest", "garbage")
    with pytest.raises(MalformedValueError):
        cell.read()
    assert cell.counter.total == 1
    repaired = cell.overwrite({"posture": "TURTLE"})
    assert cell.read() == repaired and repaired.seq == 1


def test_pending_slot_hands_the_newest_record_to_the_consumer(store: Store) -> None:
    m = store.map(FEATURES)
    slot = PendingSlot()
    slot.attach(m, "acb_boost")
    m.put("acb_boost", encode_value({"boost": 1.1}, 1))
    assert wait_for(lambda: slot.received == 1)
    m.put("acb_boost", "{broken")
    m.put("acb_boost", encode_value({"boost": 1.2}, 2))
    assert wait_for(lambda: slot.received == 2)
    taken = slot.take()
    assert taken is not None and taken.data == {"boost": 1.2}
    assert slot.take() is None
    assert slot.counter.total == 1


def test_a_closed_store_raises_store_unavailable(store: Store) -> None:
    m = store.map(MAP)
    store.close()
    with pytest.raises(StoreUnavailableError):
        m.get("k")
    with pytest.raises(StoreUnavailableError):
        m.put("k", "v")
    assert store.cluster_view().connected is False
    store.close()  # idempotent
