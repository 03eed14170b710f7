"""The watchdog service: heartbeats and value ages -> the survival controller -> DOLPHIN_SAFETY,
on the embedded store and a simulated clock. Expected postures and Rm are derived from the
Bible's formulas (§11.2-§11.6) and the controller's documented thresholds, not read back."""

from __future__ import annotations

import math
import threading

import pandas as pd
import pytest

from dolphin.core.clock import SimulatedClock
from dolphin.core.config import SurvivalConfig
from dolphin.core.errors import ConfigError
from dolphin.services.component import ComponentState
from dolphin.services.watchdog import DEFAULT_SERVICES, WatchdogService, watchdog_loop
from dolphin.store.errors import StoreUnavailableError
from dolphin.store.features import posture_cell, set_posture, touch_heartbeat
from dolphin.store.memory import MemoryStore
from dolphin.store.schema import (
    ACB_BOOST,
    ESOF_LATEST,
    EXF_LATEST,
    FEATURES,
    HEARTBEAT,
    LATEST_EIGEN_SCAN,
    MC_STATUS,
    STATE_BLUE,
    decode_value,
    encode_value,
)

D0 = int(pd.Timestamp("2024-03-01 12:00", tz="UTC").value)
S = 10**9
CFG = SurvivalConfig()
#: §11.4 with a 10 s period: alpha = 0.02 * (1/6) = 1/300 < the rate cap 0.05/6, so one step
#: from Rm towards a target of 1 is (1 - Rm) / 300 and Rm_k = 1 - (299/300)^k from 0.
STEP = 1.0 - 0.02 * (10 / 60)


def k_reach(level: float) -> int:
    """Updates after Rm = 0 (target 1) until Rm >= level."""
    return math.ceil(math.log(1.0 - level) / math.log(STEP))


