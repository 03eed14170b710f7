"""Shared state: one port (``ports``), an embedded adapter and a Hazelcast adapter.

``open_store`` is the one place that turns a store URL into an adapter:

- ``memory://`` (default): the process-local ``MemoryStore``;
- ``hazelcast://host:port[,host:port...]``: a ``HazelcastStore`` on a real cluster.

Importing this package never imports the Hazelcast client; only ``open_store`` with a
``hazelcast://`` URL does, so pure packages and the embedded default stay free of it.
"""

from __future__ import annotations

from typing import Any

from dolphin.core.errors import ConfigError
from dolphin.store.ports import ClusterView, EntryEvent, EntryEventKind, Store, StoreMap

__all__ = [
    "ClusterView",
    "EntryEvent",
    "EntryEventKind",
    "Store",
    "StoreMap",
    "open_store",
]


def open_store(url: str = "memory://", **settings: Any) -> Store:
    """Open the store named by ``url`` (``memory://`` or ``hazelcast://host:port,...``)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"store URL {url!r} must look like memory:// or hazelcast://host:port")
    if scheme == "memory":
        from dolphin.store.memory import MemoryStore

        return MemoryStore(rest or "memory")
    if scheme == "hazelcast":
        from dolphin.store.hazelcast import HazelcastStore

        return HazelcastStore.connect(rest, **settings)
    raise ConfigError(f"store URL {url!r}: unknown scheme (known: memory, hazelcast)")
