"""``MemoryStore``: the embedded, process-local store with the semantics of the Hazelcast one.

One condition variable guards every map of the store: operations are dictionary look-ups, so a
single lock costs less than it saves, and it gives key locks a simple wait/notify. Listeners run
on the store's worker thread (see ``dolphin.store.events``), as they do with Hazelcast.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dolphin.store.errors import LockNotHeldError, StoreUnavailableError, require_str
from dolphin.store.events import ListenerDispatcher
from dolphin.store.ports import ClusterView, EntryCallback, EntryEvent, EntryEventKind
from dolphin.store.processors import Outcome, Processor


@dataclass(slots=True)
class _KeyLock:
    owner: int
    holds: int


class MemoryStore:
    """Thread-safe in-process store implementing ``dolphin.store.ports.Store``."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self._cond = threading.Condition()
        self._data: dict[str, dict[str, str]] = {}
        self._locks: dict[tuple[str, str], _KeyLock] = {}
        self._maps: dict[str, MemoryMap] = {}
        self._closed = False
        self.dispatcher = ListenerDispatcher(name)

    def map(self, name: str) -> MemoryMap:
        """Return the map called ``name``."""
        with self._cond:
            self._check_open()
            found = self._maps.get(name)
            if found is None:
                found = self._maps[name] = MemoryMap(self, name)
                self._data.setdefault(name, {})
            return found

    def cluster_view(self) -> ClusterView:
        """One embedded 'member' while open, none after ``close``."""
        if self._closed:
            return ClusterView(connected=False, member_count=0)
        return ClusterView(connected=True, member_count=1, members=(f"embedded:{self.name}",))

    def close(self) -> None:
        """Refuse further operations and stop the listener worker."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self.dispatcher.close()

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- used by MemoryMap, always with self._cond held ---------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailableError(f"memory store {self.name!r} is closed")

    def _wait_writable(self, map_name: str, key: str) -> None:
        """Wait while another thread holds the key lock (Hazelcast blocks writers the same way)."""
        me = threading.get_ident()
        while True:
            self._check_open()
            held = self._locks.get((map_name, key))
            if held is None or held.owner == me:
                return
            self._cond.wait()

    def _acquire(self, map_name: str, key: str, deadline: float | None) -> bool:
        me = threading.get_ident()
        while True:
            self._check_open()
            held = self._locks.get((map_name, key))
            if held is None:
                self._locks[(map_name, key)] = _KeyLock(owner=me, holds=1)
                return True
            if held.owner == me:
                held.holds += 1
                return True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            self._cond.wait(remaining)

    def _release(self, map_name: str, key: str) -> None:
        held = self._locks.get((map_name, key))
        if held is None or held.owner != threading.get_ident():
            raise LockNotHeldError(f"{map_name}[{key!r}] is not locked by this thread")
        held.holds -= 1
        if held.holds == 0:
            del self._locks[(map_name, key)]
            self._cond.notify_all()


class MemoryMap:
    """One map of a ``MemoryStore``; implements ``dolphin.store.ports.StoreMap``."""

    def __init__(self, store: MemoryStore, name: str) -> None:
        self._store = store
        self._name = name

    @property
    def name(self) -> str:
        """The map's name."""
        return self._name

    def _entries(self) -> dict[str, str]:
        self._store._check_open()
        return self._store._data[self._name]

    def _emit(self, kind: EntryEventKind, key: str, value: str | None, old: str | None) -> None:
        # Queued under the store lock so that listeners see writes in the order they happened.
        self._store.dispatcher.publish(EntryEvent(self._name, kind, key, value, old))

    def _set(self, key: str, value: str) -> None:
        entries = self._entries()
        old = entries.get(key)
        entries[key] = value
        kind = EntryEventKind.ADDED if old is None else EntryEventKind.UPDATED
        self._emit(kind, key, value, old)

    def get(self, key: str) -> str | None:
        """Return the value of ``key`` or None."""
        with self._store._cond:
            return self._entries().get(require_str("key", key))

    def get_all(self, keys: Iterable[str]) -> dict[str, str]:
        """Return the present entries among ``keys``."""
        with self._store._cond:
            entries = self._entries()
            return {k: entries[k] for k in keys if require_str("key", k) in entries}

    def put(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``."""
        require_str("key", key)
        require_str("value", value)
        with self._store._cond:
            self._store._wait_writable(self._name, key)
            self._set(key, value)

    def put_all(self, entries: Mapping[str, str]) -> None:
        """Store every entry."""
        for key, value in entries.items():
            self.put(key, value)

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        require_str("key", key)
        with self._store._cond:
            self._store._wait_writable(self._name, key)
            old = self._entries().pop(key, None)
            if old is not None:
                self._emit(EntryEventKind.REMOVED, key, None, old)

    def keys(self) -> list[str]:
        """Return a snapshot of the keys."""
        with self._store._cond:
            return list(self._entries())

    def clear(self) -> None:
        """Remove every entry without per-entry events (as Hazelcast's ``clear``)."""
        with self._store._cond:
            self._entries().clear()

    def put_if_absent(self, key: str, value: str) -> str | None:
        """Store ``value`` only when ``key`` is absent; return the existing value, else None."""
        require_str("key", key)
        require_str("value", value)
        with self._store._cond:
            self._store._wait_writable(self._name, key)
            existing = self._entries().get(key)
            if existing is None:
                self._set(key, value)
            return existing

    def replace_if_same(self, key: str, expected: str, new: str) -> bool:
        """Replace the value by ``new`` only when it is exactly ``expected``."""
        require_str("key", key)
        require_str("value", new)
        with self._store._cond:
            self._store._wait_writable(self._name, key)
            if self._entries().get(key) != expected:
                return False
            self._set(key, new)
            return True

    def execute(self, key: str, processor: Processor) -> Outcome:
        """Run ``processor`` on ``key`` under the store lock (``store.processors``)."""
        require_str("key", key)
        require_str("value", processor.value)
        with self._store._cond:
            self._store._wait_writable(self._name, key)
            outcome = processor.decide(self._entries().get(key))
            if outcome.applied:
                self._set(key, processor.value)
            return outcome

    def lock(self, key: str) -> None:
        """Acquire the key lock for this thread (re-entrant), waiting as long as needed."""
        with self._store._cond:
            self._store._acquire(self._name, require_str("key", key), None)

    def try_lock(self, key: str, timeout_s: float = 0.0) -> bool:
        """Acquire the key lock within ``timeout_s``; report success."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._store._cond:
            return self._store._acquire(self._name, require_str("key", key), deadline)

    def unlock(self, key: str) -> None:
        """Release one hold of this thread on the key lock."""
        with self._store._cond:
            self._store._check_open()
            self._store._release(self._name, key)

    def is_locked(self, key: str) -> bool:
        """Report whether any thread holds the key lock."""
        with self._store._cond:
            self._store._check_open()
            return (self._name, key) in self._store._locks

    def add_listener(self, callback: EntryCallback, *, key: str | None = None) -> str:
        """Deliver changes (of ``key``) to ``callback`` on the store's worker thread."""
        self._store._check_open()
        return self._store.dispatcher.register(self._name, callback, key)

    def remove_listener(self, registration_id: str) -> bool:
        """Stop a listener; report whether it was registered."""
        return self._store.dispatcher.unregister(registration_id)
