"""Survival sensors: the five categories and their response profiles (Bible §11.2, seed 000 §VI).

A sensor maps one numeric reading to a health value in [0, 1] (1 = nominal). It belongs to one of
five categories, each with its own response profile:

- INVARIANT: binary kill switch, no damping (hz quorum, heartbeat, ledger checksum).
- STRUCTURAL: the MC status base (OK 1.0, ORANGE 0.5, RED 0.1) and exponential decay after a
  deadband, ``exp(-max(0, x - deadband) / tau)``, of the MC envelope's and the ExF feed's age.
  Unlike the other categories, whose value is the worst of their sensors, this one MULTIPLIES its
  sensors (``PRODUCT_CATEGORIES``): §11.2 defines Cat2 as ONE product,
  ``base(mc_status) * exp(-max(0, staleness_h - 6) / 3)``, so ORANGE with a 7 h old envelope is
  0.5 e^(-1/3) = 0.358, not min(0.5, 0.717) = 0.5. The ExF age is a further staleness factor of
  the same product (1 while fresh, so the §11.2 formula holds exactly when the feed is fresh).
- MICROSTRUCTURE: order-book age and jitter decay towards a floor; depth/fill quality maps to
  ``floor + (1 - floor) * min(q, 1)``.
- ENVIRONMENTAL: impulse-decay; a shock drops the value to a floor at once and it recovers as
  ``floor + (1 - floor) * (1 - exp(-t / tau))`` unless a new shock comes.
- CAPITAL: sigmoid of drawdown, ``1 / (1 + exp(k (dd - mid)))``, normalised to 1 at no drawdown.

A reading that is NaN, missing or otherwise unusable is treated as the worst the sensor can say
(maximally stale), never as healthy (DESIGN.md "Failure behaviour"): +inf and -inf for every
sensor, an infinite store quorum, a fill probability outside [0, 1], a negative or infinite depth
score, a DVOL that is not positive. Every profile returns a finite value in [0, 1] for any float,
inf and NaN included. A depth score above 1 is valid (§9.3: "[0, 2+]; >1 = deep book") and
clamps to 1; a small negative age (producer and consumer clocks slightly apart) reads as fresh.

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
from dolphin.core.enums import McStatus

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

#: Categories whose value is the PRODUCT of their sensors (§11.2 Cat2: base x decay); every other
#: category takes the worst (minimum) of its sensors.
PRODUCT_CATEGORIES = frozenset({Category.STRUCTURAL})

#: MC-Forewarner status codes (``core.enums.McStatus``) as a float sensor reading (§11.2 Cat2).
MC_OK, MC_ORANGE, MC_RED = float(McStatus.OK), float(McStatus.ORANGE), float(McStatus.RED)
MC_STATUS_CODE = {s.name: float(s) for s in McStatus}
_MC_BASE = (1.0, 0.5, 0.1)


# ---------------------------------------------------------------- response profiles (pure)
def deadband_decay(x: float, deadband: float, tau: float, floor: float = 0.0) -> float:
    """Return ``floor + (1 - floor) exp(-max(0, x - deadband) / tau)``; NaN, ±inf: ``floor``."""
    if not -math.inf < x < math.inf:  # unknown staleness is maximal staleness
        return floor
    if x <= deadband:
        return 1.0
    return floor + (1.0 - floor) * math.exp(-(x - deadband) / tau)


def quality_score(q: float, floor: float, q_max: float = math.inf) -> float:
    """Return ``clamp(floor + (1 - floor) * q, floor, 1)`` (§11.2 Cat3).

    A score outside ``[0, q_max]`` or not finite (NaN, ±inf) is unusable and gives ``floor``.
    """
    if not 0.0 <= q <= q_max or q == math.inf:
        return floor
    if q >= 1.0:
        return 1.0
    return floor + (1.0 - floor) * q


def drawdown_sigmoid(dd: float, midpoint: float, steepness: float) -> float:
    """Return the §11.2 Cat5 sigmoid normalised to 1 at ``dd <= 0``; NaN gives 0.

    ``1 / (1 + exp(k (dd - mid)))`` is 0.973 at no drawdown with the Bible's k = 30, mid = 0.12;
    dividing by its value at 0 keeps a flat book exactly nominal (seed 000 §VI.3 deadband) and
    leaves 12 % drawdown at 0.51 and 20 % at 0.085.
    """
    if not -math.inf < dd < math.inf:  # NaN or ±inf: unknown drawdown is the worst drawdown
        return 0.0
    if dd <= 0.0:
        return 1.0
    z = steepness * (dd - midpoint)
    if z > 700.0:
        return 0.0
    return (1.0 + math.exp(-steepness * midpoint)) / (1.0 + math.exp(z))


def decay_profile(deadband: float, tau: float, floor: float = 0.0) -> Callable[[float], float]:
    """Return ``x -> deadband_decay(x, deadband, tau, floor)`` as one closure (hot path)."""
    exp, inf, span = math.exp, math.inf, 1.0 - floor

    def profile(x: float) -> float:
        if x <= deadband:
            return 1.0 if x > -inf else floor  # -inf is no age: maximally stale
        if x < inf:
            return floor + span * exp((deadband - x) / tau)
        return floor  # NaN and +inf: maximally stale

    return profile


def quality_profile(floor: float, q_max: float = math.inf) -> Callable[[float], float]:
    """Return ``q -> quality_score(q, floor, q_max)`` as one closure (hot path)."""
    inf, span = math.inf, 1.0 - floor

    def profile(q: float) -> float:
        if 0.0 <= q <= q_max and q < inf:
            return 1.0 if q >= 1.0 else floor + span * q
        return floor  # NaN, ±inf, negative or above q_max: unusable

    return profile


def sigmoid_profile(midpoint: float, steepness: float) -> Callable[[float], float]:
    """Return ``dd -> drawdown_sigmoid(dd, midpoint, steepness)`` as one closure (hot path)."""
    exp, inf = math.exp, math.inf
    norm = 1.0 + math.exp(-steepness * midpoint)

    def profile(dd: float) -> float:
        if dd <= 0.0:
            return 1.0 if dd > -inf else 0.0
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
    reading (None at first). A reading that ``valid`` rejects (by default NaN and ±inf) counts as
    a shock and is not remembered: an unknown environment is treated like a fresh shock, never as
    calm.
    """

    name: str
    category: Category
    is_shock: Callable[[float | None, float], bool]
    floor: float = 0.3
    tau_min: float = 60.0
    valid: Callable[[float], bool] = math.isfinite
    #: The controller calls ``bind()(reading, now_min)``: the sensor remembers its last shock.
    stateful = True

    def bind(self) -> Evaluator:
        """Return an evaluator that remembers the previous reading and the last shock time."""
        floor, tau, is_shock, valid = self.floor, self.tau_min, self.is_shock, self.valid
        mem: list = [None, -math.inf]  # previous valid reading, minute of the last shock

        def evaluate(reading: float, now_min: float) -> float:
            if not valid(reading):
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
    max_age, inf = cfg.heartbeat_max_age_s, math.inf
    return [
        Sensor(
            "heartbeat_age_s", Category.INVARIANT, lambda x: 1.0 if -inf < x <= max_age else 0.0
        ),
        Sensor("store_nodes", Category.INVARIANT, lambda x: 1.0 if 1.0 <= x < inf else 0.0),
        Sensor("ledger_ok", Category.INVARIANT, lambda x: 1.0 if x == 1.0 else 0.0),
    ]


