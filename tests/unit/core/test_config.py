from __future__ import annotations

import msgspec
import pytest

from dolphin.core.config import (
    CHAMPION_BLUE_ID,
    DolphinConfig,
    canonical_json,
    load_config,
    resolve_overrides,
)
from dolphin.core.errors import ConfigError
from tests.kit.paths import CONFIGS


def test_defaults_are_the_bible_champion():
    a = DolphinConfig().alpha
    assert a.vel_div_threshold == -0.02
    assert a.vel_div_extreme == -0.05
    assert (a.min_leverage, a.max_leverage, a.abs_max_leverage) == (0.5, 5.0, 6.0)
    assert a.leverage_convexity == 3.0
    assert a.fraction == 0.20
    assert a.fixed_tp_pct == 0.0095
    assert a.stop_pct == 1.0
    assert a.max_hold_bars == 120
    assert (a.dc_lookback_bars, a.dc_min_magnitude_bps, a.dc_skip_contradicts) == (7, 0.75, True)
    assert a.min_irp_alignment == 0.45
    assert (a.sp_maker_entry_rate, a.sp_maker_exit_rate) == (0.62, 0.50)
    assert (a.ob_edge_bps, a.ob_confirm_rate) == (5.0, 0.40)
    assert (a.lookback, a.seed) == (100, 42)


def test_acb_and_survival_defaults_match_bible_19_2_and_19_3():
    c = DolphinConfig()
    assert (c.acb.beta_high, c.acb.beta_low, c.acb.w750_threshold_pct) == (0.8, 0.2, 60)
    assert c.acb.funding_very_bearish == -0.0001
    assert (c.acb.dvol_extreme, c.acb.fng_extreme_fear, c.acb.taker_selling) == (80, 25, 0.8)
    s = c.survival
    assert (s.apex_threshold, s.stalker_threshold, s.turtle_threshold) == (0.90, 0.75, 0.50)
    assert (s.hysteresis_down, s.hysteresis_up) == (2, 5)
    # §11.2 response profiles, §11.3 collapse penalty, §11.4 recovery
    assert (s.recovery_rate_per_min, s.recovery_alpha_per_min) == (0.05, 0.02)
    assert (s.collapse_threshold, s.collapse_penalty) == (0.8, 0.5)
    assert (s.heartbeat_max_age_s, s.mc_deadband_h, s.mc_tau_h) == (30.0, 6.0, 3.0)
    assert (s.shock_floor, s.shock_tau_min, s.ob_stale_floor, s.depth_floor) == (0.3, 60, 0.5, 0.3)
    assert (s.dd_midpoint, s.dd_steepness) == (0.12, 30.0)


def test_champion_id_is_pinned_and_stable():
    assert DolphinConfig().id == CHAMPION_BLUE_ID
    assert DolphinConfig().id == DolphinConfig().id
    assert len(CHAMPION_BLUE_ID) == 64


def test_id_changes_with_any_field():
    assert resolve_overrides({"fixed_tp_pct": 0.0096}).id != CHAMPION_BLUE_ID
    assert resolve_overrides({"seed": 43}).id != CHAMPION_BLUE_ID


def test_canonical_json_has_sorted_keys():
    decoded = msgspec.json.decode(canonical_json(DolphinConfig()))
    assert list(decoded) == sorted(decoded)
    assert list(decoded["alpha"]) == sorted(decoded["alpha"])


def test_blue_yaml_resolves_to_champion():
    assert load_config(CONFIGS / "blue.yml").id == CHAMPION_BLUE_ID


def test_green_yaml_is_long_and_otherwise_champion():
    g = load_config(CONFIGS / "green.yml")
    assert g.alpha.direction == "long"
    assert g.alpha.long_threshold == 0.01
    assert g.alpha.fixed_tp_pct == DolphinConfig().alpha.fixed_tp_pct
    assert g.id != CHAMPION_BLUE_ID


def test_partial_yaml_overrides_flat_and_sectioned(tmp_path):
    f = tmp_path / "x.yml"
    f.write_text("fixed_tp_pct: 0.012\nalpha:\n  max_hold_bars: 60\n")
    c = load_config(f)
    assert c.alpha.fixed_tp_pct == 0.012
    assert c.alpha.max_hold_bars == 60
    assert c.alpha.vel_div_threshold == -0.02


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("bogus: 1\n", "unknown field 'bogus'"),
        ("alpha:\n  bogus: 1\n", "unknown field `bogus`"),
        ("fraction: 1.5\n", "$.alpha.fraction"),
        ("max_hold_bars: soon\n", "$.alpha.max_hold_bars"),
        ("vel_div_threshold: -0.09\n", "vel_div_extreme < vel_div_threshold"),
        ("apex_threshold: 0.6\n", "stalker_threshold < apex_threshold"),
        ("windows: [50]\n", "at least two windows"),
        ("- 1\n- 2\n", "top level must be a mapping"),
        ("alpha: 3\n", "section 'alpha' must be a mapping"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_bad_yaml_raises_config_error_naming_file_and_field(tmp_path, text, needle):
    f = tmp_path / "bad.yml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert str(f) in str(info.value)
    assert needle in str(info.value)


def test_missing_config_file_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yml")


def test_config_is_frozen():
    c = DolphinConfig()
    with pytest.raises(AttributeError):
        c.alpha.fraction = 0.5  # type: ignore[misc]


def test_replace_returns_validated_copy():
    c = DolphinConfig().replace(max_leverage=4.0)
    assert c.alpha.max_leverage == 4.0
    with pytest.raises(ConfigError):
        DolphinConfig().replace(max_leverage=9.0)


def test_production_entry_points_accept_only_the_champion():
    from dolphin.core.config import require_champion

    assert require_champion(DolphinConfig(), entry_point="paper").id == CHAMPION_BLUE_ID
    with pytest.raises(ConfigError, match=r"paper: config id .* is not the declared champion"):
        require_champion(DolphinConfig().replace(fixed_tp_pct=0.01), entry_point="paper")
