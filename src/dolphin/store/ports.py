"""The store port: what every service may ask of the shared state, whatever backs it.

Two adapters implement it with the same observable semantics (checked by one contract suite):
``MemoryStore`` (process-local, the default) and ``HazelcastStore`` (a real cluster). Keys and
values at this level are strings; values are the versioned JSON text of ``dolphin.store.schema``.

Semantics both adapters guarantee:

- ``put_if_absent`` returns ``None`` when it stored the value, else the value already there.
- ``replace_if_same`` swaps the value only when the stored text equals ``expected`` exactly.
- Key locks are per (store handle, thread) and re-entrant; while one thread holds a key, writes
  to that key from any other thread wait until it is released (Hazelcast ``IMap.lock``).
- An event carries the new value and the previous one; a removal has ``value=None`` and the
  removed value as ``old_value``.
- Listeners run on one worker thread per store, never on the caller's thread, so a callback may
  itself call the store; events of one key arrive in write order.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from dolphin.store.processors import Outcome, Processor


class EntryEventKind(enum.StrEnum):
    """What happened to a map entry."""

    ADDED = "added"
    UPDATED = "updated"
    REMOVED = "removed"


@dataclass(frozen=True, slots=True)
class EntryEvent:
    """One change of one map entry, as delivered to a listener."""

    map_name: str
    kind: EntryEventKind
    key: str
    value: str | None
    old_value: str | None


EntryCallback = Callable[[EntryEvent], None]


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What the survival controller needs to judge the store: reachable, and how redundant."""

    connected: bool
    member_count: int
    members: tuple[str, ...] = ()


@runtime_checkable
class StoreMap(Protocol):
    """One named map of string keys to string values."""

    @property
    def name(self) -> str:
        """The map's name."""
        ...

    def get(self, key: str) -> str | None:
        """Return the value of ``key`` or ``None``."""
        ...

    def get_all(self, keys: Iterable[str]) -> dict[str, str]:
        """Return the present entries among ``keys``."""
        ...

    def put(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``."""
        ...

    def put_all(self, entries: Mapping[str, str]) -> None:
        """Store every entry (not atomic as a whole; each entry is)."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        ...

    def keys(self) -> list[str]:
        """Return every key of the map (a snapshot)."""
        ...

    def clear(self) -> None:
        """Remove every entry. Fires no per-entry events."""
        ...

    def put_if_absent(self, key: str, value: str) -> str | None:
        """Store ``value`` only when ``key`` is absent; return the existing value, else None."""
        ...

    def replace_if_same(self, key: str, expected: str, new: str) -> bool:
        """Replace the value with ``new`` only when it equals ``expected``; report success."""
        ...

    def execute(self, key: str, processor: Processor) -> Outcome:
        """Run ``processor`` on ``key`` atomically (``store.processors``); return its outcome.

        On Hazelcast it runs on the member owning the key, as an entry processor; like a write,
        it waits while another thread holds the key lock.
        """
        ...

    def lock(self, key: str) -> None:
        """Acquire the lock of ``key`` for the calling thread, waiting as long as needed."""
        ...

    def try_lock(self, key: str, timeout_s: float = 0.0) -> bool:
        """Acquire the lock of ``key`` within ``timeout_s``; report success."""
        ...

    def unlock(self, key: str) -> None:
        """Release one hold of the calling thread on ``key``; raise LockNotHeldError otherwise."""
        ...

    def is_locked(self, key: str) -> bool:
        """Report whether any thread holds the lock of ``key``."""
        ...

    def add_listener(self, callback: EntryCallback, *, key: str | None = None) -> str:
        """Call ``callback`` on the store's worker thread for every change (of ``key``)."""
        ...

    def remove_listener(self, registration_id: str) -> bool:
        """Stop a listener; report whether it was registered."""
        ...


@runtime_checkable
class Store(Protocol):
    """A handle on the whole store: named maps plus the cluster view."""

    def map(self, name: str) -> StoreMap:
        """Return the map called ``name`` (created on first use)."""
        ...

    def cluster_view(self) -> ClusterView:
        """Return whether the store is reachable and how many members serve it."""
        ...

    def close(self) -> None:
        """Release connections and stop the listener worker. Idempotent."""
        ...

    def __enter__(self) -> Store: ...

    def __exit__(self, *exc: object) -> None: ...
