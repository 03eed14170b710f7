"""The recorded mesh minute (``tests/kit/mesh_record``) has the shapes the real writers give:
the watchdog's payload and beat, the ledger view's state and day, the component beat."""

from __future__ import annotations

from dolphin.core.clock import SimulatedClock
from dolphin.core.config import SurvivalConfig
from dolphin.ledger.views import LedgerView
from dolphin.services.component import Component
from dolphin.services.watchdog import WatchdogService
from dolphin.store.features import posture_cell
from dolphin.store.memory import MemoryStore
from dolphin.store.schema import HEARTBEAT, decode_value
from tests.kit.mesh_record import (
    BASE_NS,
    DATE,
    SERVICES,
    Player,
    _beat,
    day_value,
    posture_payload,
    state_value,
)

S = 10**9


def real_watchdog_payload() -> tuple[dict, dict]:
    store = MemoryStore()
    Player(store).play_until(15)
    clock = SimulatedClock(BASE_NS + 15 * S)
    wd = WatchdogService(store, SurvivalConfig(), clock=clock, startup_grace_s=0.0,
                         services=[s for s in SERVICES if s != "watchdog"])
    wd.start()
    wd.tick()
    return posture_cell(store).read().data, wd.heartbeat()


def test_the_recorded_posture_and_watchdog_beat_have_the_real_keys():
    real, beat = real_watchdog_payload()
    fake = posture_payload(10, "APEX", 0.97)
    assert set(fake) == set(real)
    assert set(fake["categories"]) == set(real["categories"])
    assert set(fake["services"]) == set(real["services"])
    assert set(fake["sensors"]) == set(real["sensors"])
    assert set(_beat("watchdog", 10, 1)) == set(beat)
    assert real["posture"] == "APEX"  # the recording's services read healthy to the real one


def test_the_recorded_state_day_and_beats_have_the_real_keys():
    view = LedgerView()
    assert set(state_value(0)) == set(view.state())
    assert set(day_value()) == set(view.day(DATE))
    base = set(Component("x", clock=SimulatedClock(0)).heartbeat())
    for name in SERVICES:
        assert base <= set(_beat(name, 5, 1)), name


def test_the_player_writes_in_order_on_its_base_and_a_shifted_base_moves_every_time():
    store = MemoryStore()
    p = Player(store, base_ns=BASE_NS + 3600 * S)
    assert p.play_until(10) > 0
    rec = decode_value(store.map(HEARTBEAT).get("scan"))
    assert rec.ts_ns == BASE_NS + 3610 * S and rec.data["ts_ns"] == rec.ts_ns
    assert rec.data["last_scan_ts_ns"] == rec.ts_ns
    assert p.play_until(10) == 0 and p.now_ns() == BASE_NS + 3610 * S
    cell = posture_cell(store).read()
    assert cell.seq == 2 and cell.data["ts_ns"] == BASE_NS + 3610 * S
