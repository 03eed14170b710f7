"""Survival sensors: §11.2 Cat2 as one product, and invalid readings read as the worst value."""

from __future__ import annotations

import math

import pytest

from dolphin.core.config import SurvivalConfig
from dolphin.risk.sensors import PRODUCT_CATEGORIES, Category
from dolphin.risk.survival import SurvivalController, default_registry
from tests.kit.survival import HEALTHY, MIN

CFG = SurvivalConfig()
INF = math.inf

#: The worst value of each standard sensor, from the §11.2 profiles and the SurvivalConfig
#: defaults: binary invariants 0; MC status RED 0.1; ages without a floor 0; the order-book
#: age/jitter floor 0.5 (the "OB stale" value); depth/fill floor 0.3; the DVOL shock floor 0.3;
#: drawdown 0.
WORST = {
    "heartbeat_age_s": 0.0,
    "store_nodes": 0.0,
    "ledger_ok": 0.0,
    "mc_status": 0.1,
    "mc_age_h": 0.0,
    "exf_age_h": 0.0,
    "ob_age_s": 0.5,
    "ob_jitter_ms": 0.5,
    "ob_depth_quality": 0.3,
    "ob_fill_probability": 0.3,
    "dvol": 0.3,
    "drawdown": 0.0,
}
SLOT = {name: int(s.category) for name, s in default_registry(CFG)._sensors.items()}


def _category(name: str, reading: float) -> float:
    """Category value of ``name``'s category when only ``name`` deviates from HEALTHY."""
    c = SurvivalController(CFG)
    c.update(HEALTHY, 0)  # the DVOL sensor has a calm previous reading
    return c.update({**HEALTHY, name: reading}, MIN).categories[SLOT[name]]


def test_worst_table_covers_every_standard_sensor():
    assert set(WORST) == set(HEALTHY) == set(SLOT)


# ---------------------------------------------------------------- §11.2 Cat2: one product
def test_structural_is_the_one_multiplicative_category():
    assert frozenset({Category.STRUCTURAL}) == PRODUCT_CATEGORIES


def test_orange_and_seven_hours_stale_is_0358_and_hibernates_not_turtle():
    # §11.2: base(ORANGE) = 0.5, decay = exp(-max(0, 7 - 6) / 3) = exp(-1/3) = 0.71653;
    # Cat2 = 0.5 x 0.71653 = 0.35827. §11.3 with Cat1 = Cat5 = Cat3 = Cat4 = 1: r = 0.35827, one
    # degraded category (no collapse penalty). §11.5: 0.358 < 0.50 -> HIBERNATE (the minimum of
    # the two sensors would give 0.50 -> TURTLE). The first update has no history to damp: the
    # posture starts at HIBERNATE (a controller started over a broken sensor is never APEX).
    c = SurvivalController(CFG)
    readings = {**HEALTHY, "mc_status": 1.0, "mc_age_h": 7.0}
    first = c.update(readings, 0)
    second = c.update(readings, MIN)
    assert first.categories[Category.STRUCTURAL] == pytest.approx(0.35827, abs=5e-6)
    assert first.r_target == pytest.approx(0.35827, abs=5e-6) and first.degraded == 1
    assert first.posture == "HIBERNATE" and second.posture == "HIBERNATE"
    assert second.drivers[Category.STRUCTURAL] == "mc_status"  # 0.5 < 0.717


def test_red_and_nine_hours_stale_multiply():
    # RED 0.1 x exp(-(9 - 6) / 3) = 0.1 x e^-1 = 0.036788
    out = SurvivalController(CFG).update({**HEALTHY, "mc_status": 2.0, "mc_age_h": 9.0}, 0)
    assert out.categories[Category.STRUCTURAL] == pytest.approx(0.036788, abs=1e-6)


def test_fresh_envelope_leaves_the_status_base_alone():
    # inside the 6 h deadband the decay is exactly 1: ORANGE alone is 0.5 -> TURTLE (>= 0.50)
    c = SurvivalController(CFG)
    readings = {**HEALTHY, "mc_status": 1.0, "mc_age_h": 6.0}
    c.update(readings, 0)
    out = c.update(readings, MIN)
    assert out.categories[Category.STRUCTURAL] == 0.5 and out.posture == "TURTLE"


