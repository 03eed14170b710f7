"""Survival controller: sensors -> Rm in [0, 1] -> posture (Bible §11, seeds 000 §VI, 001 §II/§V).

One update:
1. every registered sensor maps its reading to a health in [0, 1] (``risk.sensors``); a category's
   value is the worst of its sensors, except for the structural category (``PRODUCT_CATEGORIES``),
   whose value is the product of its sensors (§11.2 Cat2: ``base(mc_status) * decay(staleness)``).
   The worst sensor is reported as the category's driver either way. A category with no sensor
   registered has nothing to monitor and is 1.
2. §11.3 combination: ``r_target = inv * cap * min(struct, env) * micro``, halved when two or more
   of (struct, micro, env) are below ``collapse_threshold`` (correlated collapse).
3. §11.4 bounded recovery: a drop is followed at once (fast attack); a rise moves by
   ``min(alpha * (target - last), rate * dt_min)`` with ``alpha = min(1, gain * dt_min)``.
4. §11.5 posture from Rm with the §19.3 thresholds, through §11.6 hysteresis: a worse posture
   needs ``hysteresis_down`` consecutive updates below its threshold, a better one
   ``hysteresis_up`` consecutive updates at or above its threshold plus ``hysteresis_band`` (the
   seed's Schmitt gap). An invariant break (Cat1 = 0) is HIBERNATE on the same update.

A new sensor is added by registering it to a category (``SensorRegistry.register``); the controller
does not change. Time comes from an injected clock (int64 ns), so replay and tests are
deterministic; the controller holds only its explicit state (last Rm, posture, streaks, the
sensors' closures).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from dolphin.core.config import SurvivalConfig
from dolphin.core.errors import ConfigError
from dolphin.core.records import POSTURE_HIBERNATE, POSTURES
from dolphin.risk.sensors import (
    CATEGORY_NAMES,
    PRODUCT_CATEGORIES,
    AnySensor,
    Category,
    capital_sensors,
    environmental_sensors,
    invariant_sensors,
    microstructure_sensors,
    structural_sensors,
)

#: A clock returns int64 nanoseconds UTC (STYLE.md §7, §12).
Clock = Callable[[], int]
_NS_PER_MIN = 60_000_000_000
_NAN = math.nan
_INV, _STRUCT, _MICRO, _ENV, _CAP = (int(c) for c in Category)


class SensorRegistry:
    """The plug-in registry: sensors by name, each in one category (seed 001 §II)."""

    def __init__(self, sensors: Iterable[AnySensor] = ()) -> None:
        self._sensors: dict[str, AnySensor] = {}
        for s in sensors:
            self.register(s)

    def register(self, sensor: AnySensor) -> SensorRegistry:
        """Add ``sensor``; a duplicate name is a configuration error. Returns self."""
        if sensor.name in self._sensors:
            raise ConfigError(f"survival: sensor {sensor.name!r} is registered twice")
        if not isinstance(sensor.category, Category):
            raise ConfigError(f"survival: sensor {sensor.name!r} has no category")
        self._sensors[sensor.name] = sensor
        return self

    def names(self, category: Category | None = None) -> tuple[str, ...]:
        """Return the registered sensor names (of one category, if given)."""
        return tuple(
            n for n, s in self._sensors.items() if category is None or s.category == category
        )

    def __iter__(self):
        return iter(self._sensors.values())

    def __len__(self) -> int:
        return len(self._sensors)


def default_registry(cfg: SurvivalConfig) -> SensorRegistry:
    """Return the registry with every standard sensor of ``risk.sensors``."""
    return SensorRegistry(
        [
            *invariant_sensors(cfg),
            *structural_sensors(cfg),
            *microstructure_sensors(cfg),
            *environmental_sensors(cfg),
            *capital_sensors(cfg),
        ]
    )


class SurvivalReading(NamedTuple):
    """One controller output (what goes to DOLPHIN_SAFETY: posture, Rm and the sensors)."""

    ts_ns: int
    rm: float
    r_target: float
    posture: str
    categories: tuple[float, float, float, float, float]
    drivers: tuple[str, str, str, str, str]
    degraded: int

    def as_dict(self) -> dict:
        """Return a JSON-ready dict, categories and drivers keyed by category name."""
        return {
            "ts_ns": self.ts_ns,
            "rm": self.rm,
            "r_target": self.r_target,
            "posture": self.posture,
            "categories": dict(zip(CATEGORY_NAMES, self.categories, strict=True)),
            "drivers": dict(zip(CATEGORY_NAMES, self.drivers, strict=True)),
            "degraded": self.degraded,
        }


def combine(cats: list[float], threshold: float, penalty: float) -> tuple[float, int]:
    """Return ``(r_target, degraded)`` for the five category values (§11.3)."""
    struct, micro, env = cats[_STRUCT], cats[_MICRO], cats[_ENV]
    degraded = (struct < threshold) + (micro < threshold) + (env < threshold)
    r = cats[_INV] * cats[_CAP] * (struct if struct < env else env) * micro
    if degraded >= 2:
        r *= penalty
    return r, degraded


def recover(last: float, target: float, dt_min: float, gain: float, rate: float) -> float:
    """Return the §11.4 bounded-recovery step from ``last`` towards ``target``."""
    if target <= last:
        return target  # fast attack
    if dt_min <= 0.0:
        return last
    alpha = min(1.0, gain * dt_min)
    return last + min(alpha * (target - last), rate * dt_min)


def posture_level(rm: float, cfg: SurvivalConfig) -> int:
    """Return the §11.5 posture code for ``rm`` (0 APEX .. 3 HIBERNATE)."""
    if rm >= cfg.apex_threshold:
        return 0
    if rm >= cfg.stalker_threshold:
        return 1
    if rm >= cfg.turtle_threshold:
        return 2
    return 3


@dataclass
class _Hysteresis:
    """§11.6 state: the posture in force and the streaks towards a worse or a better one."""

    code: int = 0
    down: int = 0
    up: int = 0


class SurvivalController:
    """The survival stack as a small state machine stepped by ``update``."""

    def __init__(
        self,
        cfg: SurvivalConfig | None = None,
        registry: SensorRegistry | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.cfg = cfg or SurvivalConfig()
        self.registry = registry if registry is not None else default_registry(self.cfg)
        self.clock = clock
        # precompiled (name, category slot, closure) triples: the update is three flat loops;
        # stateless sensors are called as profile(reading), stateful ones and the factors of a
        # product category as f(reading, now_min)
        worst = [s for s in self.registry if s.category not in PRODUCT_CATEGORIES]
        self._plain = [(s.name, int(s.category), s.profile) for s in worst if not s.stateful]
        self._timed = [(s.name, int(s.category), s.bind()) for s in worst if s.stateful]
        self._factors = [
            (s.name, int(s.category), s.bind())
            for s in self.registry
            if s.category in PRODUCT_CATEGORIES
        ]
        self._hyst = _Hysteresis()
        self._last_rm: float | None = None
        self._last_ns: int | None = None

    @property
    def posture(self) -> str:
        """The posture in force."""
        return POSTURES[self._hyst.code]

    @property
    def rm(self) -> float | None:
        """The last Rm (None before the first update)."""
        return self._last_rm

    def update(self, readings: Mapping[str, float], now_ns: int | None = None) -> SurvivalReading:
        """Evaluate every sensor at ``now_ns`` (default: the clock) and step Rm and the posture.

        A registered sensor absent from ``readings`` reads NaN: maximally stale.
        """
        if now_ns is None:
            if self.clock is None:
                raise ConfigError("survival: update needs now_ns or an injected clock")
            now_ns = self.clock()
        cats, drivers = self._categories(readings, now_ns / _NS_PER_MIN)
        cfg = self.cfg
        target, degraded = combine(cats, cfg.collapse_threshold, cfg.collapse_penalty)
        last = self._last_rm
        if last is None:
            rm = target
        else:
            dt_min = (now_ns - self._last_ns) / _NS_PER_MIN
            rm = recover(
                last, target, dt_min, cfg.recovery_alpha_per_min, cfg.recovery_rate_per_min
            )
        self._last_rm, self._last_ns = rm, now_ns
        if last is None:
            # The first reading has no history to damp: the posture starts where Rm is (a
            # controller started over a broken sensor is not APEX for two updates).
            h = self._hyst
            h.code = POSTURE_HIBERNATE if cats[_INV] == 0.0 else posture_level(rm, cfg)
            h.down = h.up = 0
            code = h.code
        else:
            code = self._step_posture(rm, cats[_INV] == 0.0)
        return SurvivalReading(
            now_ns, rm, target, POSTURES[code], tuple(cats), tuple(drivers), degraded
        )

    def _categories(
        self, readings: Mapping[str, float], now_min: float
    ) -> tuple[list[float], list[str]]:
        """Return the five category values and their drivers (the worst sensor of each)."""
        cats = [1.0, 1.0, 1.0, 1.0, 1.0]
        drivers = ["", "", "", "", ""]
        get = readings.get
        for name, slot, profile in self._plain:
            v = profile(get(name, _NAN))
            if v < cats[slot]:
                cats[slot] = v
                drivers[slot] = name
        for name, slot, evaluate in self._timed:
            v = evaluate(get(name, _NAN), now_min)
            if v < cats[slot]:
                cats[slot] = v
                drivers[slot] = name
        if self._factors:
            low = [1.0, 1.0, 1.0, 1.0, 1.0]
            for name, slot, evaluate in self._factors:
                v = evaluate(get(name, _NAN), now_min)
                cats[slot] *= v  # a product category holds no "worst" sensor: starts at 1
                if v < low[slot]:
                    low[slot] = v
                    drivers[slot] = name
        return cats, drivers

    def _step_posture(self, rm: float, invariant_broken: bool) -> int:
        h, cfg = self._hyst, self.cfg
        if h.code == 0 and rm >= cfg.apex_threshold and not h.down:
            return 0  # the steady state: APEX with nothing pending
        if invariant_broken:  # §11.2 Cat1: total failure -> HIBERNATE immediately, no damping
            h.code, h.down, h.up = POSTURE_HIBERNATE, 0, 0
            return h.code
        lower = posture_level(rm, cfg)
        higher = posture_level(rm - cfg.hysteresis_band, cfg)
        if lower > h.code:
            h.down, h.up = h.down + 1, 0
            if h.down >= cfg.hysteresis_down:
                h.code, h.down = lower, 0
        elif higher < h.code:
            h.up, h.down = h.up + 1, 0
            if h.up >= cfg.hysteresis_up:
                h.code, h.up = higher, 0
        else:
            h.down = h.up = 0
        return h.code
