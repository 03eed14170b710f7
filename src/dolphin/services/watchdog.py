"""``WatchdogService``: heartbeats, value ages, MC, OB, DVOL and drawdown -> the survival
controller -> ``DOLPHIN_SAFETY["latest"]`` (Bible §16.3, §11; seeds 000/001 "Watchdog" flow).

Every ``period_s`` (10 s, seed 000 §IV) ``tick()`` reads the store, turns what it finds into
sensor readings, steps one ``risk.survival.SurvivalController`` and writes posture, Rm, every
reading and the services that are down, degraded or pending through ``set_posture`` (the
``PostureSet`` entry processor: applied only with a sequence above the stored one).

Services (``DOLPHIN_HEARTBEAT[name]``, written by each service's ``Component.heartbeat()``).
A service is *down* when its beat is missing, older than ``heartbeat_max_age_s``, stamped after
the watchdog's clock (future-dated: it cannot have been written yet), undecodable, or carries a
state of STOPPING, STOPPED, FAULTED or a state that is not a ``ComponentState`` name; it is
*degraded* when its state is DEGRADED, INITIALIZED or STARTING (alive, not yet or not fully
serving). The map is read before the clock, so a beat written by this host is never "future".

Which loss is an invariant break (DESIGN.md "Failure behaviour": only invariant breaks force
zero risk; stale or missing sensors degrade smoothly):

- *Critical* services (default ``scan`` and ``trader``, the hot path: the signal source and the
  executor that holds the ledger and the positions). A critical service down is a lost
  heartbeat: the Cat1 reading ``heartbeat_age_s`` is +inf, Rm is 0 and the posture HIBERNATE on
  the same update (§11.2 Cat1, seed 000 §VI "no damping"). While all are up it is the oldest
  critical beat's age. Since a loss takes risk to zero at once and the recovery takes hours, a
  critical beat is lost only past ``critical_max_age_s`` (15 s: longer than a store client's
  failover stall when a Hazelcast member dies), which must not exceed the Cat1 threshold
  ``SurvivalConfig.heartbeat_max_age_s`` (Bible: 30 s).
- The others (acb, obf, exf, esof, mc) feed inputs that the trader keeps using while they are
  stale (the day's boost, the OB features, the factors, the MC envelope): their loss degrades
  smoothly. The STRUCTURAL factor ``service_health`` (Cat2, §11.2 "data staleness": a dead
  producer is data about to go stale) reads the worst of them: 1 while every service is up,
  ``degraded_health`` (0.85, STALKER band) when one is degraded, ``down_health`` (0.6, TURTLE
  band: no new entries, positions kept) when one is down. A degraded critical service counts
  here too. The producers' own value ages then decay the category further as they age.

The default ``heartbeat_max_age_s`` is 5 s: five of the services' 1 s beats, enough for a
scheduling or GC stall, short enough that a killed service shows in Rm on the first tick after
it (so within ``heartbeat_max_age_s + period_s`` of the kill; a non-critical one reaches the
posture after the controller's ``hysteresis_down`` ticks).

Start-up grace: a service this watchdog has not yet seen up is *pending* for ``startup_grace_s``
(120 s) after start (the mesh starts the watchdog before mc and the trader, §16.7). While any
service is pending the controller is not stepped and nothing is published: the posture cell
stays missing or ages, and the trader reads that as TURTLE, never APEX. A watched producer's
value is pending the same way until it has been seen once (the scan service publishes only once
the trader takes scans). Starting the controller on a half-started mesh would instead begin at
Rm 0 and take the §11.4 recovery (hours) to reach APEX. After the grace a pending service is
down and a missing value is maximally stale.

Readings (a sensor is registered only when its producer is among the watched services: no
producer, nothing to monitor, as ``ob_provider.survival_registry`` does for Cat3; missing,
unreadable and future-dated values read +inf or NaN, never healthy):

- Cat1: ``heartbeat_age_s`` (above), ``store_nodes`` = ``store.cluster_view().member_count``
  (0 when not connected), ``ledger_ok`` = 1 only when the trader's beat is up and carries
  ``ledger_ok: true`` (its ledger chain verified).
- Cat2 (product): ``mc_status`` (``mc_status`` payload ``"OK"`` or ``{"status": "OK"}``),
  ``mc_age_h``, ``exf_age_h``, ``scan_age_s``, ``acb_age_h``, ``esof_age_s`` (each the age of
  that value's envelope ``ts_ns``: when its service last published) and ``service_health``.
  ``exf_age_h`` is the age of ``exf_latest`` itself, not ``exf_service.exf_age_h`` (the age of
  the oldest factor's availability, up to a day for the daily DVOL candle by construction); a
  stale factor shows as the ExF service's DEGRADED state.
- Cat3: ``ObProvider.sensor_readings`` when an ``ObProvider`` is given (connected on start,
  refreshed every tick); without one, no Cat3.
- Cat4: ``dvol`` = ``exf_latest``'s ``dvol_btc`` value (NaN when stale: a shock).
- Cat5: ``drawdown`` = ``DOLPHIN_STATE_BLUE["latest"]["drawdown"]`` (``LedgerView.state``).

Sequence: ``on_start`` reads the posture cell's ``seq`` and every write goes one above the last,
so a restarted watchdog continues above its predecessor. A write the store refuses as stale (the
start's read came from a near cache that had not yet seen the last write, or another writer)
is retried once above the sequence the store answered with; a second refusal degrades. A store
that fails (``StoreUnavailableError``) degrades the service on the first failure
(``max_retries=1``); the next successful tick recovers it. The watchdog's own beat goes to
``DOLPHIN_HEARTBEAT[name]`` every tick.

Manual override (the operator's pause, ``dolphin tui``): ``DOLPHIN_SAFETY["override"]`` =
``{posture, by, reason, ts_ns, until_ns?}`` (``write_override`` / ``clear_override``) is read
every tick; the published posture is the worse of the controller's and the override's, and the
payload names the override (``override``) and the controller's own posture
(``controller_posture``). The controller itself never sees it: its Rm, streaks and hysteresis go
on as if there were none, so lifting the pause returns at once to what the sensors say. An
override past its ``until_ns`` is ignored; an unreadable one reads as TURTLE (deny when
unknown). The trader reads the published posture, so a pause lands in its ledger as a POSTURE
row like any other posture change.

Alerts: with an ``alert`` callable (e.g. ``dolphin.ui.alerts.AlertHook``), every published
payload is compared with the previous one (``alerts_between``): a posture drop, an invariant
break (Cat1 reaching 0) and a service newly down or degraded each make one alert dict. The
callable must not block (the hook sends from its own thread); an exception from it is logged
and never fails the tick.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dolphin.core.clock import Clock, LiveClock
from dolphin.core.config import SurvivalConfig
from dolphin.core.enums import Posture
from dolphin.core.errors import BadInputError, ConfigError
from dolphin.risk.sensors import (
    MC_STATUS_CODE,
    AnySensor,
    Category,
    Sensor,
    capital_sensors,
    decay_profile,
    environmental_sensors,
    invariant_sensors,
    structural_sensors,
)
from dolphin.risk.survival import SensorRegistry, SurvivalController, SurvivalReading
from dolphin.services.component import Component, ComponentState
from dolphin.services.ob_provider import ObProvider, microstructure_sensors_for
from dolphin.store.errors import MalformedValueError
from dolphin.store.features import posture_cell, set_posture, touch_heartbeat
from dolphin.store.ports import Store
from dolphin.store.processors import parse_envelope
from dolphin.store.schema import (
    ACB_BOOST,
    ESOF_LATEST,
    EXF_LATEST,
    FEATURES,
    HEARTBEAT,
    LATEST_EIGEN_SCAN,
    MC_STATUS,
    POSTURE_KEY,
    SAFETY,
    STATE_BLUE,
    Record,
    decode_value,
    encode_value,
)

_log = logging.getLogger(__name__)

_NS = 1_000_000_000
_INF, _NAN = math.inf, math.nan

#: The services the mesh runs besides the store and the watchdog (contract, Bible §16.7).
#: Heartbeat keys of the Prefect flows (``flows.hooks``).
FLOW_PREFIX = "prefect:"
#: The value each producer publishes: the grace also waits for its first value.
PRODUCED = {"scan": LATEST_EIGEN_SCAN, "acb": ACB_BOOST, "exf": EXF_LATEST, "esof": ESOF_LATEST,
            "mc": MC_STATUS}
DEFAULT_SERVICES = ("acb", "obf", "exf", "esof", "scan", "trader", "mc")
#: Services whose lost heartbeat is an invariant break (Cat1): the signal source and the trader.
DEFAULT_CRITICAL = frozenset({"scan", "trader"})
#: The service whose beat carries ``ledger_ok`` and whose state map holds the drawdown.
TRADER = "trader"
STATE_KEY = "latest"
DVOL_FACTOR = "dvol_btc"

#: ``DOLPHIN_SAFETY`` key of the operator's manual posture override (module docstring).
OVERRIDE_KEY = "override"

DEFAULT_PERIOD_S = 10.0
DEFAULT_HEARTBEAT_MAX_AGE_S = 5.0
#: A critical service's beat may be older before it is lost (Cat1, no damping): longer than
#: a store client's failover (a Hazelcast member's loss stalls calls for up to ~10 s).
DEFAULT_CRITICAL_MAX_AGE_S = 15.0
DEFAULT_STARTUP_GRACE_S = 120.0

UP, DEGRADED, DOWN = "up", "degraded", "down"
#: Heartbeat states -> classification; any other state string is down (unreadable).
_STATE_CLASS = {
    ComponentState.RUNNING.name: UP,
    ComponentState.DEGRADED.name: DEGRADED,
    ComponentState.INITIALIZED.name: DEGRADED,
    ComponentState.STARTING.name: DEGRADED,
    ComponentState.STOPPING.name: DOWN,
    ComponentState.STOPPED.name: DOWN,
    ComponentState.FAULTED.name: DOWN,
}
#: ``service_health`` readings: the worst non-critical (or degraded critical) service.
_HEALTH_CODE = {UP: 1.0, DEGRADED: 0.5, DOWN: 0.0}


@dataclass(frozen=True, slots=True)
class FeedLimits:
    """Deadbands and time constants of the value-age sensors this module adds to Cat2.

    The scan is published every bar (5 s or 1 m); the ACB verdict once per UTC day (and on
    factor changes), so a day and some slack is nominal; EsoF every minute, and it only
    informs sizing (the meta-brake is off in the champion), hence its floor.
    """

    scan_deadband_s: float = 180.0
    scan_tau_s: float = 300.0
    acb_deadband_h: float = 26.0
    acb_tau_h: float = 3.0
    esof_deadband_s: float = 600.0
    esof_tau_s: float = 3600.0
    esof_floor: float = 0.5

    def __post_init__(self) -> None:
        for name in ("scan_tau_s", "acb_tau_h", "esof_tau_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"watchdog: {name} must be > 0, got {getattr(self, name)!r}")
        for name in ("scan_deadband_s", "acb_deadband_h", "esof_deadband_s"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"watchdog: {name} must be >= 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.esof_floor <= 1.0:
            raise ConfigError(f"watchdog: esof_floor must be in [0, 1], got {self.esof_floor!r}")


def service_health_profile(degraded_health: float, down_health: float
                           ) -> Callable[[float], float]:
    """Return ``code -> health`` for ``service_health``: 1 -> 1, 0.5 -> ``degraded_health``,
    anything else (0, NaN) -> ``down_health``."""

    def profile(code: float) -> float:
        if code == 1.0:
            return 1.0
        if code == 0.5:
            return degraded_health
        return down_health

    return profile


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """One service as judged by a tick: ``up``, ``degraded`` or ``down``, its beat's age and why."""

    name: str
    status: str
    age_s: float
    reason: str
    beat: Mapping[str, Any] | None = None


