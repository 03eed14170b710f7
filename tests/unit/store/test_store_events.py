"""Listener worker and the pending-flag slot (§14.2)."""

from __future__ import annotations

import threading
import time

from dolphin.store.events import ListenerDispatcher, PendingSlot
from dolphin.store.ports import EntryEvent, EntryEventKind
from dolphin.store.schema import encode_value


def _event(key: str, value: str | None, kind: EntryEventKind = EntryEventKind.UPDATED):
    return EntryEvent("M", kind, key, value, None)


def _drain(dispatcher: ListenerDispatcher) -> None:
    done = threading.Event()
    reg = dispatcher.register("__drain__", lambda e: done.set())
    dispatcher.publish(EntryEvent("__drain__", EntryEventKind.ADDED, "x", "x", None))
    assert done.wait(5)
    dispatcher.unregister(reg)


def test_dispatcher_delivers_in_order_on_one_worker_thread() -> None:
    d = ListenerDispatcher("t")
    seen: list[tuple[str, int]] = []
    d.register("M", lambda e: seen.append((e.value, threading.get_ident())))
    for i in range(100):
        d.publish(_event("k", str(i)))
    _drain(d)
    d.close()
    assert [v for v, _ in seen] == [str(i) for i in range(100)]
    assert len({t for _, t in seen}) == 1 and seen[0][1] != threading.get_ident()


def test_a_failing_callback_is_counted_and_others_still_run() -> None:
    d = ListenerDispatcher("t")
    got: list[str | None] = []
    d.register("M", lambda e: 1 / 0)
    d.register("M", lambda e: got.append(e.value))
    d.publish(_event("k", "v"))
    _drain(d)
    d.close()
    assert got == ["v"] and d.callback_errors == 1


def test_events_queued_for_a_removed_listener_are_dropped() -> None:
    d = ListenerDispatcher("t")
    gate = threading.Event()
    got: list[str | None] = []
    d.register("M", lambda e: gate.wait(5))
    late = d.register("M", lambda e: got.append(e.value))
    d.publish(_event("k", "v"))
    assert d.unregister(late) is True
    assert d.unregister(late) is False
    gate.set()
    _drain(d)
    d.close()
    assert got == []


def test_key_filters_and_map_names_select_registrations() -> None:
    d = ListenerDispatcher("t")
    a = d.register("M", print, key="a")
    anyk = d.register("M", print)
    d.register("OTHER", print)
    assert set(d.matching("M", "a")) == {a, anyk}
    assert d.matching("M", "b") == [anyk]
    d.close()
    d.close()


def test_pending_slot_keeps_only_the_newest_and_take_clears_it() -> None:
    slot = PendingSlot()
    assert slot.take() is None
    slot.on_event(_event("acb_boost", encode_value({"boost": 1.1}, 1)))
    slot.on_event(_event("acb_boost", encode_value({"boost": 1.2}, 2)))
    taken = slot.take()
    assert taken is not None and taken.data == {"boost": 1.2}
    assert slot.take() is None
    assert slot.superseded == 1 and slot.received == 2


def test_pending_slot_counts_malformed_payloads_and_ignores_removals() -> None:
    slot = PendingSlot()
    slot.on_event(_event("acb_boost", "{garbage"))
    slot.on_event(_event("acb_boost", None, EntryEventKind.REMOVED))
    assert slot.take() is None
    assert slot.counter.total == 1 and slot.counter.by_map() == {"M": 1}


def test_pending_slot_loses_nothing_between_a_fast_writer_and_a_consumer() -> None:
    slot = PendingSlot()
    n = 2000
    taken: list[int] = []

    def writer() -> None:
        for i in range(n):
            slot.on_event(_event("k", encode_value(i, i + 1)))

    t = threading.Thread(target=writer)
    t.start()
    while t.is_alive() or taken[-1:] != [n - 1]:
        record = slot.take()
        if record is not None:
            taken.append(record.data)
        time.sleep(0)
    t.join()
    assert taken == sorted(taken) and taken[-1] == n - 1
    assert slot.received == n and slot.superseded + len(taken) == n
