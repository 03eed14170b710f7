"""The operator's override through the watchdog: the worse posture is published, the
controller is untouched, expiry and unreadable overrides."""

from __future__ import annotations

import pytest

from dolphin.core.clock import SimulatedClock
from dolphin.core.config import SurvivalConfig
from dolphin.core.errors import BadInputError
from dolphin.services.watchdog import (
    OVERRIDE_KEY,
    WatchdogService,
    apply_override,
    clear_override,
    read_override,
    write_override,
)
from dolphin.store.features import posture_cell
from dolphin.store.memory import MemoryStore
from dolphin.store.schema import SAFETY, encode_value
from tests.kit.mesh_record import BASE_NS, SERVICES, Player

S = 10**9


def watchdog():
    store = MemoryStore()
    Player(store).play_until(15)
    clock = SimulatedClock(BASE_NS + 15 * S)
    wd = WatchdogService(store, SurvivalConfig(), clock=clock, startup_grace_s=0.0,
                         services=[s for s in SERVICES if s != "watchdog"])
    wd.start()
    return store, clock, wd


def test_an_override_is_published_as_the_worse_posture_and_named():
    store, clock, wd = watchdog()
    write_override(store, by="ops", reason="FOMC", now_ns=clock.now_ns())
    out = wd.tick()
    cell = posture_cell(store).read().data
    assert out.posture == "APEX"  # the controller's own output is untouched
    assert cell["posture"] == "TURTLE" and cell["controller_posture"] == "APEX"
    assert cell["override"]["by"] == "ops" and cell["override"]["reason"] == "FOMC"
    assert wd.heartbeat()["posture"] == "TURTLE" and wd.heartbeat()["override"] is True
    clear_override(store)
    wd.tick()
    cell = posture_cell(store).read().data
    assert cell["posture"] == "APEX" and cell["override"] is None


def test_an_override_never_improves_the_posture_and_expires():
    payload = {"posture": "HIBERNATE"}
    assert apply_override(payload, {"posture": "TURTLE"})["posture"] == "HIBERNATE"
    body = {"posture": "TURTLE", "by": "ops", "reason": "r", "ts_ns": 1, "until_ns": 10}
    text = encode_value(body, 1)
    assert read_override(text, 5)["posture"] == "TURTLE"
    assert read_override(text, 10) is None
    store, clock, wd = watchdog()
    write_override(store, by="ops", reason="5 s", now_ns=clock.now_ns(),
                   until_ns=clock.now_ns() + 5 * S)
    clock.advance(6 * S)
    Player(store, base_ns=BASE_NS + 6 * S).play_until(15)  # the beats, fresh again
    wd.tick()
    assert posture_cell(store).read().data["posture"] == "APEX"


def test_an_unreadable_override_reads_as_turtle_and_bad_writes_are_refused():
    store, _, wd = watchdog()
    store.map(SAFETY).put(OVERRIDE_KEY, "{broken")
    wd.tick()
    cell = posture_cell(store).read().data
    assert cell["posture"] == "TURTLE" and "unreadable" in cell["override"]["reason"]
    assert read_override(encode_value({"posture": "CALM"}, 1), 2)["posture"] == "TURTLE"
    with pytest.raises(BadInputError, match="posture"):
        write_override(store, by="ops", reason="x", now_ns=1, posture="CALM")
    with pytest.raises(BadInputError, match="until_ns"):
        write_override(store, by="ops", reason="x", now_ns=10, until_ns=5)