class WatchdogService(Component):
    """Compute the survival posture from the store and publish it (module docstring)."""

    def __init__(
        self,
        store: Store,
        cfg: SurvivalConfig | None = None,
        *,
        clock: Clock,
        services: Iterable[str] = DEFAULT_SERVICES,
        critical: Iterable[str] = DEFAULT_CRITICAL,
        period_s: float = DEFAULT_PERIOD_S,
        heartbeat_max_age_s: float = DEFAULT_HEARTBEAT_MAX_AGE_S,
        critical_max_age_s: float = DEFAULT_CRITICAL_MAX_AGE_S,
        startup_grace_s: float = DEFAULT_STARTUP_GRACE_S,
        degraded_health: float = 0.85,
        down_health: float = 0.6,
        limits: FeedLimits | None = None,
        ob: ObProvider | None = None,
        extra_sensors: Iterable[AnySensor] = (),
        extra_readings: Callable[[int], Mapping[str, float]] | None = None,
        name: str = "watchdog",
        max_retries: int = 1,
        alert: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        super().__init__(name, clock=clock, max_retries=max_retries)
        self.cfg = cfg or SurvivalConfig()
        self.services = tuple(dict.fromkeys(services))
        self.critical = frozenset(critical)
        unknown = sorted(self.critical - set(self.services))
        if unknown:
            raise ConfigError(f"watchdog: critical services {unknown} are not among the "
                              f"watched services {list(self.services)}")
        if name in self.services:
            raise ConfigError(f"watchdog: {name!r} cannot watch itself")
        for what, v in (("period_s", period_s), ("heartbeat_max_age_s", heartbeat_max_age_s)):
            if not (math.isfinite(v) and v > 0):
                raise ConfigError(f"watchdog: {what} must be finite and > 0, got {v!r}")
        if not (math.isfinite(startup_grace_s) and startup_grace_s >= 0):
            raise ConfigError(f"watchdog: startup_grace_s must be finite and >= 0, "
                              f"got {startup_grace_s!r}")
        if not heartbeat_max_age_s <= critical_max_age_s <= self.cfg.heartbeat_max_age_s:
            raise ConfigError(
                f"watchdog: need heartbeat_max_age_s ({heartbeat_max_age_s:g}) <= "
                f"critical_max_age_s ({critical_max_age_s:g}) <= the Cat1 threshold "
                f"survival.heartbeat_max_age_s ({self.cfg.heartbeat_max_age_s:g})")
        if not 0.0 <= down_health <= degraded_health <= 1.0:
            raise ConfigError(f"watchdog: need 0 <= down_health <= degraded_health <= 1, got "
                              f"{down_health!r}, {degraded_health!r}")
        self.store = store
        self.period_s = float(period_s)
        self.heartbeat_max_age_s = float(heartbeat_max_age_s)
        self.critical_max_age_s = float(critical_max_age_s)
        self.startup_grace_s = float(startup_grace_s)
        self.limits = limits or FeedLimits()
        self.ob = ob
        self.extra_readings = extra_readings
        self.alert = alert
        self.alerts_sent = 0
        self.trader = TRADER if TRADER in self.services else None
        self.registry = self._registry(degraded_health, down_health, extra_sensors)
        self.controller = SurvivalController(self.cfg, self.registry)
        self.seq = 0
        self.published = 0
        self.refused = 0
        self.last: SurvivalReading | None = None
        self.last_payload: dict[str, Any] | None = None
        self.statuses: dict[str, ServiceStatus] = {}
        self.flows: dict[str, str] = {}  # failed Prefect flows: heartbeat key -> why
        self.pending: tuple[str, ...] = self.services
        self._seen: set[str] = set()
        self._started_mono: int | None = None

    # ---------------------------------------------------------------- wiring
    def _registry(self, degraded: float, down: float, extra: Iterable[AnySensor]
                  ) -> SensorRegistry:
        cfg, lim, watched = self.cfg, self.limits, set(self.services)
        inv = [s for s in invariant_sensors(cfg) if s.name != "ledger_ok" or self.trader]
        struct: list[AnySensor] = [
            s for s in structural_sensors(cfg)
            if (s.name.startswith("mc_") and "mc" in watched)
            or (s.name == "exf_age_h" and "exf" in watched)]
        if "scan" in watched:
            struct.append(Sensor("scan_age_s", Category.STRUCTURAL,
                                 decay_profile(lim.scan_deadband_s, lim.scan_tau_s)))
        if "acb" in watched:
            struct.append(Sensor("acb_age_h", Category.STRUCTURAL,
                                 decay_profile(lim.acb_deadband_h, lim.acb_tau_h)))
        if "esof" in watched:
            struct.append(Sensor("esof_age_s", Category.STRUCTURAL,
                                 decay_profile(lim.esof_deadband_s, lim.esof_tau_s,
                                               lim.esof_floor)))
        struct.append(Sensor("service_health", Category.STRUCTURAL,
                             service_health_profile(degraded, down)))
        env = environmental_sensors(cfg) if "exf" in watched else []
        cap = capital_sensors(cfg) if self.trader else []
        return SensorRegistry([*inv, *struct, *microstructure_sensors_for(cfg, self.ob), *env,
                               *cap, *extra])

    # ---------------------------------------------------------------- life cycle
    def on_start(self) -> None:
        """Continue above the stored posture sequence; connect the OB provider."""
        try:
            current = posture_cell(self.store, clock=self.clock.now_ns).read()
        except MalformedValueError:
            current = None  # a corrupt cell never blocks PostureSet: start above 0
        self.seq = 0 if current is None else current.seq
        self._started_mono = self.clock.monotonic_ns()
        if self.ob is not None and not self.ob.connected:
            self.ob.connect()

    def on_stop(self) -> None:
        """Stop the OB provider's listeners."""
        if self.ob is not None:
            self.ob.close()

    # ---------------------------------------------------------------- the tick
    def tick(self) -> SurvivalReading | None:
        """Read, evaluate, publish, beat; return the controller's output (None when nothing was
        published: pending services or a store failure)."""
        out: list[SurvivalReading | None] = [None]

        def cycle() -> None:
            out[0] = self._cycle()

        if self.run_step(cycle) is None and self.state is ComponentState.DEGRADED:
            self.recover()  # the store answered and took the posture: the problem is gone
        self.run_step(self._beat)
        return out[0]

    def _cycle(self) -> SurvivalReading | None:
        beats = self.store.map(HEARTBEAT).get_all(list(self.services))
        features = self.store.map(FEATURES).get_all(
            [LATEST_EIGEN_SCAN, ACB_BOOST, EXF_LATEST, ESOF_LATEST, MC_STATUS])
        state = self.store.map(STATE_BLUE).get(STATE_KEY) if self.trader else None
        override_text = self.store.map(SAFETY).get(OVERRIDE_KEY)
        view = self.store.cluster_view()
        if self.ob is not None:
            self.ob.refresh()
        now = self.clock.now_ns()  # after the reads: nothing this host wrote is "future"
        self.statuses = {n: self.judge(n, beats.get(n), now) for n in self.services}
        for n, s in self.statuses.items():
            if s.status == UP:
                self._seen.add(n)
        self.flows = self._flow_statuses()
        for producer, key in PRODUCED.items():
            if producer in self.services and features.get(key) is not None:
                self._seen.add(key)
        in_grace = self._in_grace()
        wanted = [*self.services, *(k for p, k in PRODUCED.items() if p in self.services)]
        self.pending = tuple(n for n in wanted if n not in self._seen) if in_grace else ()
        if self.pending:
            return None
        readings = self.readings(now, features, state, view.member_count if view.connected
                                 else 0)
        reading = self.controller.update(readings, now)
        payload = apply_override(self._payload(reading, readings),
                                 read_override(override_text, now))
        self._publish(payload)
        previous, self.last, self.last_payload = self.last_payload, reading, payload
        self._send_alerts(alerts_between(previous, payload))
        return reading

    def _send_alerts(self, alerts: list[dict[str, Any]]) -> None:
        if self.alert is None:
            return
        for a in alerts:
            try:
                self.alert(a)
                self.alerts_sent += 1
            except Exception as exc:  # a broken hook must never cost a posture update
                _log.warning("watchdog: alert %s not sent: %s", a.get("kind"), exc)

    def _flow_statuses(self) -> dict[str, str]:
        """The Prefect flows' heartbeats (``prefect:<flow>``, written by their state hooks once
        per run, so not judged by age): a failed, crashed or late flow is degraded."""
        hb = self.store.map(HEARTBEAT)
        keys = [k for k in hb.keys() if k.startswith(FLOW_PREFIX)]  # noqa: SIM118 - a StoreMap
        out: dict[str, str] = {}
        for key, text in hb.get_all(keys).items():
            try:
                data = decode_value(text, source=f"{HEARTBEAT}[{key!r}]").data
                state = data.get("state") if isinstance(data, Mapping) else None
                reason = data.get("reason") if isinstance(data, Mapping) else None
            except MalformedValueError:
                state, reason = None, "unreadable heartbeat"
            if state != "RUNNING":
                out[key] = str(reason or state or "unknown state")
        return out

    def _in_grace(self) -> bool:
        if self._started_mono is None:
            return False
        return (self.clock.monotonic_ns() - self._started_mono) < self.startup_grace_s * _NS

    def judge(self, name: str, text: str | None, now_ns: int) -> ServiceStatus:
        """Classify one service's heartbeat value at ``now_ns`` (module docstring)."""
        if text is None:
            return ServiceStatus(name, DOWN, _INF, "no heartbeat")
        try:
            record = decode_value(text, source=f"{HEARTBEAT}[{name!r}]")
        except MalformedValueError as exc:
            return ServiceStatus(name, DOWN, _INF, f"unreadable heartbeat: {exc}")
        beat = record.data
        if not isinstance(beat, Mapping):
            return ServiceStatus(name, DOWN, _INF, "unreadable heartbeat: not an object")
        age = record.age_s(now_ns)
        if age < 0:
            return ServiceStatus(name, DOWN, _INF, f"heartbeat from the future ({-age:.3f}s)",
                                 beat)
        limit = self.critical_max_age_s if name in self.critical else self.heartbeat_max_age_s
        if age > limit:
            return ServiceStatus(name, DOWN, age, f"heartbeat {age:.1f}s old (> {limit:g}s)",
                                 beat)
        state = beat.get("state")
        status = _STATE_CLASS.get(state, DOWN) if isinstance(state, str) else DOWN
        reason = "" if status == UP else f"state {state}" + (
            f": {beat['reason']}" if beat.get("reason") else "")
        return ServiceStatus(name, status, age, reason, beat)

    def readings(self, now_ns: int, features: Mapping[str, str], state: str | None,
                 members: int) -> dict[str, float]:
        """Return every registered sensor's reading from what one tick read."""
        st = self.statuses
        crit = [st[n] for n in self.critical]
        down_crit = any(s.status == DOWN for s in crit)
        r: dict[str, float] = {
            "heartbeat_age_s": _INF if down_crit else max((s.age_s for s in crit), default=0.0),
            "store_nodes": float(members),
        }
        others = [s.status for s in st.values() if s.name not in self.critical]
        others += [s.status for s in crit if s.status == DEGRADED]
        others += [DEGRADED for _ in self.flows]  # a failed slow flow: degraded, never down
        worst = DOWN if DOWN in others else DEGRADED if DEGRADED in others else UP
        r["service_health"] = _HEALTH_CODE[worst]
        records = {k: _record(features.get(k), f"{FEATURES}[{k!r}]", now_ns)
                   for k in (LATEST_EIGEN_SCAN, ACB_BOOST, EXF_LATEST, ESOF_LATEST, MC_STATUS)}
        r["scan_age_s"] = _age_s(records[LATEST_EIGEN_SCAN], now_ns)
        r["acb_age_h"] = _age_s(records[ACB_BOOST], now_ns) / 3600.0
        r["esof_age_s"] = _age_s(records[ESOF_LATEST], now_ns)
        exf = records[EXF_LATEST]
        r["exf_age_h"] = _age_s(exf, now_ns) / 3600.0
        r["dvol"] = _dvol(exf)
        mc = records[MC_STATUS]
        r["mc_status"] = _mc_code(mc)
        r["mc_age_h"] = _age_s(mc, now_ns) / 3600.0
        if self.trader:
            t = st[self.trader]
            ok = t.status != DOWN and t.beat is not None and t.beat.get("ledger_ok") is True
            r["ledger_ok"] = 1.0 if ok else 0.0
            r["drawdown"] = _drawdown(_record(state, f"{STATE_BLUE}[{STATE_KEY!r}]", now_ns))
        if self.ob is not None:
            r.update(self.ob.sensor_readings(now_ns))
        if self.extra_readings is not None:
            r.update(self.extra_readings(now_ns))
        names = set(self.registry.names())
        return {k: v for k, v in r.items() if k in names}

    def _payload(self, out: SurvivalReading, readings: Mapping[str, float]) -> dict[str, Any]:
        body = out.as_dict()
        body["sensors"] = {n: _json_float(readings.get(n, _NAN)) for n in self.registry.names()}
        body["services"] = {
            "down": sorted(n for n, s in self.statuses.items() if s.status == DOWN),
            "degraded": sorted([*(n for n, s in self.statuses.items() if s.status == DEGRADED),
                                *self.flows]),
            "critical": sorted(self.critical),
            "reasons": {**{n: s.reason for n, s in sorted(self.statuses.items()) if s.reason},
                        **self.flows},
        }
        body["watchdog"] = self.name
        return body

    def _publish(self, payload: Mapping[str, Any]) -> None:
        """Write the posture one above the last sequence. A write refused as stale (a cached
        read of the cell at start, another writer) is retried once above the sequence the
        store holds; a second refusal, or an invalid payload, is a dropped input: degrade."""
        for attempt in range(2):
            seq = self.seq + 1
            outcome = set_posture(self.store, payload, seq, clock=self.clock.now_ns)
            if outcome.applied:
                self.seq = seq
                self.published += 1
                return
            self.refused += 1
            stored = parse_envelope(outcome.value)
            if stored is None or stored.seq < seq or attempt:
                break
            self.seq = stored.seq  # the store's own value: the next write goes above it
        raise BadInputError(f"posture seq {seq} refused by the store: {outcome.reason}",
                            source=f"{SAFETY}[{POSTURE_KEY!r}]", field="seq", value=seq)

    def _beat(self) -> None:
        now = self.clock.now_ns()
        touch_heartbeat(self.store, self.heartbeat(), now)

    def heartbeat(self) -> dict[str, Any]:
        """The base heartbeat plus the posture, Rm, the sequence and the services' verdicts."""
        beat = super().heartbeat()
        beat.update(
            posture=self.last_payload["posture"] if self.last_payload else None,
            override=bool(self.last_payload and self.last_payload.get("override")),
            rm=self.last.rm if self.last else None,
            seq=self.seq, published=self.published, refused=self.refused,
            pending=list(self.pending),
            down=sorted(n for n, s in self.statuses.items() if s.status == DOWN),
            degraded=sorted(n for n, s in self.statuses.items() if s.status == DEGRADED))
        return beat


# ---------------------------------------------------------------------- manual override
def write_override(store: Store, *, by: str, reason: str, now_ns: int,
                   posture: str = "TURTLE", until_ns: int | None = None) -> dict[str, Any]:
    """Store the operator's override (``DOLPHIN_SAFETY["override"]``); return its payload.

    The watchdog applies it on its next tick (module docstring). Any posture is accepted, but
    it can only make the published one worse, never better than the controller's.
    """
    if posture not in Posture.__members__:
        raise BadInputError("unknown posture", source=f"{SAFETY}[{OVERRIDE_KEY!r}]",
                            field="posture", value=posture)
    if until_ns is not None and until_ns <= now_ns:
        raise BadInputError("override ends before it starts",
                            source=f"{SAFETY}[{OVERRIDE_KEY!r}]", field="until_ns",
                            value=until_ns)
    body = {"posture": posture, "by": str(by), "reason": str(reason), "ts_ns": int(now_ns),
            "until_ns": until_ns}
    store.map(SAFETY).put(OVERRIDE_KEY, encode_value(body, int(now_ns)))
    return body


def clear_override(store: Store) -> None:
    """Remove the operator's override: the next tick publishes the controller's posture."""
    store.map(SAFETY).delete(OVERRIDE_KEY)


def read_override(text: str | None, now_ns: int) -> dict[str, Any] | None:
    """Return the override in force at ``now_ns`` (None when absent or expired); an unreadable
    one is a TURTLE override saying so (deny when unknown)."""
    if text is None:
        return None
    source = f"{SAFETY}[{OVERRIDE_KEY!r}]"
    try:
        data = decode_value(text, source=source).data
    except MalformedValueError as exc:
        _log.warning("watchdog: %s: reading it as TURTLE", exc)
        return {"posture": "TURTLE", "by": "watchdog", "reason": f"unreadable override: {exc}"}
    if not isinstance(data, Mapping) or data.get("posture") not in Posture.__members__:
        posture = data.get("posture") if isinstance(data, Mapping) else data
        return {"posture": "TURTLE", "by": "watchdog",
                "reason": f"unreadable override: posture {posture!r}"}
    until = data.get("until_ns")
    if isinstance(until, int) and not isinstance(until, bool) and until <= now_ns:
        return None
    return dict(data)


def apply_override(payload: dict[str, Any], override: Mapping[str, Any] | None
                   ) -> dict[str, Any]:
    """Publish the worse of the controller's posture and ``override``'s, naming both."""
    payload["controller_posture"] = payload["posture"]
    payload["override"] = None if override is None else dict(override)
    if override is not None and Posture[override["posture"]] > Posture[payload["posture"]]:
        payload["posture"] = override["posture"]
    return payload


# ---------------------------------------------------------------------- alerts
def alerts_between(previous: Mapping[str, Any] | None, payload: Mapping[str, Any]
                   ) -> list[dict[str, Any]]:
    """Return the alerts one published payload raises against the one before it: a posture
    drop, an invariant break (Cat1 reaching 0), services newly down or degraded."""
    ts, prev = int(payload.get("ts_ns") or 0), previous or {}
    base = {"ts_ns": ts, "posture": payload.get("posture"), "rm": payload.get("rm"),
            "watchdog": payload.get("watchdog")}
    out: list[dict[str, Any]] = []
    old = prev.get("posture")
    new = payload.get("posture")
    if old in Posture.__members__ and new in Posture.__members__ and Posture[new] > Posture[old]:
        why = payload.get("override") or {}
        out.append({**base, "kind": "posture_drop", "previous": old,
                    "message": f"posture {old} -> {new} (Rm {_fmt(payload.get('rm'))})"
                    + (f", override by {why.get('by')}: {why.get('reason')}" if why else "")})
    inv = (payload.get("categories") or {}).get("invariant")
    was = (prev.get("categories") or {}).get("invariant")
    if inv == 0 and was != 0:
        drivers = (payload.get("drivers") or {}).get("invariant")
        out.append({**base, "kind": "invariant_break", "driver": drivers,
                    "message": f"invariant break: Cat1 = 0 (driver {drivers})"})
    services = payload.get("services") or {}
    reasons = services.get("reasons") or {}
    for kind in ("down", "degraded"):
        before = set((prev.get("services") or {}).get(kind) or ())
        for name in sorted(set(services.get(kind) or ()) - before):
            out.append({**base, "kind": f"service_{kind}", "service": name,
                        "reason": reasons.get(name, ""),
                        "message": f"service {name} {kind}: {reasons.get(name, '')}".rstrip(": ")})
    return out


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, int | float) and not isinstance(x, bool) else "n/a"


