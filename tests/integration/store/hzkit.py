"""Helpers of the store integration tests: free ports, test cluster specs, polling."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

from dolphin.adapters.hazelcast.cluster import ClusterSpec
from dolphin.adapters.hazelcast.store import HazelcastStore
from dolphin.store.ports import EntryEvent
from tests.kit.procs import wait_for  # noqa: F401 (re-exported for the store tests)

TEST_CLUSTER = "dolphin-test"
FIRST_PORT = 5801


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


_claimed: set[int] = set()


def free_base_port(count: int, start: int = FIRST_PORT) -> int:
    """Return the first port from ``start`` with ``count`` consecutive free ports."""
    for base in range(start, start + 400, 10):
        ports = range(base, base + count)
        if all(p not in _claimed and _port_free(p) for p in ports):
            _claimed.update(ports)
            return base
    raise RuntimeError(f"no {count} free consecutive ports from {start}")


def make_spec(tmp: Path, members: int) -> ClusterSpec:
    """A test cluster spec: few partitions (fast formation), own name, own state directory."""
    return ClusterSpec(
        members=members,
        base_port=free_base_port(members),
        cluster_name=TEST_CLUSTER,
        partitions=11,
        state_dir=tmp,
    )


def fast_store(addresses: tuple[str, ...], **overrides: object) -> HazelcastStore:
    """A store with short timeouts, so that failure paths finish in seconds."""
    settings = {
        "cluster_name": TEST_CLUSTER,
        "invocation_timeout_s": 10.0,
        "cluster_connect_timeout_s": 20.0,
        **overrides,
    }
    return HazelcastStore.connect(",".join(addresses), **settings)




class Collector:
    """A listener that records events and the threads they arrived on."""

    def __init__(self) -> None:
        self.events: list[EntryEvent] = []
        self.threads: set[int] = set()

    def __call__(self, event: EntryEvent) -> None:
        self.threads.add(threading.get_ident())
        self.events.append(event)
