"""Frozen, validated, hashable configuration.

The defaults are the frozen champion of the System Bible: §19.1 (alpha engine), §19.2 (ACB v6)
and §19.3 (survival thresholds), under the Bible's own parameter names (the §19.2 constants are
spelled in lower case: ``BETA_HIGH`` is ``beta_high``). ``config.id`` is the SHA-256 of the
canonical JSON (sorted keys, shortest float repr), so it is stable across runs and machines.

A YAML file may hold only some fields; they override the champion. Fields may be given inside
their section (``alpha: {fixed_tp_pct: 0.01}``) or flat (``fixed_tp_pct: 0.01``): every field
name is unique across sections. Unknown fields are rejected with the file and the field named
(and the nearest valid name); duplicate keys, NaN, ±inf and out-of-range values are rejected
with the offending value shown. Bounds live in the annotations, so they never enter ``id``.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import yaml

from dolphin.core.errors import ConfigError

# NaN and ±inf fail every bound, so ``le=_FMAX`` admits exactly the finite floats.
_FMAX = sys.float_info.max
Finite = Annotated[float, msgspec.Meta(ge=-_FMAX, le=_FMAX)]
Pos = Annotated[float, msgspec.Meta(gt=0, le=_FMAX)]
NonNeg = Annotated[float, msgspec.Meta(ge=0, le=_FMAX)]
Unit = Annotated[float, msgspec.Meta(ge=0, le=1)]
# Counts of bars, days, readings and orders: a million is far beyond any sensible setting
# (1M one-minute bars is ~2 years) and keeps every count a small exact int.
MAX_COUNT = 1_000_000
PosInt = Annotated[int, msgspec.Meta(gt=0, le=MAX_COUNT)]
NonNegInt = Annotated[int, msgspec.Meta(ge=0, le=MAX_COUNT)]
# numpy's legacy seeding (and most RNGs outside it) take a 32-bit seed.
Seed = Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)]
#: Deepest YAML nesting accepted; a config is two levels deep.
MAX_YAML_DEPTH = 20


class _Frozen(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every config section: keyword-only, immutable, strict."""


class AlphaConfig(_Frozen):
    """NDAlphaEngine parameters (Bible §4–§8, §13; champion values of §19.1)."""

    direction: Literal["short", "long"] = "short"
    # §4.1 signal gate
    vel_div_threshold: Finite = -0.02
    vel_div_extreme: Finite = -0.05
    long_threshold: Finite = 0.01
    long_extreme: Finite = 0.04
    # §6 sizing
    min_leverage: Pos = 0.5
    max_leverage: Pos = 5.0
    abs_max_leverage: Pos = 6.0
    stalker_max_leverage: Pos = 2.0
    leverage_convexity: Pos = 3.0
    fraction: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.20
    # §7 exits
    fixed_tp_pct: Pos = 0.0095
    stop_pct: Pos = 1.0
    max_hold_bars: PosInt = 120
    # §4.2 direction confirmation
    use_direction_confirm: bool = True
    dc_lookback_bars: PosInt = 7
    dc_min_magnitude_bps: NonNeg = 0.75
    dc_skip_contradicts: bool = True
    dc_leverage_boost: Pos = 1.0
    # §5 IRP asset selection
    use_asset_selection: bool = True
    min_irp_alignment: Unit = 0.45
    # §8 fees and OB edge
    use_sp_fees: bool = True
    use_sp_slippage: bool = True
    sp_maker_entry_rate: Unit = 0.62
    sp_maker_exit_rate: Unit = 0.50
    use_ob_edge: bool = True
    ob_edge_bps: NonNeg = 5.0
    ob_confirm_rate: Unit = 0.40
    # §7.2 / §13 alpha layers and loop
    use_alpha_layers: bool = True
    use_dynamic_leverage: bool = True
    lookback: NonNegInt = 100
    initial_capital: Pos = 25_000.0
    seed: Seed = 42
    # Windows and samples that shape results (kept in the config so ``id`` covers them).
    # §5.1: IRP looks at the last 50 bars; DESIGN.md: no entry while a 50-bar window spans a
    # flagged data gap; §6.4 gives no minimum sample for the bucket win rate: we require 5.
    irp_window_bars: PosInt = 50
    gap_window_bars: NonNegInt = 50
    bucket_min_trades: NonNegInt = 5
    # The Bible's HELL test: entries fill with p = 0.48, maker exits with p = 0.35.
    hell_entry_fill: Unit = 0.48
    hell_maker_exit_fill: Unit = 0.35
    # DESIGN.md "No price, no trade": a held asset without a real close for this many bars exits
    # at its last real close (DATA_END); 0 means ``max_hold_bars``.
    data_end_bars: NonNegInt = 0
    # Bible §22.3: the champion's bar-counted parameters were calibrated on 5 s bars.
    calibration_bar_seconds: PosInt = 5

    def __post_init__(self) -> None:
        if not self.vel_div_extreme < self.vel_div_threshold < 0:
            raise ConfigError(
                "alpha: need vel_div_extreme < vel_div_threshold < 0, got "
                f"vel_div_extreme={self.vel_div_extreme}, "
                f"vel_div_threshold={self.vel_div_threshold}"
            )
        if not 0 < self.long_threshold < self.long_extreme:
            raise ConfigError(
                "alpha: need 0 < long_threshold < long_extreme, got "
                f"long_threshold={self.long_threshold}, long_extreme={self.long_extreme}"
            )
        if not self.min_leverage <= self.max_leverage <= self.abs_max_leverage:
            raise ConfigError(
                "alpha: need min_leverage <= max_leverage <= abs_max_leverage, got "
                f"{self.min_leverage}, {self.max_leverage}, {self.abs_max_leverage}"
            )


