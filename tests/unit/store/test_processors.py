"""Entry processors' rules (``store.processors``) on the embedded store, and the jar builder.

Every expected outcome below is read off the rules in the module docstring, case by case; the
same table runs on a real member in ``tests/integration/store/test_store_processors.py``.
"""

from __future__ import annotations

import math
import threading
import time

import pytest

from dolphin.core.config import AcbConfig
from dolphin.core.errors import ConfigError
from dolphin.risk.acb import verdict_bounds
from dolphin.store.errors import MalformedValueError
from dolphin.store.memory import MemoryStore
from dolphin.store.ports import EntryEventKind
from dolphin.store.processors import (
    AcbApply,
    HeartbeatTouch,
    Outcome,
    PostureSet,
    parse_envelope,
)
from dolphin.store.schema import encode_value


def _posture(posture, seq, rm=0.5):
    data = {"posture": posture} if rm is None else {"posture": posture, "rm": rm}
    return PostureSet(encode_value(data, 100 + seq, seq=seq))


def test_posture_set_applies_only_valid_and_newer_updates() -> None:
    with MemoryStore() as store:
        m = store.map("DOLPHIN_SAFETY")
        first = m.execute("latest", _posture("APEX", 3))
        assert first.applied and first.reason == "" and parse_envelope(first.value).seq == 3
        for stale in (_posture("TURTLE", 3), _posture("TURTLE", 2)):
            out = m.execute("latest", stale)
            assert not out.applied and out.reason.startswith("stale: seq")
            assert out.value == first.value  # the stored value, unchanged
        assert not m.execute("latest", _posture("NOPE", 9)).applied
        assert not m.execute("latest", _posture("APEX", 9, rm=1.5)).applied
        assert not m.execute("latest", _posture("APEX", 9, rm=-0.1)).applied
        assert not m.execute("latest", PostureSet("not json")).applied
        assert m.execute("latest", _posture("HIBERNATE", 4, rm=None)).applied  # Rm is optional
        assert parse_envelope(m.get("latest")).data == {"posture": "HIBERNATE"}


def test_a_corrupt_cell_never_blocks_a_valid_update() -> None:
    with MemoryStore() as store:
        m = store.map("DOLPHIN_SAFETY")
        m.put("latest", "{garbage")
        assert m.execute("latest", _posture("TURTLE", 1)).applied


def test_heartbeat_touch_keeps_the_latest_beat() -> None:
    with MemoryStore() as store:
        m = store.map("DOLPHIN_HEARTBEAT")
        beat = {"component": "obf", "state": "RUNNING"}
        assert m.execute("obf", HeartbeatTouch(encode_value(beat, 10))).applied
        late = m.execute("obf", HeartbeatTouch(encode_value({**beat, "state": "X"}, 9)))
        assert not late.applied and parse_envelope(late.value).ts_ns == 10
        assert not m.execute("obf", HeartbeatTouch(encode_value(beat, 10))).applied  # equal
        assert not m.execute("obf", HeartbeatTouch(encode_value({"state": "RUNNING"}, 11))).applied
        assert m.execute("obf", HeartbeatTouch(encode_value(beat, 11))).applied


def _acb(date, boost, beta, seq):
    return AcbApply(encode_value({"date": date, "boost": boost, "beta": beta}, 1, seq=seq),
                    1.0, 1.8, 0.2, 1.0)


