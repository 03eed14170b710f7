"""Listener delivery on a worker thread, and the pending-flag handoff of the Bible §14.2.

Both adapters hand every event to a ``ListenerDispatcher``: one daemon thread per store calls the
callbacks in arrival order. The Hazelcast client would otherwise run callbacks on its own I/O
thread, where a blocking store call from the callback deadlocks the client; the memory store
would run them on the writer's thread, which the real cluster never does. Same thread model for
both keeps code tested on one honest on the other.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from dataclasses import dataclass

from dolphin.store.errors import MalformedValueError
from dolphin.store.ports import EntryCallback, EntryEvent, StoreMap
from dolphin.store.schema import Record, decode_value
from dolphin.store.values import Clock, MalformedCounter, check_not_future

log = logging.getLogger(__name__)

_STOP = object()


@dataclass(frozen=True, slots=True)
class _Registration:
    map_name: str
    key: str | None
    callback: EntryCallback


class ListenerDispatcher:
    """Runs entry callbacks on one worker thread; a failing callback is logged, never fatal."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._registry: dict[str, _Registration] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._thread: threading.Thread | None = None
        self._closed = False
        self.callback_errors = 0

    def register(self, map_name: str, callback: EntryCallback, key: str | None = None) -> str:
        """Register ``callback`` for changes of ``map_name`` (only ``key`` when given)."""
        reg_id = f"{self._name}-{next(self._ids)}"
        with self._lock:
            self._registry[reg_id] = _Registration(map_name, key, callback)
            self._ensure_thread()
        return reg_id

    def unregister(self, reg_id: str) -> bool:
        """Forget a registration; queued events for it are dropped. Report whether it existed."""
        with self._lock:
            return self._registry.pop(reg_id, None) is not None

    def matching(self, map_name: str, key: str) -> list[str]:
        """Return the registrations interested in a change of ``key`` in ``map_name``."""
        with self._lock:
            return [
                rid
                for rid, reg in self._registry.items()
                if reg.map_name == map_name and (reg.key is None or reg.key == key)
            ]

    def publish(self, event: EntryEvent) -> None:
        """Queue ``event`` for every registration that matches it (memory store path)."""
        for reg_id in self.matching(event.map_name, event.key):
            self._queue.put((reg_id, event))

    def deliver(self, reg_id: str, event: EntryEvent) -> None:
        """Queue ``event`` for one registration (the cluster already filtered it)."""
        self._queue.put((reg_id, event))

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the worker after the events already queued. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        self._queue.put(_STOP)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def _ensure_thread(self) -> None:
        # Started on the first registration so that stores nobody listens to cost no thread.
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(
                target=self._run, name=f"store-listeners-{self._name}", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            reg_id, event = item  # type: ignore[misc]
            with self._lock:
                reg = self._registry.get(reg_id)
            if reg is not None:
                self._call(reg, event)

    def _call(self, reg: _Registration, event: EntryEvent) -> None:
        try:
            reg.callback(event)
        except Exception:
            # A listener bug must not stop delivery to every other listener of the process.
            self.callback_errors += 1
            log.exception("store listener failed map=%s key=%s", event.map_name, event.key)


class PendingSlot:
    """The pending-flag pattern (§14.2): the listener parks the newest record, the loop takes it.

    The listener thread decodes outside the lock (CPU work) and only swaps a reference inside
    it; the consumer takes and clears the slot at the start of its next step and applies the
    record on its own thread. Only the newest record matters: one that is overwritten before
    being taken is counted in ``superseded``. A removal leaves the slot alone: a vanished value
    is handled by staleness, not by an event. Malformed values are counted and skipped, and so
    are values stamped beyond the allowed clock skew in the future (``records.FutureValueError``,
    measured by ``clock``).
    """

    def __init__(
        self, *, counter: MalformedCounter | None = None, clock: Clock = time.time_ns
    ) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._pending: Record | None = None
        self.counter = counter if counter is not None else MalformedCounter()
        self.superseded = 0
        self.received = 0

    def attach(self, store_map: StoreMap, key: str) -> str:
        """Listen to ``key`` of ``store_map``; return the registration id."""
        return store_map.add_listener(self.on_event, key=key)

    def on_event(self, event: EntryEvent) -> None:
        """Listener callback: decode outside the lock, park inside it."""
        if event.value is None:
            return
        source = f"{event.map_name}[{event.key!r}]"
        try:
            record = check_not_future(decode_value(event.value, source=source), self.clock(),
                                      source=source)  # fmt: skip
        except MalformedValueError as exc:
            self.counter.record(event.map_name, event.key, exc)
            return
        self.offer(record)

    def offer(self, record: Record) -> None:
        """Park ``record`` as the newest pending value."""
        with self._lock:
            if self._pending is not None:
                self.superseded += 1
            self._pending = record
            self.received += 1

    def take(self) -> Record | None:
        """Return and clear the pending record (None when nothing new arrived)."""
        with self._lock:
            pending, self._pending = self._pending, None
        return pending
