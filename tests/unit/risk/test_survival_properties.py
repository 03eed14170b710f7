"""Property tests of the survival controller (Bible §11.2–§11.6) with hypothesis."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dolphin.core.config import SurvivalConfig
from dolphin.core.errors import ConfigError
from dolphin.risk.sensors import (
    Category,
    Sensor,
    deadband_decay,
    decay_profile,
    drawdown_sigmoid,
    sigmoid_profile,
)
from dolphin.risk.survival import SensorRegistry, SurvivalController, default_registry
from tests.kit.survival import HEALTHY, MIN

CFG = SurvivalConfig()
NAMES = default_registry(CFG).names()


#: How each stateless sensor gets worse: larger value, or smaller value.
WORSE_IF_LARGER = {
    "heartbeat_age_s",
    "mc_status",
    "mc_age_h",
    "exf_age_h",
    "ob_age_s",
    "ob_jitter_ms",
    "drawdown",
}
WORSE_IF_SMALLER = {"store_nodes", "ledger_ok", "ob_depth_quality", "ob_fill_probability"}

any_float = st.floats(allow_nan=True, allow_infinity=True)
sane = st.floats(min_value=-10.0, max_value=1e4, allow_nan=False)
readings_st = st.dictionaries(st.sampled_from(NAMES), any_float, max_size=len(NAMES))
steps_st = st.lists(st.tuples(readings_st, st.integers(0, 30 * MIN)), min_size=1, max_size=25)


def _worse(name: str, value: float, delta: float) -> float:
    if name == "ledger_ok":
        return 0.0
    return value + delta if name in WORSE_IF_LARGER else value - delta


def test_registry_holds_one_or_more_sensors_in_each_category():
    reg = default_registry(CFG)
    assert len(reg) == len(HEALTHY)
    assert all(reg.names(c) for c in Category)
    assert set(reg.names()) == set(HEALTHY)


def test_all_nominal_readings_give_rm_one_and_apex():
    out = SurvivalController(CFG).update(HEALTHY, 0)
    assert out.rm == 1.0 and out.posture == "APEX"
    assert out.categories == (1.0,) * 5 and out.drivers == ("",) * 5


@settings(max_examples=300, deadline=None)
@given(steps_st)
def test_rm_stays_in_unit_interval_for_any_input(steps):
    c = SurvivalController(CFG)
    t = 0
    for readings, dt in steps:
        t += dt
        out = c.update(readings, t)
        assert 0.0 <= out.rm <= 1.0
        assert all(0.0 <= v <= 1.0 for v in out.categories)
        assert out.posture in ("APEX", "STALKER", "TURTLE", "HIBERNATE")


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(WORSE_IF_LARGER | WORSE_IF_SMALLER)), any_float)
def test_nan_inf_or_missing_sensor_is_never_healthier_than_a_known_reading(name, bad):
    known = SurvivalController(CFG).update(HEALTHY, 0).rm
    missing = {k: v for k, v in HEALTHY.items() if k != name}
    nan = {**HEALTHY, name: math.nan}
    r_missing = SurvivalController(CFG).update(missing, 0)
    r_nan = SurvivalController(CFG).update(nan, 0)
    r_bad = SurvivalController(CFG).update({**HEALTHY, name: bad}, 0)
    assert r_missing.rm < known and r_nan.rm < known
    assert r_missing.rm == r_nan.rm <= r_bad.rm
    slot = int(default_registry(CFG)._sensors[name].category)
    assert r_nan.drivers[slot] == name


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries({k: sane for k in sorted(WORSE_IF_LARGER | WORSE_IF_SMALLER)}),
    st.sampled_from(sorted(WORSE_IF_LARGER | WORSE_IF_SMALLER)),
    st.floats(min_value=0.0, max_value=1e4),
)
def test_rm_is_monotone_non_increasing_as_any_sensor_degrades(base, name, delta):
    # a fill probability above 1 is no reading (the floor): degrading starts from a valid one
    base = {**base, "dvol": 50.0, "ob_fill_probability": min(base["ob_fill_probability"], 1.0)}
    worse = {**base, name: _worse(name, base[name], delta)}
    a = SurvivalController(CFG).update(base, 0)
    b = SurvivalController(CFG).update(worse, 0)
    assert b.r_target <= a.r_target
    assert b.rm <= a.rm
    assert all(y <= x for x, y in zip(a.categories, b.categories, strict=True))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(min_value=1.0, max_value=200.0), min_size=1, max_size=30),
    st.floats(min_value=CFG.dvol_shock_rise, max_value=5.0),
)
def test_a_dvol_shock_never_raises_rm(levels, rise):
    """Same history, then the last DVOL reading either repeats or spikes: the spike is never
    healthier, and it puts the environmental category at its floor at once."""
    a, b = SurvivalController(CFG), SurvivalController(CFG)
    for i, x in enumerate(levels):
        a.update({**HEALTHY, "dvol": x}, i * MIN)
        b.update({**HEALTHY, "dvol": x}, i * MIN)
    t = len(levels) * MIN
    calm = a.update({**HEALTHY, "dvol": levels[-1]}, t)
    shock = b.update({**HEALTHY, "dvol": levels[-1] * (1.0 + rise)}, t)
    assert shock.rm <= calm.rm
    assert shock.categories[Category.ENVIRONMENTAL] == CFG.shock_floor


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "heartbeat_age_s": st.floats(0, CFG.heartbeat_max_age_s),
                "store_nodes": st.floats(1, 9),
                "mc_age_h": st.floats(0, CFG.mc_deadband_h),
                "exf_age_h": st.floats(0, CFG.exf_deadband_h),
                "ob_age_s": st.floats(0, CFG.ob_deadband_s),
                "ob_jitter_ms": st.floats(0, CFG.ob_jitter_deadband_ms),
                "ob_depth_quality": st.floats(1, 3),
                "ob_fill_probability": st.floats(1, 1),
                "drawdown": st.floats(-1, 0),
            }
        ),
        min_size=1,
        max_size=40,
    )
)
def test_no_posture_change_while_sensors_move_inside_their_deadbands(seq):
    c = SurvivalController(CFG)
    for i, r in enumerate(seq):
        out = c.update({**r, "ledger_ok": 1.0, "mc_status": 0.0, "dvol": 50.0}, i * MIN)
        assert out.rm == 1.0 and out.posture == "APEX"


FAST = SurvivalConfig(recovery_alpha_per_min=100.0, recovery_rate_per_min=100.0)


def _identity_controller(cfg: SurvivalConfig = CFG) -> SurvivalController:
    """A controller whose Rm target is exactly the one capital reading (clamped to [0, 1])."""
    reg = SensorRegistry(
        [Sensor("x", Category.CAPITAL, lambda v: min(1.0, max(0.0, v)) if v == v else 0.0)]
    )
    return SurvivalController(cfg, reg)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.floats(
            min_value=CFG.stalker_threshold,
            max_value=CFG.apex_threshold + CFG.hysteresis_band,
            exclude_max=True,
        ),
        min_size=1,
        max_size=60,
    )
)
def test_no_posture_change_inside_the_hysteresis_band(values):
    c = _identity_controller()
    for i in range(CFG.hysteresis_down):
        c.update({"x": 0.8}, i * MIN)
    assert c.posture == "STALKER"
    for j, v in enumerate(values):
        assert c.update({"x": v}, (10 + j) * MIN).posture == "STALKER"


def test_one_bar_dip_does_not_change_posture_but_two_do():
    c = _identity_controller(FAST)  # instant recovery isolates the bar-count filter
    c.update({"x": 1.0}, 0)
    assert c.update({"x": 0.6}, MIN).posture == "APEX"
    assert c.update({"x": 1.0}, 2 * MIN).posture == "APEX"
    c.update({"x": 0.6}, 3 * MIN)
    assert c.update({"x": 0.6}, 4 * MIN).posture == "TURTLE"


def test_going_up_needs_five_consecutive_bars_above_threshold_plus_band():
    c = _identity_controller(FAST)
    c.update({"x": 0.6}, 0)
    c.update({"x": 0.6}, 1)
    assert c.posture == "TURTLE"
    assert c.update({"x": 0.76}, MIN).posture == "TURTLE"  # above 0.75 but inside the band
    postures = [c.update({"x": 1.0}, (2 + i) * MIN).posture for i in range(6)]
    assert postures == ["TURTLE"] * 4 + ["APEX", "APEX"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.integers(0, 20 * MIN)), min_size=2, max_size=40))
def test_recovery_is_never_faster_than_configured(seq):
    c = _identity_controller()
    t, last = 0, None
    for x, dt in seq:
        t += dt
        out = c.update({"x": x}, t)
        if last is not None and out.rm > last:
            dt_min = dt / MIN
            assert out.rm - last <= CFG.recovery_rate_per_min * dt_min + 1e-12
            assert (
                out.rm - last <= min(1.0, CFG.recovery_alpha_per_min * dt_min) * (x - last) + 1e-12
            )
        if last is not None and x <= last:
            assert out.rm == x  # fast attack: a drop is followed at once
        last = out.rm


@settings(max_examples=200, deadline=None)
@given(
    steps_st,
    st.sampled_from(
        [
            ("heartbeat_age_s", 31.0),
            ("store_nodes", 0.0),
            ("ledger_ok", 0.0),
            ("heartbeat_age_s", math.nan),
        ]
    ),
)
def test_invariant_break_gives_zero_and_hibernate_on_the_same_update(steps, brk):
    c = SurvivalController(CFG)
    t = 0
    for readings, dt in steps:
        t += dt
        c.update(readings, t)
    out = c.update({**HEALTHY, brk[0]: brk[1]}, t + 1)
    assert out.rm == 0.0 and out.posture == "HIBERNATE"
    assert out.drivers[Category.INVARIANT] == brk[0]


def test_correlated_collapse_halves_the_target():
    one = SurvivalController(CFG).update({**HEALTHY, "mc_status": 1.0}, 0)
    two = SurvivalController(CFG).update({**HEALTHY, "mc_status": 1.0, "ob_depth_quality": 0.0}, 0)
    assert one.degraded == 1 and one.r_target == pytest.approx(0.5)
    assert two.degraded == 2 and two.r_target == pytest.approx(0.5 * 0.3 * 0.5)


def test_new_sensor_plugs_into_a_category_without_controller_change():
    reg = default_registry(CFG).register(
        Sensor("slippage_drift_bps", Category.MICROSTRUCTURE, decay_profile(2.0, 5.0, 0.3))
    )
    out = SurvivalController(CFG, reg).update({**HEALTHY, "slippage_drift_bps": 7.0}, 0)
    assert out.drivers[Category.MICROSTRUCTURE] == "slippage_drift_bps"
    assert out.categories[Category.MICROSTRUCTURE] == pytest.approx(0.3 + 0.7 * math.exp(-1.0))
    with pytest.raises(ConfigError, match="registered twice"):
        reg.register(Sensor("drawdown", Category.CAPITAL, lambda v: 1.0))


def test_clock_is_injected_and_required():
    ticks = iter([0, MIN])
    c = SurvivalController(CFG, clock=lambda: next(ticks))
    assert c.update(HEALTHY).ts_ns == 0
    assert c.update(HEALTHY).ts_ns == MIN
    with pytest.raises(ConfigError, match="clock"):
        SurvivalController(CFG).update(HEALTHY)


@given(any_float)
def test_profiles_are_finite_and_bounded(x):
    for v in (
        deadband_decay(x, 1.0, 2.0, 0.3),
        decay_profile(1.0, 2.0, 0.3)(x),
        drawdown_sigmoid(x, 0.12, 30.0),
        sigmoid_profile(0.12, 30.0)(x),
    ):
        assert 0.0 <= v <= 1.0
    assert deadband_decay(x, 1.0, 2.0, 0.3) == decay_profile(1.0, 2.0, 0.3)(x)
    assert drawdown_sigmoid(x, 0.12, 30.0) == sigmoid_profile(0.12, 30.0)(x)


def test_capital_sigmoid_matches_bible_anchor_points():
    f = sigmoid_profile(CFG.dd_midpoint, CFG.dd_steepness)
    assert f(0.0) == 1.0
    assert f(0.05) > 0.89
    assert f(0.12) == pytest.approx(0.514, abs=0.001)
    assert f(0.20) == pytest.approx(0.085, abs=0.002)


def test_structural_decay_matches_bible_six_hour_deadband_three_hour_tau():
    f = decay_profile(CFG.mc_deadband_h, CFG.mc_tau_h)
    assert f(6.0) == 1.0
    assert f(9.0) == pytest.approx(math.exp(-1.0))
