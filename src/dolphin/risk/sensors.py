"""Survival sensors: the five categories and their response profiles (Bible §11.2, seed 000 §VI).

A sensor maps one numeric reading to a health value in [0, 1] (1 = nominal). It belongs to one of
five categories, each with its own response profile:

- INVARIANT: binary kill switch, no damping (hz quorum, heartbeat, ledger checksum).
- STRUCTURAL: exponential decay after a deadband, ``exp(-max(0, x - deadband) / tau)`` (MC
  status and staleness of the MC envelope, the ExF feed, the scan loop).
- MICROSTRUCTURE: order-book age and jitter decay towards a floor; depth/fill quality maps to
  ``floor + (1 - floor) * min(q, 1)``.
- ENVIRONMENTAL: impulse-decay; a shock drops the value to a floor at once and it recovers as
  ``floor + (1 - floor) * (1 - exp(-t / tau))`` unless a new shock comes.
- CAPITAL: sigmoid of drawdown, ``1 / (1 + exp(k (dd - mid)))``, normalised to 1 at no drawdown.

A reading that is NaN, missing or otherwise unusable is treated as the worst the sensor can say
(maximally stale), never as healthy (DESIGN.md "Failure behaviour"). Every profile returns a
finite value in [0, 1] for any float, inf and NaN included.

A sensor is bound once by the controller (``bind()``), which returns a closure
``f(reading, now_min) -> health`` that owns whatever memory the sensor needs (the impulse sensor
remembers its last shock). Precompiled closures keep an update in the low microseconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from dolphin.core.config import SurvivalConfig

#: What ``Sensor.bind`` returns: ``f(reading, now_min) -> health in [0, 1]``.
Evaluator = Callable[[float, float], float]


class Category(IntEnum):
    """The five sensor categories (Bible §11.2); the integer is the output slot."""

    INVARIANT = 0
    STRUCTURAL = 1
    MICROSTRUCTURE = 2
    ENVIRONMENTAL = 3
    CAPITAL = 4


CATEGORY_NAMES = tuple(c.name.lower() for c in Category)

#: MC-Forewarner status codes as a sensor reading (§11.2 Cat2 base values).
MC_OK, MC_ORANGE, MC_RED = 0.0, 1.0, 2.0
MC_STATUS_CODE = {"OK": MC_OK, "ORANGE": MC_ORANGE, "RED": MC_RED}
_MC_BASE = (1.0, 0.5, 0.1)


# ---------------------------------------------------------------- response profiles (pure)
def deadband_decay(x: float, deadband: float, tau: float, floor: float = 0.0) -> float:
    """Return ``floor + (1 - floor) * exp(-max(0, x - deadband) / tau)``; NaN gives ``floor``."""
    if not x <= deadband:  # NaN lands here too: unknown staleness is maximal staleness
        excess = x - deadband
        if not excess < math.inf:
            return floor
        return floor + (1.0 - floor) * math.exp(-excess / tau)
    return 1.0


def quality_score(q: float, floor: float) -> float:
    """Return ``clamp(floor + (1 - floor) * q, floor, 1)`` (§11.2 Cat3); NaN gives ``floor``."""
    if q >= 1.0:
        return 1.0
    if q > 0.0:
        return floor + (1.0 - floor) * q
    return floor


def drawdown_sigmoid(dd: float, midpoint: float, steepness: float) -> float:
    """Return the §11.2 Cat5 sigmoid normalised to 1 at ``dd <= 0``; NaN gives 0.

    ``1 / (1 + exp(k (dd - mid)))`` is 0.973 at no drawdown with the Bible's k = 30, mid = 0.12;
    dividing by its value at 0 keeps a flat book exactly nominal (seed 000 §VI.3 deadband) and
    leaves 12 % drawdown at 0.51 and 20 % at 0.085.
    """
    if dd <= 0.0:
        return 1.0
    if not dd < math.inf:  # NaN or +inf: unknown drawdown is the worst drawdown
        return 0.0
    z = steepness * (dd - midpoint)
    if z > 700.0:
        return 0.0
    return (1.0 + math.exp(-steepness * midpoint)) / (1.0 + math.exp(z))


def decay_profile(deadband: float, tau: float, floor: float = 0.0) -> Callable[[float], float]:
    """Return ``x -> deadband_decay(x, deadband, tau, floor)`` as one closure (hot path)."""
    exp, inf, span = math.exp, math.inf, 1.0 - floor

    def profile(x: float) -> float:
        if x <= deadband:
            return 1.0
        excess = x - deadband
        if not excess < inf:  # NaN and +inf: maximally stale
            return floor
        return floor + span * exp(-excess / tau)

    return profile


def sigmoid_profile(midpoint: float, steepness: float) -> Callable[[float], float]:
    """Return ``dd -> drawdown_sigmoid(dd, midpoint, steepness)`` as one closure (hot path)."""
    exp, inf = math.exp, math.inf
    norm = 1.0 + math.exp(-steepness * midpoint)

    def profile(dd: float) -> float:
        if dd <= 0.0:
            return 1.0
        if not dd < inf:
            return 0.0
        z = steepness * (dd - midpoint)
        if z > 700.0:
            return 0.0
        return norm / (1.0 + exp(z))

    return profile


def mc_status_health(code: float) -> float:
    """Return the §11.2 Cat2 base for an MC status code (OK 1.0, ORANGE 0.5, RED 0.1)."""
    if code == MC_OK:
        return 1.0
    if code == MC_ORANGE:
        return 0.5
    return 0.1  # RED, and any unknown code: never better than RED


# ---------------------------------------------------------------- sensors
@dataclass(frozen=True)
class Sensor:
    """A stateless sensor: ``profile(reading)`` is its health."""

    name: str
    category: Category
    profile: Callable[[float], float]

    #: The controller calls ``profile(reading)`` directly: no clock, no memory.
    stateful = False

    def bind(self) -> Evaluator:
        """Return the evaluator ``f(reading, now_min)`` (for callers that treat all alike)."""
        profile = self.profile

        def evaluate(reading: float, now_min: float) -> float:
            return profile(reading)

        return evaluate


@dataclass(frozen=True)
class ImpulseSensor:
    """Impulse-decay sensor (§11.2 Cat4): a shock drops health to ``floor``, then it recovers.

    ``is_shock(prev, reading)`` decides whether a reading is a shock given the previous usable
    reading (None at first). A NaN reading counts as a shock: an unknown environment is treated
    like a fresh shock, never as calm.
    """

    name: str
    category: Category
    is_shock: Callable[[float | None, float], bool]
    floor: float = 0.3
    tau_min: float = 60.0
    #: The controller calls ``bind()(reading, now_min)``: the sensor remembers its last shock.
    stateful = True

    def bind(self) -> Evaluator:
        """Return an evaluator that remembers the previous reading and the last shock time."""
        floor, tau, is_shock = self.floor, self.tau_min, self.is_shock
        mem: list = [None, -math.inf]  # previous finite reading, minute of the last shock

        def evaluate(reading: float, now_min: float) -> float:
            if not math.isfinite(reading):
                mem[1] = now_min
                return floor
            if is_shock(mem[0], reading):
                mem[1] = now_min
            mem[0] = reading
            since = now_min - mem[1]
            if since <= 0.0:
                return floor
            return floor + (1.0 - floor) * (1.0 - math.exp(-since / tau))

        return evaluate


AnySensor = Sensor | ImpulseSensor


def relative_rise(threshold: float) -> Callable[[float | None, float], bool]:
    """Return a shock test: the reading rose by at least ``threshold`` (relative) since the last."""

    def is_shock(prev: float | None, reading: float) -> bool:
        return prev is not None and prev > 0.0 and reading >= prev * (1.0 + threshold)

    return is_shock


def relative_drop(threshold: float) -> Callable[[float | None, float], bool]:
    """Return a shock test: the reading fell by at least ``threshold`` (relative) since the last."""

    def is_shock(prev: float | None, reading: float) -> bool:
        return prev is not None and prev > 0.0 and reading <= prev * (1.0 - threshold)

    return is_shock


# ---------------------------------------------------------------- the standard sensors
def invariant_sensors(cfg: SurvivalConfig) -> list[AnySensor]:
    """Cat1: heartbeat age (s), store quorum (live members), ledger check (1 = intact)."""
    max_age = cfg.heartbeat_max_age_s
    return [
        Sensor("heartbeat_age_s", Category.INVARIANT, lambda x: 1.0 if x <= max_age else 0.0),
        Sensor("store_nodes", Category.INVARIANT, lambda x: 1.0 if x >= 1.0 else 0.0),
        Sensor("ledger_ok", Category.INVARIANT, lambda x: 1.0 if x == 1.0 else 0.0),
    ]


def structural_sensors(cfg: SurvivalConfig) -> list[AnySensor]:
    """Cat2: MC status, MC envelope age (h), ExF feed age (h)."""
    md, mt, ed, et = cfg.mc_deadband_h, cfg.mc_tau_h, cfg.exf_deadband_h, cfg.exf_tau_h
    return [
        Sensor("mc_status", Category.STRUCTURAL, mc_status_health),
        Sensor("mc_age_h", Category.STRUCTURAL, decay_profile(md, mt)),
        Sensor("exf_age_h", Category.STRUCTURAL, decay_profile(ed, et)),
    ]


def microstructure_sensors(cfg: SurvivalConfig) -> list[AnySensor]:
    """Cat3: order-book age (s), feed jitter (ms), depth quality and fill probability."""
    od, ot, of = cfg.ob_deadband_s, cfg.ob_tau_s, cfg.ob_stale_floor
    jd, jt, df = cfg.ob_jitter_deadband_ms, cfg.ob_jitter_tau_ms, cfg.depth_floor
    return [
        Sensor("ob_age_s", Category.MICROSTRUCTURE, decay_profile(od, ot, of)),
        Sensor("ob_jitter_ms", Category.MICROSTRUCTURE, decay_profile(jd, jt, of)),
        Sensor("ob_depth_quality", Category.MICROSTRUCTURE, lambda x: quality_score(x, df)),
        Sensor("ob_fill_probability", Category.MICROSTRUCTURE, lambda x: quality_score(x, df)),
    ]


def environmental_sensors(cfg: SurvivalConfig) -> list[AnySensor]:
    """Cat4: DVOL level; a rise of ``dvol_shock_rise`` or more since the last reading is a shock."""
    return [
        ImpulseSensor(
            "dvol",
            Category.ENVIRONMENTAL,
            relative_rise(cfg.dvol_shock_rise),
            floor=cfg.shock_floor,
            tau_min=cfg.shock_tau_min,
        )
    ]


def capital_sensors(cfg: SurvivalConfig) -> list[AnySensor]:
    """Cat5: drawdown of the mark-to-market equity from its peak, as a fraction."""
    return [
        Sensor("drawdown", Category.CAPITAL, sigmoid_profile(cfg.dd_midpoint, cfg.dd_steepness))
    ]