class Mesh:
    """The services' side: beats every second, publishes the feature values, ticks the
    watchdog every 10 s."""

    def __init__(self, store=None, *, start_ns: int = D0, **kw) -> None:
        self.clock = SimulatedClock(start_ns)
        self.store = store if store is not None else MemoryStore()
        self.alive = set(DEFAULT_SERVICES)
        self.states = dict.fromkeys(DEFAULT_SERVICES, "RUNNING")
        self.fresh = {LATEST_EIGEN_SCAN, ACB_BOOST, EXF_LATEST, ESOF_LATEST, MC_STATUS}
        self.drawdown = 0.0
        self.mc = "OK"
        self.beat()
        self.feed()
        kw.setdefault("startup_grace_s", 0.0)
        self.wd = WatchdogService(self.store, CFG, clock=self.clock, **kw)
        self.wd.start()

    def beat(self) -> None:
        now = self.clock.now_ns()
        for name in self.alive:
            beat = {"component": name, "state": self.states[name], "ts_ns": now,
                    "reason": None, "beats": 1}
            if name == "trader":
                beat["ledger_ok"] = True
            touch_heartbeat(self.store, beat, now)

    def feed(self) -> None:
        now = self.clock.now_ns()
        values = {
            LATEST_EIGEN_SCAN: {"timestamp_ns": now, "scan_number": 1},
            ACB_BOOST: {"date": "2024-03-01", "boost": 1.0, "beta": 0.5},
            EXF_LATEST: {"factors": {"dvol_btc": {"value": 50.0, "stale": False}}, "ts_ns": now},
            ESOF_LATEST: {"weekday": 4},
            MC_STATUS: {"status": self.mc},
        }
        features = self.store.map(FEATURES)
        for k, v in values.items():
            if k in self.fresh:
                features.put(k, encode_value(v, now))
        self.store.map(STATE_BLUE).put("latest", encode_value({"drawdown": self.drawdown}, now))

    def run(self, ticks: int = 1, beat_every_s: int = 1):
        """Advance ``ticks`` watchdog periods (beats and values refreshed on the way); return
        the last tick's output."""
        out = None
        for _ in range(ticks):
            for _ in range(10 // beat_every_s):
                self.clock.advance(beat_every_s * S)
                self.beat()
            self.feed()
            out = self.wd.tick()
        return out

    def cell(self):
        return posture_cell(self.store).read()


def test_all_services_beating_is_apex_with_rm_from_the_drawdown_sigmoid():
    m = Mesh()
    out = m.run()
    assert (out.posture, out.rm) == ("APEX", 1.0)  # every sensor nominal: 1*1*min(1,1)*1*1
    m.drawdown = 0.05
    out = m.run()
    # §11.2 Cat5 normalised to 1 at no drawdown: (1 + e^(-30*0.12)) / (1 + e^(30*(0.05-0.12)))
    expect = (1 + math.exp(-3.6)) / (1 + math.exp(-2.1))
    assert out.rm == pytest.approx(expect, abs=1e-12) and expect == pytest.approx(0.91524, 1e-4)
    assert out.posture == "APEX"  # >= 0.90
    cell = m.cell()
    assert cell.data["posture"] == "APEX" and cell.data["rm"] == pytest.approx(expect)
    assert cell.data["sensors"]["drawdown"] == 0.05
    assert cell.data["sensors"]["store_nodes"] == 1.0
    assert cell.data["services"]["down"] == [] and cell.data["services"]["degraded"] == []


def test_a_killed_critical_service_hibernates_within_one_period_of_its_limit_and_recovers():
    m = Mesh()
    m.run(2)  # t = 20 s, APEX
    m.alive.discard("trader")  # its last beat was at t = 20 s
    # t = 30: 10 s old, within critical_max_age_s (15 s: a store failover may stall a beat)
    assert m.run().posture == "APEX"
    assert m.run().posture == "HIBERNATE"  # t = 40: 20 s old > 15 s, <= 15 + 10 after the kill
    cell = m.cell().data
    assert cell["rm"] == 0.0 and cell["services"]["down"] == ["trader"]
    assert cell["categories"]["invariant"] == 0.0 and cell["sensors"]["heartbeat_age_s"] is None
    m.run(3)
    m.alive.add("trader")
    postures = [m.run(beat_every_s=10).posture for _ in range(770)]
    # Rm_k = 1 - (299/300)^k; a better posture needs Rm - 0.02 above its threshold on 5
    # consecutive updates (§11.6): TURTLE >= 0.52, STALKER >= 0.77, APEX >= 0.92
    turtle, stalker, apex = (k_reach(x) + 4 for x in (0.52, 0.77, 0.92))
    assert (turtle, stalker, apex) == (224, 445, 761)
    first = {p: postures.index(p) + 1 for p in ("TURTLE", "STALKER", "APEX")}
    assert first == {"TURTLE": turtle, "STALKER": stalker, "APEX": apex}
    assert postures[turtle - 2] == "HIBERNATE"


def test_a_killed_non_critical_service_degrades_smoothly_not_to_zero():
    m = Mesh()
    m.run()
    m.alive.discard("exf")
    out = m.run()
    # service_health reads the down factor 0.6: Cat2 = 0.6, Rm = 0.6 at once (fast attack),
    # the posture follows after hysteresis_down = 2 updates, into TURTLE (0.5 <= Rm < 0.75)
    assert out.rm == pytest.approx(0.6) and out.posture == "APEX"
    assert out.categories[0] == 1.0
    assert m.run().posture == "TURTLE"
    assert m.cell().data["services"]["down"] == ["exf"]


@pytest.mark.parametrize("case", ["faulted", "stopped", "future", "undecodable", "not_object",
                                  "missing"])
def test_an_unhealthy_heartbeat_is_never_healthy(case):
    m = Mesh()
    m.run()
    m.alive.discard("scan")
    beats = m.store.map(HEARTBEAT)
    now = m.clock.now_ns() + 10 * S
    if case in ("faulted", "stopped"):
        m.alive.add("scan")
        m.states["scan"] = case.upper()
    elif case == "future":
        beats.delete("scan")
        touch_heartbeat(m.store, {"component": "scan", "state": "RUNNING"}, now + S)
    elif case == "undecodable":
        beats.put("scan", "{not json")
    elif case == "not_object":
        beats.put("scan", encode_value([1, 2], now))
    else:
        beats.delete("scan")
    out = m.run()
    assert out.posture == "HIBERNATE" and out.rm == 0.0
    assert m.wd.statuses["scan"].status == "down"


def test_a_degraded_service_costs_the_stalker_band():
    m = Mesh()
    m.run()
    m.states["exf"] = "DEGRADED"
    assert m.run().rm == pytest.approx(0.85)
    assert m.run().posture == "STALKER"
    assert m.cell().data["services"]["degraded"] == ["exf"]


def test_seq_increases_and_a_restarted_watchdog_continues_above_it():
    m = Mesh()
    seqs = []
    for _ in range(3):
        m.run()
        seqs.append(m.cell().seq)
    assert seqs == [1, 2, 3]
    m.wd.stop()
    again = WatchdogService(m.store, CFG, clock=m.clock, startup_grace_s=0.0)
    again.start()
    m.wd = again
    m.run()
    assert m.cell().seq == 4
    set_posture(m.store, {"posture": "TURTLE", "rm": 0.6}, 41, clock=m.clock.now_ns)
    third = WatchdogService(m.store, CFG, clock=m.clock, startup_grace_s=0.0)
    third.start()
    m.wd = third
    m.run()
    assert m.cell().seq == 42 and m.cell().data["posture"] == "APEX"


def test_a_write_refused_as_stale_goes_above_the_stored_seq_at_once():
    m = Mesh()
    m.run()
    set_posture(m.store, {"posture": "TURTLE", "rm": 0.6}, 9, clock=m.clock.now_ns)
    assert m.run() is not None and m.wd.state is ComponentState.RUNNING
    assert m.cell().seq == 10 and m.wd.refused == 1


def test_a_write_refused_twice_degrades_and_the_next_success_recovers(monkeypatch):
    import dolphin.services.watchdog as wdmod

    m = Mesh()
    m.run()
    real = wdmod.set_posture

    def racing(store, data, seq, *, clock):  # another writer always one ahead
        set_posture(store, {"posture": "TURTLE", "rm": 0.6}, seq, clock=clock)
        return real(store, data, seq, clock=clock)

    monkeypatch.setattr(wdmod, "set_posture", racing)
    assert m.run() is None and m.wd.state is ComponentState.DEGRADED and m.wd.refused == 2
    monkeypatch.setattr(wdmod, "set_posture", real)
    assert m.run() is not None and m.wd.state is ComponentState.RUNNING
    assert m.cell().data["posture"] == "APEX"


def test_a_stale_scan_degrades_risk_by_the_decay_profile():
    m = Mesh()
    m.run()
    m.fresh.discard(LATEST_EIGEN_SCAN)  # last scan at t = 10 s
    seen = {}
    for _ in range(30):
        out = m.run()
        age = (m.clock.now_ns() - (D0 + 10 * S)) / S
        seen[age] = out
        expect = 1.0 if age <= 180 else math.exp(-(age - 180) / 300)
        assert out.rm == pytest.approx(expect, abs=1e-12)
    # below APEX first at age 220 (e^(-40/300) = 0.875); the posture follows one update later
    assert seen[210].posture == "APEX" and seen[220].posture == "APEX"
    assert seen[230].posture == "STALKER"  # e^(-50/300) = 0.846
    assert m.cell().data["drivers"]["structural"] == "scan_age_s"


def test_missing_mc_status_reads_red_and_an_orange_one_halves_cat2():
    m = Mesh()
    m.mc = "ORANGE"
    assert m.run().rm == pytest.approx(0.5)  # §11.2 base ORANGE 0.5 x fresh decay 1
    m.fresh.discard(MC_STATUS)
    m.store.map(FEATURES).delete(MC_STATUS)
    assert m.run().rm == 0.0  # unknown status: RED base 0.1 x infinitely stale age -> 0


def test_startup_grace_waits_for_every_service_and_publishes_nothing_meanwhile():
    m = Mesh(startup_grace_s=60.0)
    m.alive.discard("trader")
    m.store.map(HEARTBEAT).delete("trader")
    for _ in range(3):
        assert m.run() is None
    assert m.cell() is None and m.wd.pending == ("trader",)
    beat = decode_value(m.store.map(HEARTBEAT).get("watchdog")).data
    assert beat["pending"] == ["trader"] and beat["state"] == "RUNNING"
    m.alive.add("trader")
    assert m.run().posture == "APEX" and m.cell().seq == 1


def test_after_the_grace_a_never_seen_service_is_down():
    m = Mesh(startup_grace_s=30.0)
    m.alive.discard("trader")
    m.store.map(HEARTBEAT).delete("trader")
    assert [m.run() for _ in range(2)] == [None, None]
    out = m.run()  # t = 30 s: the grace is over
    assert out.posture == "HIBERNATE" and m.cell().data["services"]["down"] == ["trader"]


class FlakyStore:
    """The embedded store, failing every call while ``down``."""

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.down = False

    def map(self, name):
        if self.down:
            raise StoreUnavailableError("store down (test)")
        return self.inner.map(name)

    def cluster_view(self):
        if self.down:
            raise StoreUnavailableError("store down (test)")
        return self.inner.cluster_view()


def test_a_failing_store_degrades_the_watchdog_and_the_next_success_recovers_it():
    store = FlakyStore()
    m = Mesh(store)
    m.run()
    store.down = True
    assert m.wd.tick() is None and m.wd.state is ComponentState.DEGRADED
    store.down = False
    assert m.run() is not None and m.wd.state is ComponentState.RUNNING
    beat = decode_value(store.inner.map(HEARTBEAT).get("watchdog")).data
    assert beat["state"] == "RUNNING" and beat["posture"] == "APEX" and beat["seq"] == 2


def test_the_loop_ticks_every_period_on_the_simulated_clock_until_stopped():
    m = Mesh()
    stop = threading.Event()

    def beater():
        m.beat()
        m.feed()
        if m.clock.now_ns() >= D0 + 95 * S:
            stop.set()
        else:
            m.clock.call_at(m.clock.now_ns() + S, beater)

    m.clock.call_at(D0 + S, beater)
    ticks = watchdog_loop(m.wd, stop)
    assert ticks == 10 and m.wd.published == 10  # at 0, 10, ..., 90 s; stopped at 95 s
    assert m.cell().seq == 10 and m.cell().data["posture"] == "APEX"
    assert watchdog_loop(m.wd, threading.Event(), 5.0, max_ticks=3) == 3
    m.wd.stop()
    assert watchdog_loop(m.wd, threading.Event()) == 0


def test_configuration_is_checked():
    store, clock = MemoryStore(), SimulatedClock(D0)
    with pytest.raises(ConfigError, match="the Cat1 threshold"):
        WatchdogService(store, CFG, clock=clock, heartbeat_max_age_s=31.0,
                        critical_max_age_s=31.0)
    with pytest.raises(ConfigError, match="critical_max_age_s"):
        WatchdogService(store, CFG, clock=clock, heartbeat_max_age_s=10.0,
                        critical_max_age_s=8.0)
    with pytest.raises(ConfigError, match="not among"):
        WatchdogService(store, CFG, clock=clock, services=("acb",), critical=("trader",))
    with pytest.raises(ConfigError, match="itself"):
        WatchdogService(store, CFG, clock=clock, services=("watchdog",), critical=())
    with pytest.raises(ConfigError, match="down_health"):
        WatchdogService(store, CFG, clock=clock, down_health=0.9, degraded_health=0.8)


def test_only_the_producers_watched_have_sensors():
    wd = WatchdogService(MemoryStore(), CFG, clock=SimulatedClock(D0), services=("scan",),
                         critical=("scan",))
    assert set(wd.registry.names()) == {"heartbeat_age_s", "store_nodes", "scan_age_s",
                                        "service_health"}


def test_an_ob_provider_adds_cat3_and_an_empty_feed_is_not_healthy():
    from dolphin.services.ob_provider import ObProvider

    clock = SimulatedClock(D0)
    store = MemoryStore()
    provider = ObProvider(store, clock=clock, bar_s=5.0)
    m = Mesh(store, ob=provider)
    assert provider.connected
    out = m.run()
    # nothing received: ob_age_s +inf -> the stale floor 0.5; depth/fill NaN -> their floor 0.3
    assert out.categories[2] == pytest.approx(0.3) and out.rm == pytest.approx(0.3)
    assert m.cell().data["sensors"]["ob_age_s"] is None
    assert Mesh().run().categories[2] == 1.0  # no provider: no Cat3 to monitor


def test_the_grace_also_waits_for_each_producers_first_value():
    # every service beats but the scan service has published no scan yet (it waits for the
    # trader): nothing is published, the trader keeps reading a missing cell (TURTLE)
    m = Mesh(startup_grace_s=120.0)
    m.fresh.discard(LATEST_EIGEN_SCAN)
    m.store.map(FEATURES).delete(LATEST_EIGEN_SCAN)
    assert m.run() is None and m.cell() is None
    assert LATEST_EIGEN_SCAN in m.wd.pending
    m.fresh.add(LATEST_EIGEN_SCAN)
    out = m.run()
    assert out is not None and (out.posture, out.rm) == ("APEX", 1.0)


def test_a_failed_prefect_flow_is_degraded_health_not_down():
    m = Mesh()
    assert m.run().posture == "APEX"
    now = m.clock.now_ns()
    touch_heartbeat(m.store, {"component": "prefect:dolphin-mc-forewarner", "state": "FAULTED",
                              "ts_ns": now, "reason": "Flow run failed: boom", "beats": 1}, now)
    out = m.run()
    # service_health: one degraded input -> 0.85 (the STALKER band); the rest nominal -> Rm 0.85
    assert out.rm == pytest.approx(0.85)
    cell = m.cell().data
    assert cell["services"]["degraded"] == ["prefect:dolphin-mc-forewarner"]
    assert cell["services"]["reasons"]["prefect:dolphin-mc-forewarner"] == "Flow run failed: boom"
    assert cell["services"]["down"] == []
    out = m.run()  # hysteresis_down = 2 updates below the APEX band
    assert out.posture == "STALKER"