def test_acb_apply_checks_bounds_date_and_sequence() -> None:
    with MemoryStore() as store:
        m = store.map("DOLPHIN_FEATURES")
        assert m.execute("acb_boost", _acb("2024-03-02", 1.5, 0.8, 2)).applied
        cases = {
            "stale: date": _acb("2024-03-01", 1.2, 0.8, 3),
            "stale: seq": _acb("2024-03-02", 1.2, 0.8, 2),
            "invalid: boost": _acb("2024-03-03", 1.9, 0.8, 3),  # above the 1.8 bound
            "invalid: beta": _acb("2024-03-03", 1.2, 0.1, 3),  # below the 0.2 bound
            "invalid: date": _acb("2024-3-3", 1.2, 0.8, 3),
        }
        for reason, proc in cases.items():
            out = m.execute("acb_boost", proc)
            assert not out.applied and out.reason.startswith(reason), (reason, out)
        nan = AcbApply('{"schema":1,"ts_ns":1,"seq":5,"data":{"date":"2024-03-03",'
                       '"boost":NaN,"beta":0.5}}', 1.0, 1.8, 0.2, 1.0)
        assert not m.execute("acb_boost", nan).applied  # not JSON at all: NaN is no literal
        assert m.execute("acb_boost", _acb("2024-03-02", 1.0, 0.2, 3)).applied  # same day, newer


def test_verdict_bounds_cover_every_verdict_the_acb_can_give() -> None:
    cfg = AcbConfig()
    lo_boost, hi_boost, lo_beta, hi_beta = verdict_bounds(cfg)
    assert lo_boost == 1.0
    assert hi_boost == pytest.approx(1.0 + 0.5 * math.log(5.0))  # all four factors bearish
    assert lo_beta == min(cfg.beta_low, cfg.beta_high)
    assert hi_beta == pytest.approx(max(cfg.beta_low, cfg.beta_high) * 1.25)


def test_an_applied_processor_emits_one_event_and_a_refused_one_none() -> None:
    with MemoryStore() as store:
        m = store.map("DOLPHIN_SAFETY")
        seen, done = [], threading.Event()

        def on_event(e):
            seen.append((e.kind, parse_envelope(e.value).seq))
            done.set()

        m.add_listener(on_event, key="latest")
        m.execute("latest", _posture("APEX", 1))
        m.execute("latest", _posture("APEX", 1))  # refused
        m.execute("latest", _posture("TURTLE", 2))
        deadline = time.monotonic() + 5
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        assert seen == [(EntryEventKind.ADDED, 1), (EntryEventKind.UPDATED, 2)]


def test_a_processor_waits_while_another_thread_holds_the_key_lock() -> None:
    with MemoryStore() as store:
        m = store.map("DOLPHIN_SAFETY")
        m.lock("latest")
        out: list[Outcome] = []
        t = threading.Thread(target=lambda: out.append(m.execute("latest", _posture("APEX", 1))))
        t.start()
        t.join(0.2)
        assert t.is_alive() and not out  # blocked by the lock
        m.unlock("latest")
        t.join(5)
        assert out and out[0].applied


def test_an_unreadable_member_answer_is_a_typed_error() -> None:
    with pytest.raises(MalformedValueError):
        Outcome.from_json("nope")
    assert Outcome.from_json('{"applied":false,"reason":"r","value":null}') == Outcome(
        False, "r", None)


def test_the_jar_hash_follows_the_module_and_the_override_must_exist(monkeypatch, tmp_path):
    from dolphin.adapters.hazelcast import processors_jar as pj

    files = pj.module_files()
    names = [rel for rel, _ in files]
    assert "pom.xml" in names and any(n.endswith("PostureSet.java") for n in names)
    assert pj.module_hash(files) == pj.module_hash(list(files))
    changed = [(rel, body + b" ") if rel == "pom.xml" else (rel, body) for rel, body in files]
    assert pj.module_hash(changed) != pj.module_hash(files)
    monkeypatch.setenv(pj.JAR_ENV, str(tmp_path / "absent.jar"))
    with pytest.raises(ConfigError, match="does not name a file"):
        pj.resolve_processors_jar(tmp_path)
    monkeypatch.delenv(pj.JAR_ENV)
    monkeypatch.setattr(pj.shutil, "which", lambda name: None)
    with pytest.raises(ConfigError, match="mvn not found"):
        pj.resolve_processors_jar(tmp_path / "empty-cache")