class AcbConfig(_Frozen):
    """ACB v6 (Bible §10; frozen values of §19.2)."""

    beta_high: NonNeg = 0.8
    beta_low: NonNeg = 0.2
    w750_threshold_pct: Annotated[float, msgspec.Meta(ge=0, le=100)] = 60.0
    # §10.3 warm-up: beta stays beta_low until this many days' w750 medians have been observed
    w750_warmup_days: NonNegInt = 7
    funding_very_bearish: Finite = -0.0001
    funding_bearish: Finite = 0.0
    dvol_extreme: Finite = 80.0
    dvol_elevated: Finite = 55.0
    fng_extreme_fear: Finite = 25.0
    fng_fear: Finite = 40.0
    taker_selling: Finite = 0.8
    taker_mild_selling: Finite = 0.9

    def __post_init__(self) -> None:
        pairs = (
            ("funding_very_bearish", "funding_bearish", self.funding_very_bearish,
             self.funding_bearish),
            ("dvol_elevated", "dvol_extreme", self.dvol_elevated, self.dvol_extreme),
            ("fng_extreme_fear", "fng_fear", self.fng_extreme_fear, self.fng_fear),
            ("taker_selling", "taker_mild_selling", self.taker_selling, self.taker_mild_selling),
        )
        for lo_name, hi_name, lo, hi in pairs:
            if lo > hi:
                raise ConfigError(f"acb: need {lo_name} <= {hi_name}, got {lo} > {hi}")


