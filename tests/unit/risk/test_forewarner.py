"""MC-Forewarner: §12 rules, outcome maths, training on a synthetic table, shipped model set."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dolphin.alpha import layout as lay
from dolphin.alpha.engine import NDAlphaEngine
from dolphin.cli import main
from dolphin.core.config import DolphinConfig
from dolphin.core.errors import ConfigError
from dolphin.risk.forewarner import (
    FEATURES,
    RANGES,
    ForewarnerMcReport,
    bootstrap_path,
    config_from_row,
    daily_returns,
    draw_configs,
    envelope_score,
    in_ranges,
    label,
    path_outcome,
    status_of,
    training_hash,
)
from dolphin.risk.mc_models import DEFAULT_DIR, ForewarnerGate, assess, load, save, train


@pytest.mark.parametrize(
    ("p", "e", "inside", "status"),
    [
        (0.26, 1.0, True, "RED"),
        (0.0, -1.01, True, "RED"),
        (0.11, 1.0, True, "ORANGE"),
        (0.0, -0.01, True, "ORANGE"),
        (0.10, 0.0, True, "OK"),
        (0.0, 1.0, False, "ORANGE"),
        (0.30, 1.0, False, "RED"),
    ],
)
def test_status_follows_bible_12_and_outside_is_never_ok(p, e, inside, status):
    assert status_of(p, e, inside) == status
    assert ForewarnerMcReport(p, e, inside).status == status


def test_envelope_is_negative_exactly_when_catastrophic():
    roi = np.array([0.1, -0.11, 0.0, 0.05, -0.2])
    dd = np.array([0.05, 0.05, 0.21, 0.30, 0.1])
    lab = label(pd.DataFrame({"roi": roi, "max_dd": dd}))
    assert (lab["catastrophic"] == (lab["envelope"] < 0)).all()
    assert envelope_score(np.array([0.0]), np.array([0.30]))[0] == pytest.approx(-1.0)
    assert envelope_score(np.array([-0.20]), np.array([0.0]))[0] == pytest.approx(-1.0)


def test_path_outcome_and_bootstrap():
    roi, dd = path_outcome(np.array([0.10, -0.5, 0.2]))
    assert roi == pytest.approx(1.1 * 0.5 * 1.2 - 1)
    assert dd == pytest.approx(0.5)
    r = np.arange(10.0)
    b = bootstrap_path(r, np.random.default_rng(0), block=3)
    assert len(b) == 10 and set(b) <= set(r)
    diffs = np.diff(b)[[0, 1, 3, 4, 6, 7]]  # inside each block of 3 the days are consecutive
    assert (diffs == 1).all()


def test_daily_returns_charge_slippage_on_both_sides():
    days = pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC")
    trades = pd.DataFrame(
        {
            "pnl": [100.0, -50.0],
            "notional": [10_000.0, 10_000.0],
            "exit_time": pd.to_datetime(["2024-01-01 10:00", "2024-01-03 10:00"], utc=True),
        }
    )
    r = daily_returns(trades, days, 1_000.0, slip=0.001)
    assert r == pytest.approx([80 / 1000, 0.0, -70 / 1080])


def test_drawn_configs_are_valid_and_inside_their_ranges():
    df = draw_configs(200, np.random.default_rng(1))
    assert list(df.columns) == list(FEATURES)
    for _, row in df.iterrows():
        assert in_ranges(row.to_numpy())
        cfg = config_from_row(row)
        assert cfg.alpha.max_leverage == pytest.approx(row["max_leverage"])
    assert not in_ranges(np.array([RANGES[f][1] * 2 + 1 for f in FEATURES]))
    assert not in_ranges(np.full(len(FEATURES), np.nan))


def synthetic_samples(n_runs: int = 300, paths: int = 3) -> pd.DataFrame:
    """Outcomes whose blow-up risk grows with leverage x fraction (a known truth to learn)."""
    rng = np.random.default_rng(3)
    cfg = draw_configs(n_runs, rng)
    rows = []
    for i, row in cfg.iterrows():
        risk = row["max_leverage"] * row["fraction"]
        for _ in range(paths):
            dd = min(1.0, abs(rng.normal(0.05 * risk, 0.03)))
            rows.append({**row.to_dict(), "run_id": i, "roi": 0.05 - dd / 2, "max_dd": dd})
    return label(pd.DataFrame(rows))


@pytest.fixture(scope="module")
def synthetic_models():
    return train(synthetic_samples())


def test_training_learns_a_known_risk_and_reports_held_out_numbers(synthetic_models):
    v = synthetic_models.meta["validation"]
    assert v["configs"] == 60 and v["true_red"] > 5
    assert v["red_precision"] > 0.7 and v["red_recall"] > 0.7
    safe = {
        "max_leverage": 2.0,
        "fraction": 0.1,
        "fixed_tp_pct": 0.01,
        "max_hold_bars": 100,
        "vel_div_threshold": -0.02,
    }
    risky = {**safe, "max_leverage": 11.0, "fraction": 0.7}
    a, b = assess(synthetic_models, safe, 0), assess(synthetic_models, risky, 0)
    assert a.status == "OK" and a.inside_explored
    assert b.status == "RED" and b.catastrophic_probability > 0.25


def test_outside_the_explored_region_is_never_ok(synthetic_models):
    far = {
        "max_leverage": 2.0,
        "fraction": 0.1,
        "fixed_tp_pct": 0.2,
        "max_hold_bars": 100,
        "vel_div_threshold": -0.02,
    }
    out = assess(synthetic_models, far, 0)
    assert not out.inside_explored and out.status != "OK"


def test_version_is_the_training_hash_and_save_load_round_trips(synthetic_models, tmp_path):
    df = synthetic_samples()
    assert synthetic_models.meta["version"] == training_hash(df)[:12]
    assert training_hash(df) != training_hash(df.assign(roi=df["roi"] + 1e-9))
    save(synthetic_models, tmp_path / "m")
    again = load(tmp_path / "m")
    assert again.meta == json.loads((tmp_path / "m" / "meta.json").read_text())
    x = draw_configs(5, np.random.default_rng(9)).to_numpy()
    for a, b in zip(synthetic_models.predict(x), again.predict(x), strict=True):
        np.testing.assert_array_equal(a, b)
    age = assess(again, DolphinConfig(), again.meta["created_ns"] + 86_400 * 10**9 * 3)
    assert age.model_age_days == pytest.approx(3.0)
    with pytest.raises(ConfigError, match="no MC-Forewarner model set"):
        load(tmp_path / "nothing")


def test_gate_plugs_into_the_engine_and_red_halts_the_day(synthetic_models):
    risky = DolphinConfig().replace(fraction=0.8, max_leverage=6.0)
    eng = NDAlphaEngine(risky, ["BTCUSDT"], mc_gate=ForewarnerGate(synthetic_models, risky))
    eng.begin_day("2024-01-01")
    assert eng.end_day().mc_status == "RED"
    assert eng.state[lay.S_HALT] == 1.0  # §12: RED halts new entries for the day
    eng.set_posture("APEX")  # a better posture mid-day never lifts an MC RED halt
    assert eng.state[lay.S_HALT] == 1.0


def test_shipped_model_set_assesses_the_champion_on_a_fresh_checkout(capsys):
    meta = json.loads((DEFAULT_DIR / "meta.json").read_text())
    assert len(meta["training_sha256"]) == 64 and meta["samples"] >= 1000
    assert sum(f.stat().st_size for f in DEFAULT_DIR.iterdir()) < 600_000
    assert main(["mc", "assess"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["status"] in ("OK", "ORANGE", "RED")
    assert out["model_version"] == meta["version"] and out["model_age_days"] >= 0
    assert 0.0 <= out["catastrophic_probability"] <= 1.0
