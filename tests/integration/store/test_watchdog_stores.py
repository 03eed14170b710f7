"""The watchdog on both stores (embedded and a real Hazelcast member): a killed service shows in
DOLPHIN_SAFETY within one period of the heartbeat's maximum age, as another client reads it,
and the posture comes back by the controller's recovery and hysteresis rules when the beats
resume; a restarted watchdog writes above the stored sequence."""

from __future__ import annotations

import math

import pandas as pd

from dolphin.core.clock import SimulatedClock
from dolphin.core.config import SurvivalConfig
from dolphin.services.watchdog import DEFAULT_SERVICES, WatchdogService
from dolphin.store.features import posture_cell, touch_heartbeat
from dolphin.store.schema import (
    ACB_BOOST,
    ESOF_LATEST,
    EXF_LATEST,
    FEATURES,
    LATEST_EIGEN_SCAN,
    MC_STATUS,
    STATE_BLUE,
    encode_value,
)
from tests.kit.procs import wait_for

T0 = int(pd.Timestamp("2025-03-15 09:00", tz="UTC").value)
S = 10**9


class World:
    """The other services: beats and feature values, written just before each tick."""

    def __init__(self, store, clock) -> None:
        self.store, self.clock = store, clock
        self.alive = set(DEFAULT_SERVICES)

    def publish(self) -> None:
        now = self.clock.now_ns()
        for name in self.alive:
            touch_heartbeat(self.store, {"component": name, "state": "RUNNING", "ts_ns": now,
                                         "ledger_ok": True}, now)
        self.store.map(FEATURES).put_all({
            LATEST_EIGEN_SCAN: encode_value({"scan_number": 1}, now),
            ACB_BOOST: encode_value({"date": "2025-03-15", "boost": 1.0, "beta": 0.5}, now),
            EXF_LATEST: encode_value({"factors": {"dvol_btc": {"value": 55.0, "stale": False}}},
                                     now),
            ESOF_LATEST: encode_value({"weekday": 5}, now),
            MC_STATUS: encode_value({"status": "OK"}, now),
        })
        self.store.map(STATE_BLUE).put("latest", encode_value({"drawdown": 0.0}, now))


def seen_seq(cell, seq: int) -> dict:
    """The cell's payload once another client sees sequence ``seq`` (a near cache is
    invalidated asynchronously)."""
    assert wait_for(lambda: (snap := cell.read()) is not None and snap.seq == seq), cell.read()
    return cell.read().data


def test_a_killed_service_shows_in_the_posture_and_recovers(store, second_handle):
    clock = SimulatedClock(T0)
    world = World(store, clock)
    wd = WatchdogService(store, SurvivalConfig(), clock=clock)
    world.publish()
    wd.start()

    def period():
        clock.advance(10 * S)
        world.publish()
        return wd.tick()

    assert period().posture == "APEX"
    cell = posture_cell(second_handle)
    assert seen_seq(cell, 1)["posture"] == "APEX"
    world.alive.discard("scan")
    # a critical beat is lost past critical_max_age_s (15 s): 10 s old on the next tick, 20 s
    # on the one after
    assert period().posture == "APEX"
    assert period().posture == "HIBERNATE"
    seen = seen_seq(cell, 3)
    assert seen["posture"] == "HIBERNATE" and seen["rm"] == 0.0
    assert seen["services"]["down"] == ["scan"]
    world.alive.add("scan")
    # Rm_k = 1 - (1 - 0.02 * 10/60)^k from 0 (§11.4); TURTLE needs Rm - 0.02 >= 0.50 on 5
    # consecutive updates (§11.6): k = ceil(ln 0.48 / ln(299/300)) = 220, so the 224th update
    k = math.ceil(math.log(0.48) / math.log(1 - 0.02 / 6)) + 4
    postures = [period().posture for _ in range(k)]
    assert postures[:-1] == ["HIBERNATE"] * (k - 1) and postures[-1] == "TURTLE"
    assert seen_seq(cell, 3 + k)["posture"] == "TURTLE"
    wd.stop()

    again = WatchdogService(store, SurvivalConfig(), clock=clock)
    again.start()
    clock.advance(10 * S)
    world.publish()
    assert again.tick() is not None
    assert seen_seq(cell, 4 + k)["watchdog"] == "watchdog"  # continues above the stored seq
    again.stop()


def test_a_killed_non_critical_service_degrades_without_zeroing_risk(store, second_handle):
    clock = SimulatedClock(T0)
    world = World(store, clock)
    wd = WatchdogService(store, SurvivalConfig(), clock=clock)
    world.publish()
    wd.start()
    for name in (None, "obf", None):
        if name:
            world.alive.discard(name)
        clock.advance(10 * S)
        world.publish()
        wd.tick()
    seen = seen_seq(posture_cell(second_handle), 3)
    assert seen["posture"] == "TURTLE" and math.isclose(seen["rm"], 0.6)
    assert seen["categories"]["invariant"] == 1.0 and seen["services"]["down"] == ["obf"]
    wd.stop()
