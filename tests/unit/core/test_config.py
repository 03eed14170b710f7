from __future__ import annotations

import msgspec
import pytest

from dolphin.core.config import (
    CHAMPION_BLUE_ID,
    MAX_COUNT,
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
        ("seed: 1\nseed: 2\n", "duplicate key 'seed'"),
        ("alpha:\n  seed: 1\n  fraction: 0.2\n  seed: 2\n", "line 4"),
        ("alpha:\n  seed: 1\nalpha:\n  fraction: 0.2\n", "duplicate key 'alpha'"),
        ("seed: 1\nalpha:\n  seed: 2\n", "field 'seed' is given twice"),
        ("max_levrage: 3\n", "unknown field 'max_levrage'; did you mean `max_leverage`?"),
        ("alpha:\n  max_levrage: 3\n", "did you mean `max_leverage`?"),
        ("alpha:\n  beta_high: 0.5\n", "it belongs in section 'acb'"),
        ("alpa:\n  seed: 1\n", "did you mean `alpha`?"),
        ("fraction: 1.5\n", "(value: 1.5)"),
        ("fixed_tp_pct: .nan\n", "alpha.fixed_tp_pct must be a finite number (value: nan)"),
        ("windows: [50, .inf]\n", "must be a finite number"),
        ("initial_capital: 1.0e+999\n", "(value: inf)"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper than 20"),
        ("seed: 2021-02-30\n", "not valid YAML"),
        ("seed: !!python/none ''\n", "not valid YAML"),
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


def _leaf_fields(kind: type) -> list[tuple[str, object]]:
    """Return ``(field, default)`` for every field whose default is a ``kind`` (bools aside)."""
    tree = DolphinConfig().to_dict()
    return [
        (name, value)
        for fields in tree.values()
        for name, value in fields.items()
        if isinstance(value, kind) and not isinstance(value, bool)
    ]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("name", [n for n, _ in _leaf_fields(float)])
def test_every_float_field_refuses_nan_and_inf_showing_the_value(name, bad):
    with pytest.raises(ConfigError) as info:
        resolve_overrides({name: bad}, source="x.yml")
    assert name in str(info.value)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("name", [n for n, _ in _leaf_fields(int)])
def test_every_int_field_has_an_upper_bound_and_shows_the_value(name):
    with pytest.raises(ConfigError) as info:
        resolve_overrides({name: 10**12}, source="x.yml")
    assert name in str(info.value)
    assert "1000000000000" in str(info.value)


def test_int_bounds_are_inclusive_and_sensible():
    assert resolve_overrides({"max_hold_bars": MAX_COUNT}).alpha.max_hold_bars == MAX_COUNT
    assert resolve_overrides({"seed": 2**32 - 1}).alpha.seed == 2**32 - 1
    with pytest.raises(ConfigError, match=r"\$\.alpha\.seed.*4294967296"):
        resolve_overrides({"seed": 2**32})
    with pytest.raises(ConfigError, match=r"windows\[1\].*\(value: 10000000\)"):
        resolve_overrides({"windows": [50, 10**7], "instability_windows": [50]})


def test_bounds_leave_the_default_values_and_so_the_id_unchanged():
    body = msgspec.to_builtins(DolphinConfig())
    del body["esof"]  # a section added after the champion was frozen, left out while off
    plain = msgspec.json.encode(body, order="sorted")
    assert canonical_json(DolphinConfig()) == plain
    assert load_config(CONFIGS / "blue.yml").id == DolphinConfig().id


def test_the_esof_brake_section_keeps_the_champion_id_while_off(tmp_path):
    f = tmp_path / "esof_off.yml"
    f.write_text("esof:\n  esof_brake: false\n  esof_brake_mult: 0.5\n", encoding="utf-8")
    assert load_config(f).id == CHAMPION_BLUE_ID
    on = DolphinConfig().replace(esof_brake=True)
    assert on.id != CHAMPION_BLUE_ID and on.esof.esof_brake_weekdays == ("Mon", "Thu", "Sun")
    assert on.replace(esof_brake_mult=0.25).id != on.id
    with pytest.raises(ConfigError):
        DolphinConfig().replace(esof_brake_weekdays=("Monday",))
    with pytest.raises(ConfigError):
        DolphinConfig().replace(esof_brake_mult=0.0)


def test_non_utf8_yaml_is_a_config_error_naming_the_byte(tmp_path):
    f = tmp_path / "bad.yml"
    f.write_bytes(b"alpha:\n  seed: \xff\n")
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte b'\\xff' at offset 15\)"):
        load_config(f)


def test_yaml_with_bom_and_merge_keys_still_loads(tmp_path):
    f = tmp_path / "ok.yml"
    f.write_text("\ufeffalpha:\n  <<: {seed: 7, fraction: 0.1}\n  seed: 8\n", encoding="utf-8")
    c = load_config(f)
    assert (c.alpha.seed, c.alpha.fraction) == (8, 0.1)