# ---------------------------------------------------------------------- value readers
def _record(text: str | None, source: str, now_ns: int) -> Record | None:
    """Return the decoded value, None when missing, unreadable or future-dated."""
    if text is None:
        return None
    try:
        record = decode_value(text, source=source)
    except MalformedValueError as exc:
        _log.warning("watchdog: %s", exc)
        return None
    return None if record.ts_ns > now_ns else record


def _age_s(record: Record | None, now_ns: int) -> float:
    return _INF if record is None else record.age_s(now_ns)


def _dvol(exf: Record | None) -> float:
    try:
        f = exf.data["factors"][DVOL_FACTOR]  # type: ignore[union-attr]
    except (AttributeError, KeyError, TypeError):
        return _NAN
    if not isinstance(f, Mapping) or f.get("stale", True):
        return _NAN
    value = f.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _NAN
    return float(value)


def _mc_code(mc: Record | None) -> float:
    if mc is None:
        return _NAN
    status = mc.data.get("status") if isinstance(mc.data, Mapping) else mc.data
    return MC_STATUS_CODE.get(status, _NAN) if isinstance(status, str) else _NAN


def _drawdown(state: Record | None) -> float:
    dd = state.data.get("drawdown") if state is not None and isinstance(state.data, Mapping) \
        else None
    if isinstance(dd, bool) or not isinstance(dd, int | float):
        return _NAN
    return float(dd)