class SurvivalConfig(_Frozen):
    """Survival stack posture thresholds and hysteresis (Bible §11.5–§11.6, §19.3)."""

    apex_threshold: Unit = 0.90
    stalker_threshold: Unit = 0.75
    turtle_threshold: Unit = 0.50
    hysteresis_down: PosInt = 2
    hysteresis_up: PosInt = 5
    recovery_rate_per_min: Pos = 0.05
    # §11.4 recovery gain (alpha = min(1, gain * dt_min)); seed 000 §VI.3 Schmitt gap on the way up
    recovery_alpha_per_min: Pos = 0.02
    hysteresis_band: Annotated[float, msgspec.Meta(ge=0, le=0.2)] = 0.02
    # §11.3 correlated-collapse penalty
    collapse_threshold: Unit = 0.8
    collapse_penalty: Unit = 0.5
    # §11.2 category response profiles (deadband, time constant, floor)
    heartbeat_max_age_s: Pos = 30.0
    mc_deadband_h: NonNeg = 6.0
    mc_tau_h: Pos = 3.0
    exf_deadband_h: NonNeg = 0.5
    exf_tau_h: Pos = 6.0
    ob_deadband_s: NonNeg = 2.0
    ob_tau_s: Pos = 60.0
    ob_stale_floor: Unit = 0.5
    ob_jitter_deadband_ms: NonNeg = 200.0
    ob_jitter_tau_ms: Pos = 1000.0
    depth_floor: Unit = 0.3
    shock_floor: Unit = 0.3
    shock_tau_min: Pos = 60.0
    dvol_shock_rise: Pos = 0.15
    dd_midpoint: Unit = 0.12
    dd_steepness: Pos = 30.0

    def __post_init__(self) -> None:
        if not self.turtle_threshold < self.stalker_threshold < self.apex_threshold:
            raise ConfigError(
                "survival: need turtle_threshold < stalker_threshold < apex_threshold, got "
                f"{self.turtle_threshold}, {self.stalker_threshold}, {self.apex_threshold}"
            )


class PreTradeConfig(_Frozen):
    """Online pre-trade limits (seed 004 §2.3); the champion's orders sit well inside them."""

    max_order_notional: Pos = 250_000.0
    max_position_notional: Pos = 250_000.0
    max_gross_leverage: Pos = 6.0
    max_orders_per_min: PosInt = 20


class ScannerConfig(_Frozen):
    """Eigenvalue scanner (DESIGN.md "Scans")."""

    windows: tuple[PosInt, ...] = (50, 150, 300, 750)
    instability_windows: tuple[PosInt, ...] = (50, 150)
    gap_fraction: Unit = 0.5
    recompute_every: PosInt = 1000

    def __post_init__(self) -> None:
        if len(self.windows) < 2 or any(w < 3 for w in self.windows):
            raise ConfigError(
                f"scanner: need at least two windows of >= 3 bars, got {self.windows}"
            )
        if list(self.windows) != sorted(set(self.windows)):
            raise ConfigError(f"scanner: windows must be strictly increasing, got {self.windows}")
        missing = [w for w in self.instability_windows if w not in self.windows]
        if missing:
            raise ConfigError(
                f"scanner: instability_windows {missing} are not among windows {self.windows}"
            )


Weekday = Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


class EsofConfig(_Frozen):
    """The EsoF meta-brake on sizing (seed 001 §4: "100 % of extreme wipeouts ... on Mondays,
    Thursdays or Sundays"), OFF in the champion: ``dolphin factors study`` finds no support for
    it in the shared data (docs/factors.md). When on, a day whose UTC weekday is in
    ``esof_brake_weekdays`` (or, with ``esof_brake_retrograde``, a day Mercury is retrograde at
    00:00 UTC) sizes every entry by ``esof_brake_mult``, through the day's size scale
    (``features.esof.brake_scale``), on every path that begins a day."""

    esof_brake: bool = False
    esof_brake_weekdays: tuple[Weekday, ...] = ("Mon", "Thu", "Sun")
    esof_brake_retrograde: bool = False
    esof_brake_mult: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.5


