"""Failure drills on real members: a member SIGKILLed, the whole store gone, then back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dolphin.adapters.hazelcast.cluster import kill_member
from dolphin.adapters.hazelcast.control import LocalCluster, stop_cluster
from dolphin.adapters.hazelcast.store import HazelcastStore
from dolphin.cli import main
from dolphin.store.errors import StoreUnavailableError
from dolphin.store.events import PendingSlot
from dolphin.store.schema import FEATURES, STATE_BLUE, encode_value
from dolphin.store.values import RecordMap
from tests.integration.store.hzkit import (
    TEST_CLUSTER,
    fast_store,
    free_base_port,
    make_spec,
    wait_for,
)

pytestmark = pytest.mark.hazelcast


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[LocalCluster]:
    cluster = LocalCluster(make_spec(tmp_path, 2))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def test_every_key_survives_a_sigkilled_member_and_the_client_keeps_working(
    pair: LocalCluster,
) -> None:
    with fast_store(pair.addresses, invocation_timeout_s=60.0) as store:
        m = store.map(STATE_BLUE)  # not near-cached: every read below goes to the cluster
        entries = {f"key-{i:05d}": encode_value({"i": i}, i + 1) for i in range(10_000)}
        keys = list(entries)
        for start in range(0, len(keys), 1000):
            m.put_all({k: entries[k] for k in keys[start : start + 1000]})
        assert store.cluster_view().member_count == 2

        assert pair.kill(pair.spec.ports[0])  # the member the client met first

        assert m.get_all(keys) == entries
        assert m.get("key-09999") == entries["key-09999"]
        m.put("after-failover", "ok")
        assert m.get("after-failover") == "ok"
        assert wait_for(lambda: store.cluster_view().member_count == 1, 30.0)


def test_opening_a_store_with_no_member_fails_fast_with_a_typed_error() -> None:
    port = free_base_port(1)
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError):
        HazelcastStore.connect(f"127.0.0.1:{port}", cluster_name=TEST_CLUSTER)
    assert time.monotonic() - started < 10.0


def _hz(state: Path, *args: str) -> int:
    return main(["hz", "--state-dir", str(state), "--cluster-name", TEST_CLUSTER, *args])


def test_a_store_that_disappears_gives_typed_errors_and_comes_back(tmp_path: Path) -> None:
    base = free_base_port(1)
    start = ("start", "--members", "1", "--base-port", str(base), "--partitions", "11")
    try:
        assert _hz(tmp_path, *start) == 0
        assert _hz(tmp_path, "status") == 0
        with fast_store((f"127.0.0.1:{base}",), cluster_connect_timeout_s=90.0) as store:
            records = RecordMap(store.map(FEATURES))
            slot = PendingSlot()
            slot.attach(store.map(FEATURES), "acb_boost")
            records.write("acb_boost", {"boost": 1.2})
            assert wait_for(lambda: slot.received == 1)
            assert records.staleness_s("acb_boost") < 60

            assert kill_member(tmp_path, base)

            assert wait_for(lambda: not store.cluster_view().connected, 15.0)
            with pytest.raises(StoreUnavailableError):
                store.map(STATE_BLUE).get("anything")
            with pytest.raises(StoreUnavailableError):
                records.write("acb_boost", {"boost": 1.3})
            assert records.staleness_s("acb_boost") == float("inf")
            assert _hz(tmp_path, "status") == 1

            assert _hz(tmp_path, *start) == 0  # the same member comes back, empty
            assert wait_for(lambda: store.cluster_view().connected, 60.0)
            assert wait_for(lambda: _writes(records), 30.0)
            assert records.read("acb_boost").data == {"boost": 1.4}
            # The client re-registered the listener on the new member by itself.
            assert wait_for(lambda: slot.received >= 2, 10.0)
            assert slot.take().data == {"boost": 1.4}
        assert _hz(tmp_path, "stop") == 0
        assert _hz(tmp_path, "status") == 1
    finally:
        stop_cluster(tmp_path)


def _writes(records: RecordMap) -> bool:
    try:
        records.write("acb_boost", {"boost": 1.4})
    except StoreUnavailableError:
        return False
    return True
