"""Shared state: the port (``ports``), its value schema and the embedded ``MemoryStore``.

The Hazelcast adapter lives in ``dolphin.adapters.hazelcast``; ``dolphin.bootstrap.open_store``
is the one place that turns a store URL into an adapter. Importing this package never imports
the Hazelcast client.
"""

from __future__ import annotations

from dolphin.store.ports import ClusterView, EntryEvent, EntryEventKind, Store, StoreMap

__all__ = [
    "ClusterView",
    "EntryEvent",
    "EntryEventKind",
    "Store",
    "StoreMap",
]