class DolphinConfig(_Frozen):
    """The whole resolved configuration. ``DolphinConfig()`` is the champion (blue)."""

    alpha: AlphaConfig = msgspec.field(default_factory=AlphaConfig)
    acb: AcbConfig = msgspec.field(default_factory=AcbConfig)
    survival: SurvivalConfig = msgspec.field(default_factory=SurvivalConfig)
    pretrade: PreTradeConfig = msgspec.field(default_factory=PreTradeConfig)
    scanner: ScannerConfig = msgspec.field(default_factory=ScannerConfig)
    esof: EsofConfig = msgspec.field(default_factory=EsofConfig)

    @property
    def id(self) -> str:
        """SHA-256 of the canonical JSON of this config."""
        return hashlib.sha256(canonical_json(self)).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON types only)."""
        return msgspec.to_builtins(self)

    def replace(self, **overrides: Any) -> DolphinConfig:
        """Return a copy with fields replaced; flat or sectioned names, validated."""
        return resolve_overrides(overrides, base=self, source="overrides")


#: Declared id of the frozen SHORT champion (``DolphinConfig()``). Production entry points refuse
#: any other id; a test pins it so a silent change of a default cannot pass unnoticed.
CHAMPION_BLUE_ID = "296b567fc547458d0d47b28d4961caa4c4c94b0f5144971234c109d18edc8f32"

SECTIONS: dict[str, type[_Frozen]] = {
    "alpha": AlphaConfig,
    "acb": AcbConfig,
    "survival": SurvivalConfig,
    "pretrade": PreTradeConfig,
    "scanner": ScannerConfig,
    "esof": EsofConfig,
}

FIELD_SECTION: dict[str, str] = {
    name: section for section, cls in SECTIONS.items() for name in cls.__struct_fields__
}
assert len(FIELD_SECTION) == sum(len(c.__struct_fields__) for c in SECTIONS.values()), (
    "config field names must be unique across sections"
)


#: Sections added after the champion was frozen: left out of the canonical JSON while at their
#: defaults (all off), so every id given before they existed still names the same config.
_LATE_SECTIONS: dict[str, type[_Frozen]] = {"esof": EsofConfig}


def canonical_json(config: DolphinConfig) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, shortest round-trip floats; a late section
    (``_LATE_SECTIONS``) at its defaults is left out."""
    late = [name for name, cls in _LATE_SECTIONS.items() if getattr(config, name) == cls()]
    if not late:
        return msgspec.json.encode(config, order="sorted")
    body = msgspec.to_builtins(config)
    for name in late:
        del body[name]
    return msgspec.json.encode(body, order="sorted")


def _suggest(name: object, candidates: Iterable[str]) -> str:
    """Return "; did you mean `x`?" for the valid name nearest to ``name``, or ""."""
    match = difflib.get_close_matches(str(name), list(candidates), n=1, cutoff=0.6)
    return f"; did you mean `{match[0]}`?" if match else ""


def _unknown_field(key: object, section: str | None, source: str) -> ConfigError:
    if section is None:
        hint = _suggest(key, [*SECTIONS, *FIELD_SECTION])
        return ConfigError(f"{source}: unknown field {key!r}{hint}")
    home = FIELD_SECTION.get(key) if isinstance(key, str) else None
    hint = (
        f"; it belongs in section {home!r}"
        if home
        else _suggest(key, SECTIONS[section].__struct_fields__)
    )
    return ConfigError(f"{source}: unknown field `{key}` in section {section!r}{hint}")