def structural_sensors(cfg: SurvivalConfig) -> list[AnySensor]:
    """Cat2 factors, multiplied (§11.2): MC status, MC envelope age (h), ExF feed age (h)."""
    md, mt, ed, et = cfg.mc_deadband_h, cfg.mc_tau_h, cfg.exf_deadband_h, cfg.exf_tau_h
    return [
        Sensor("mc_status", Category.STRUCTURAL, mc_status_health),
        Sensor("mc_age_h", Category.STRUCTURAL, decay_profile(md, mt)),
        Sensor("exf_age_h", Category.STRUCTURAL, decay_profile(ed, et)),
    ]


def microstructure_sensors(cfg: SurvivalConfig) -> list[AnySensor]:
    """Cat3: order-book age (s), feed jitter (ms), depth quality (>= 0) and fill probability."""
    od, ot, of = cfg.ob_deadband_s, cfg.ob_tau_s, cfg.ob_stale_floor
    jd, jt, df = cfg.ob_jitter_deadband_ms, cfg.ob_jitter_tau_ms, cfg.depth_floor
    return [
        Sensor("ob_age_s", Category.MICROSTRUCTURE, decay_profile(od, ot, of)),
        Sensor("ob_jitter_ms", Category.MICROSTRUCTURE, decay_profile(jd, jt, of)),
        Sensor("ob_depth_quality", Category.MICROSTRUCTURE, quality_profile(df)),
        # a probability: above 1 is not a reading
        Sensor("ob_fill_probability", Category.MICROSTRUCTURE, quality_profile(df, 1.0)),
    ]


def environmental_sensors(cfg: SurvivalConfig) -> list[AnySensor]:
    """Cat4: DVOL level; a rise of ``dvol_shock_rise`` or more since the last reading is a shock.

    An implied-vol index is positive: zero, negative and non-finite readings count as a shock.
    """
    return [
        ImpulseSensor(
            "dvol",
            Category.ENVIRONMENTAL,
            relative_rise(cfg.dvol_shock_rise),
            floor=cfg.shock_floor,
            tau_min=cfg.shock_tau_min,
            valid=_positive_finite,
        )
    ]


def _positive_finite(x: float) -> bool:
    return 0.0 < x < math.inf


def capital_sensors(cfg: SurvivalConfig) -> list[AnySensor]:
    """Cat5: drawdown of the mark-to-market equity from its peak, as a fraction."""
    return [
        Sensor("drawdown", Category.CAPITAL, sigmoid_profile(cfg.dd_midpoint, cfg.dd_steepness))
    ]