def _json_float(x: float) -> float | None:
    return x if math.isfinite(x) else None


# ---------------------------------------------------------------------- the loop
def watchdog_loop(service: WatchdogService, stop: threading.Event,
                  period_s: float | None = None, *, max_ticks: int | None = None) -> int:
    """Tick ``service`` every ``period_s`` (default its own) until ``stop`` is set, the
    service leaves RUNNING/DEGRADED, or ``max_ticks`` ticks ran; return the ticks run.

    Ticks keep to a fixed schedule on the clock's monotonic time (a slow tick does not shift
    the next ones; missed ones are skipped, not bunched). On the live clock the wait is
    ``stop.wait`` so a stop ends it at once; on any other clock it is ``clock.sleep``, which a
    ``SimulatedClock`` turns into an advance, so a test drives the loop without waiting.
    """
    period = service.period_s if period_s is None else float(period_s)
    if not (math.isfinite(period) and period > 0):
        raise ConfigError(f"watchdog loop: period_s must be finite and > 0, got {period!r}")
    clock, step = service.clock, round(period * _NS)
    live = isinstance(clock, LiveClock)
    ticks, due = 0, clock.monotonic_ns()
    while not stop.is_set() and service.state in (ComponentState.RUNNING,
                                                  ComponentState.DEGRADED):
        service.tick()
        ticks += 1
        if max_ticks is not None and ticks >= max_ticks:
            break
        now = clock.monotonic_ns()
        due += step
        if due <= now:
            due += ((now - due) // step + 1) * step
        wait_s = (due - now) / _NS
        if live:
            stop.wait(wait_s)
        else:
            clock.sleep(wait_s)
    return ticks
