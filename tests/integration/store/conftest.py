"""Real Hazelcast members for the store tests, started and always stopped by this session.

The contract suite also runs against the embedded store served over loopback TCP ("net": one
``StoreServer`` on a free port for the session, each test a fresh ``NetStore`` client).

Members run on free loopback ports from 5801 up (never the default 5701, which a user's own
cluster may hold), with their own state directory, and are tied to the test process so that
even a run killed hard leaves no Java process behind. The jar is fetched from Maven Central
into the user cache on first use (``HAZELCAST_JAR`` overrides).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dolphin.adapters.hazelcast.control import LocalCluster
from dolphin.adapters.hazelcast.store import HazelcastStore
from dolphin.adapters.netstore.client import NetStore
from dolphin.adapters.netstore.server import StoreServer
from dolphin.store.memory import MemoryStore
from dolphin.store.schema import ALL_MAPS
from tests.integration.store.hzkit import fast_store, make_spec


@pytest.fixture(scope="session")
def hz_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One member shared by the contract suite."""
    cluster = LocalCluster(make_spec(tmp_path_factory.mktemp("hz-contract"), 1))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def net_server() -> Iterator[StoreServer]:
    """One store server on a free loopback port, shared by the contract suite."""
    server = StoreServer("127.0.0.1", 0).start()
    try:
        yield server
    finally:
        server.close()


def _clear_all(store: HazelcastStore | NetStore) -> None:
    for name in ALL_MAPS:
        store.map(name).clear()


@pytest.fixture(params=["memory", "net", pytest.param("hazelcast", marks=pytest.mark.hazelcast)])
def store(request: pytest.FixtureRequest) -> Iterator[MemoryStore | HazelcastStore | NetStore]:
    """The contract suite's subject: each test runs once per adapter."""
    if request.param == "memory":
        with MemoryStore() as mem:
            yield mem
        return
    if request.param == "net":
        server: StoreServer = request.getfixturevalue("net_server")
        net = NetStore.connect(server.address, timeout_s=10.0)
        _clear_all(net)
        try:
            yield net
        finally:
            net.close()
            with NetStore.connect(server.address) as cleaner:
                _clear_all(cleaner)
        return
    cluster: LocalCluster = request.getfixturevalue("hz_cluster")
    hz = fast_store(cluster.addresses)
    _clear_all(hz)
    try:
        yield hz
    finally:
        hz.close()
        # A fresh handle: the test may have closed its own.
        with fast_store(cluster.addresses) as cleaner:
            _clear_all(cleaner)


@pytest.fixture
def second_handle(
    request: pytest.FixtureRequest, store: MemoryStore | HazelcastStore | NetStore
) -> Iterator[MemoryStore | HazelcastStore | NetStore]:
    """Another client of the same data (the same object for the embedded store)."""
    if isinstance(store, MemoryStore):
        yield store
        return
    if isinstance(store, NetStore):
        server: StoreServer = request.getfixturevalue("net_server")
        with NetStore.connect(server.address) as net:
            yield net
        return
    cluster: LocalCluster = request.getfixturevalue("hz_cluster")
    other = fast_store(cluster.addresses)
    try:
        yield other
    finally:
        other.close()