def test_stale_exf_feed_is_a_further_factor_of_the_product():
    # ExF: deadband 0.5 h, tau 6 h; 6.5 h -> e^-1. ORANGE x 1 (MC fresh) x e^-1 = 0.18394
    out = SurvivalController(CFG).update({**HEALTHY, "mc_status": 1.0, "exf_age_h": 6.5}, 0)
    assert out.categories[Category.STRUCTURAL] == pytest.approx(0.18394, abs=1e-5)
    assert out.drivers[Category.STRUCTURAL] == "exf_age_h"  # e^-1 = 0.368 < 0.5


# ---------------------------------------------------------------- invalid readings: the worst
@pytest.mark.parametrize("name", sorted(WORST))
def test_plus_infinity_reads_as_the_worst_value(name):
    assert _category(name, INF) == WORST[name]


@pytest.mark.parametrize("name", sorted(WORST))
def test_minus_infinity_reads_as_the_worst_value(name):
    assert _category(name, -INF) == WORST[name]


@pytest.mark.parametrize("name", sorted(WORST))
def test_nan_reads_as_the_worst_value(name):
    assert _category(name, math.nan) == WORST[name]


def test_infinite_store_quorum_breaks_the_invariant():
    out = SurvivalController(CFG).update({**HEALTHY, "store_nodes": INF}, 0)
    assert out.rm == 0.0 and out.posture == "HIBERNATE"
    assert out.drivers[Category.INVARIANT] == "store_nodes"


@pytest.mark.parametrize("p", [1.0000001, 1.5, 100.0])
def test_fill_probability_above_one_reads_as_the_floor(p):
    assert _category("ob_fill_probability", p) == WORST["ob_fill_probability"]
    assert _category("ob_fill_probability", 1.0) == 1.0  # the largest valid probability


@pytest.mark.parametrize("q", [-0.1, -INF, INF])
def test_negative_or_infinite_depth_quality_reads_as_the_floor(q):
    assert _category("ob_depth_quality", q) == WORST["ob_depth_quality"]


def test_depth_quality_above_one_is_a_deep_book_not_an_error():
    # Bible §9.3: depth_quality in [0, 2+], > 1 = deep book; §11.2 Cat3 clamps at 1
    assert _category("ob_depth_quality", 1.7) == 1.0
    assert _category("ob_depth_quality", 0.5) == pytest.approx(0.3 + 0.7 * 0.5)


@pytest.mark.parametrize("dvol", [-50.0, -1e-9, 0.0])
def test_non_positive_dvol_reads_as_a_fresh_shock(dvol):
    assert _category("dvol", dvol) == WORST["dvol"]


def test_invalid_dvol_is_not_remembered_as_the_previous_reading():
    # 50 -> -50 (invalid, a shock) -> 52: the rise is measured from 50 (4 %), not from -50,
    # and the environment recovers from the shock at minute 1: 0.3 + 0.7 (1 - e^(-1/60)) at 2
    c = SurvivalController(CFG)
    c.update(HEALTHY, 0)
    c.update({**HEALTHY, "dvol": -50.0}, MIN)
    out = c.update({**HEALTHY, "dvol": 52.0}, 2 * MIN)
    assert out.categories[Category.ENVIRONMENTAL] == pytest.approx(
        0.3 + 0.7 * (1.0 - math.exp(-1.0 / 60.0))
    )


def test_the_first_update_starts_where_rm_is_and_later_ones_are_damped():
    # §11.5 bands: 0.6 is TURTLE (0.50 <= 0.6 < 0.75). The first reading sets the posture at
    # once; a later drop needs hysteresis_down (2) updates, a rise hysteresis_up (5).
    cold = SurvivalController(CFG)
    half = {**HEALTHY, "mc_status": 1.0}  # ORANGE -> Cat2 = 0.5 -> Rm 0.5: TURTLE
    assert cold.update(half, 0).posture == "TURTLE"
    broken = SurvivalController(CFG)
    assert broken.update({**HEALTHY, "ledger_ok": 0.0}, 0).posture == "HIBERNATE"
    warm = SurvivalController(CFG)
    assert warm.update(HEALTHY, 0).posture == "APEX"
    assert warm.update(half, MIN).posture == "APEX"  # one update below: not yet
    assert warm.update(half, 2 * MIN).posture == "TURTLE"
