"""The entry processors give the same answers on both stores: the embedded store's Python rules
and the Java classes a real member runs (``store.processors``); the ACB processor, the posture
cell and heartbeats write through them."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from dolphin.core.clock import SimulatedClock
from dolphin.core.config import AcbConfig
from dolphin.store.features import set_posture, touch_heartbeat
from dolphin.store.processors import AcbApply, HeartbeatTouch, PostureSet, parse_envelope
from dolphin.store.schema import ACB_BOOST, FEATURES, HEARTBEAT, SAFETY, encode_value
from tests.integration.store.hzkit import wait_for


def _seen(handle, map_name, key, expected) -> bool:
    """Whether ``handle`` reads ``expected`` soon: a near-cached reader of a value another
    client wrote sees it once the member's invalidation arrives (milliseconds, not at once)."""
    return wait_for(lambda: handle.map(map_name).get(key) == expected, 5.0, 0.01)


def _record(handle, map_name, key, seq):
    """The envelope ``handle`` reads once it shows sequence ``seq`` (see ``_seen``)."""
    assert wait_for(lambda: (parse_envelope(handle.map(map_name).get(key)) or
                             parse_envelope('{}')) is not None and
                    parse_envelope(handle.map(map_name).get(key)).seq == seq, 5.0, 0.01)
    return parse_envelope(handle.map(map_name).get(key))


def _posture(posture, seq, rm=0.5):
    return PostureSet(encode_value({"posture": posture, "rm": rm}, 100 + seq, seq=seq))


def _acb(date, boost, beta, seq):
    return AcbApply(encode_value({"date": date, "boost": boost, "beta": beta}, 1, seq=seq),
                    1.0, 1.8, 0.2, 1.0)


# (processor, applied, reason prefix), run in this order on one key; by hand from the rules.
POSTURE_STEPS = [
    (_posture("APEX", 3), True, ""),
    (_posture("TURTLE", 3), False, "stale: seq 3 <= stored 3"),
    (_posture("TURTLE", 1), False, "stale: seq 1 <= stored 3"),
    (_posture("NOPE", 9), False, "invalid: posture"),
    (_posture("APEX", 9, rm=1.5), False, "invalid: rm"),
    (PostureSet("not json"), False, "malformed"),
    (_posture("STALKER", 4), True, ""),
]
ACB_STEPS = [
    (_acb("2024-03-02", 1.5, 0.8, 2), True, ""),
    (_acb("2024-03-01", 1.2, 0.8, 3), False, "stale: date 2024-03-01 before stored 2024-03-02"),
    (_acb("2024-03-02", 1.2, 0.8, 2), False, "stale: seq 2 <= stored 2"),
    (_acb("2024-03-03", 1.9, 0.8, 3), False, "invalid: boost"),
    (_acb("2024-03-03", 1.2, 0.1, 3), False, "invalid: beta"),
    (_acb("2024-3-3", 1.2, 0.8, 3), False, "invalid: date"),
    (_acb("2024-03-03", 1.1, 0.2, 3), True, ""),
]
BEAT = {"component": "obf", "state": "RUNNING"}
HEARTBEAT_STEPS = [
    (HeartbeatTouch(encode_value(BEAT, 10)), True, ""),
    (HeartbeatTouch(encode_value(BEAT, 9)), False, "stale: ts_ns 9 <= stored 10"),
    (HeartbeatTouch(encode_value({"state": "RUNNING"}, 11)), False, "invalid: no component"),
    (HeartbeatTouch(encode_value(BEAT, 11)), True, ""),
]


@pytest.mark.parametrize(("map_name", "key", "steps"), [
    (SAFETY, "latest", POSTURE_STEPS), (FEATURES, ACB_BOOST, ACB_STEPS),
    (HEARTBEAT, "obf", HEARTBEAT_STEPS)], ids=["posture", "acb", "heartbeat"])
def test_each_step_gets_the_same_answer_on_both_stores(store, second_handle, map_name, key,
                                                       steps):
    m = store.map(map_name)
    stored = None
    for proc, applied, reason in steps:
        out = m.execute(key, proc)
        assert (out.applied, out.reason[: len(reason)]) == (applied, reason), (proc, out)
        if applied:
            stored = proc.value
        assert out.value == stored, (proc, out)  # the value held after the call, exactly
        assert _seen(second_handle, map_name, key, stored)


def test_a_corrupt_cell_heals_on_both_stores(store):
    store.map(SAFETY).put("latest", "{garbage")
    assert store.map(SAFETY).execute("latest", _posture("TURTLE", 1)).applied


def test_posture_and_heartbeat_helpers(store, second_handle):
    out = set_posture(store, {"posture": "TURTLE", "rm": 0.42}, 7, clock=lambda: 1234)
    assert out.applied
    rec = _record(second_handle, SAFETY, "latest", 7)
    assert (rec.seq, rec.ts_ns, rec.data) == (7, 1234, {"posture": "TURTLE", "rm": 0.42})
    assert not set_posture(store, {"posture": "APEX", "rm": 1.0}, 7).applied
    assert touch_heartbeat(store, {"component": "scan", "state": "RUNNING"}, 50).applied
    assert not touch_heartbeat(store, {"component": "scan", "state": "DEGRADED"}, 49).applied
    assert parse_envelope(store.map(HEARTBEAT).get("scan")).data["state"] == "RUNNING"


def test_the_acb_processor_writes_sequenced_verdicts_and_counts_a_refusal(store, second_handle):
    from dolphin.services.acb_processor import AcbProcessor

    t0 = int(pd.Timestamp("2024-03-01 00:01", tz="UTC").value)
    clock = SimulatedClock(t0)
    acb = AcbProcessor(store, AcbConfig(), clock=clock)
    acb.start()
    assert acb.tick() is not None
    first = _record(second_handle, FEATURES, ACB_BOOST, 1)
    assert first.seq == 1 and first.data["date"] == "2024-03-01" and first.data["boost"] == 1.0
    clock.set(t0 + 86_400 * 10**9)
    assert acb.tick() is not None
    assert _record(second_handle, FEATURES, ACB_BOOST, 2).data["date"] == "2024-03-02"
    # A verdict for a later day lands above it (written on the lock holder's thread: the
    # processor holds the key lock, so any other client's write would wait for it). The
    # processor's next verdict is refused: an earlier date and a lower sequence.
    later = encode_value({"date": "2024-03-09", "boost": 1.0, "beta": 0.2}, t0, seq=2)
    assert store.map(FEATURES).execute(ACB_BOOST, AcbApply(later)).applied is False  # seq 2
    store.map(FEATURES).put(ACB_BOOST, encode_value(
        {"date": "2024-03-09", "boost": 1.0, "beta": 0.2}, t0, seq=5))
    clock.set(t0 + 2 * 86_400 * 10**9)
    assert acb.tick() is None and acb.refused == 1
    assert acb.state.name == "DEGRADED" and "refused by the store" in acb.reason
    assert _record(second_handle, FEATURES, ACB_BOOST, 5).data["date"] == "2024-03-09"
    acb.stop()
    assert math.isfinite(first.data["beta"])