def _section_fields(key: str, value: Any, source: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(
            f"{source}: section {key!r} must be a mapping, got {type(value).__name__}"
        )
    for name in value:
        if name not in SECTIONS[key].__struct_fields__:
            raise _unknown_field(name, key, source)
    return value


def _split_overrides(data: dict[str, Any], source: str) -> dict[str, dict[str, Any]]:
    """Sort top-level keys into sections; flat field names are routed to their section.

    A field given twice (flat and inside its section) is refused: which one wins would be an
    accident of key order.
    """
    out: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for key, value in data.items():
        if key in SECTIONS:
            fields = _section_fields(key, value, source)
        elif key in FIELD_SECTION:
            fields = {key: value}
            key = FIELD_SECTION[key]
        else:
            raise _unknown_field(key, None, source)
        twice = sorted(set(fields) & set(out[key]))
        if twice:
            raise ConfigError(f"{source}: field {twice[0]!r} is given twice (flat and in {key!r})")
        out[key].update(fields)
    return out


def _check_finite(merged: dict[str, dict[str, Any]], source: str) -> None:
    """Refuse NaN and ±inf in every float field, whatever its annotation says."""
    for section, fields in merged.items():
        for name, value in fields.items():
            items = value if isinstance(value, (list, tuple)) else (value,)
            if any(isinstance(v, float) and not math.isfinite(v) for v in items):
                raise ConfigError(
                    f"{source}: {section}.{name} must be a finite number (value: {value!r})"
                )


_PATH_STEP = re.compile(r"\.([A-Za-z_]\w*)|\[(\d+)\]")


def _value_at(merged: dict[str, Any], message: str) -> str:
    """Return " (value: x)" for the ``$.section.field[i]`` path a msgspec error names, or ""."""
    match = re.search(r"at `\$((?:\.\w+|\[\d+\])+)`", message)
    if match is None:
        return ""
    value: Any = merged
    try:
        for name, index in _PATH_STEP.findall(match.group(1)):
            value = value[name] if name else value[int(index)]
    except (KeyError, IndexError, TypeError):
        return ""
    return f" (value: {value!r})"


def resolve_overrides(
    data: dict[str, Any], *, base: DolphinConfig | None = None, source: str = "<dict>"
) -> DolphinConfig:
    """Apply a partial mapping of overrides on top of ``base`` (default: the champion)."""
    base = base if base is not None else DolphinConfig()
    merged = base.to_dict()
    for section, fields in _split_overrides(data, source).items():
        merged[section].update(fields)
    _check_finite(merged, source)
    try:
        return msgspec.convert(merged, DolphinConfig)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except msgspec.ValidationError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, ConfigError):
            raise ConfigError(f"{source}: {cause}") from None
        raise ConfigError(f"{source}: {exc}{_value_at(merged, str(exc))}") from None


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and nesting deeper than ``MAX_YAML_DEPTH``."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # merge keys may override on purpose
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # unhashable: the base class reports it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"found duplicate key {key!r}", key_node.start_mark,
                    )  # fmt: skip
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, name: str) -> Any:
    """Parse YAML ``text`` strictly (no duplicate keys, bounded depth); ``name`` is for marks."""
    loader = _StrictLoader(text)
    loader.name = name
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml_file(path: str | Path, what: str = "config") -> Any:
    """Read a YAML file strictly (UTF-8, no duplicate keys, bounded depth); typed errors only."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read {what} ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{p}: not UTF-8 text (byte {raw[exc.start : exc.start + 1]!r} at offset {exc.start})"
        ) from None
    try:
        return parse_yaml(text, str(p))
    except RecursionError:
        raise ConfigError(f"{p}: not valid YAML (nested too deeply)") from None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
        # PyYAML's constructors raise plain ValueError on e.g. a date like 2021-02-30.
        raise ConfigError(f"{p}: not valid YAML ({exc})") from None


def load_config(path: str | Path | None = None) -> DolphinConfig:
    """Load a YAML file of overrides on top of the champion; ``None`` gives the champion."""
    if path is None:
        return DolphinConfig()
    p = Path(path)
    data = read_yaml_file(p, "config")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: top level must be a mapping, got {type(data).__name__}")
    return resolve_overrides(data, source=str(p))


def dump_yaml(config: DolphinConfig) -> str:
    """Human-readable YAML of the resolved config."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def require_champion(config: DolphinConfig, *, entry_point: str) -> DolphinConfig:
    """Refuse any config but the declared champion at a production entry point.

    Research commands (backtest, sweep) accept any valid config; paper, live and the daily flows
    call this so a drifted default or a stray override can never trade real money unnoticed.
    """
    if config.id != CHAMPION_BLUE_ID:
        raise ConfigError(
            f"{entry_point}: config id {config.id} is not the declared champion "
            f"{CHAMPION_BLUE_ID}; production entry points run only the champion"
        )
    return config
