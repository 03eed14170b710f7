"""MC-Forewarner: §12 rules, outcome maths, training on a synthetic table, shipped model set."""

from __future__ import annotations

import itertools
import json
import math
import threading

import numpy as np
import pandas as pd
import pytest

from dolphin.alpha import layout as lay
from dolphin.alpha.engine import NDAlphaEngine
from dolphin.cli import main
from dolphin.core.config import DolphinConfig
from dolphin.core.errors import BadInputError, ConfigError
from dolphin.risk import mc_models
from dolphin.risk.forewarner import (
    FEATURES,
    MC_STATUSES,
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
    status_codes,
    status_of,
    training_hash,
)
from dolphin.risk.mc_models import (
    DEFAULT_DIR,
    ForewarnerGate,
    ModelSet,
    assess,
    day_status_codes,
    default_gate,
    load,
    load_cached,
    save,
    train,
)
from dolphin.risk.sensors import MC_STATUS_CODE


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


# ---------------------------------------------------------------- batch status codes
def test_status_codes_equal_status_of_cell_by_cell_at_the_boundaries():
    ps = [0.0, 0.10, 0.1000001, 0.25, 0.2500001, 1.0, math.nan]
    es = [-2.0, -1.0000001, -1.0, -1e-12, 0.0, 1.0, math.nan]
    grid = list(itertools.product(ps, es, [True, False]))
    p, e, inside = (np.array(col) for col in zip(*grid, strict=True))
    codes = status_codes(p, e, inside)
    assert codes.dtype == np.int8
    assert [MC_STATUSES[c] for c in codes] == [status_of(*cell) for cell in grid]


def test_status_code_table_agrees_with_the_survival_sensor_readings():
    assert {name: float(code) for code, name in enumerate(MC_STATUSES)} == MC_STATUS_CODE


def _mixed_configs(rng: np.random.Generator) -> list[DolphinConfig]:
    """Configs inside RANGES, outside them (each feature in turn), and duplicates."""
    inside = [config_from_row(r) for r in draw_configs(24, rng).to_dict("records")]
    outside = [
        DolphinConfig().replace(fraction=0.5),  # inside; its leverage 20 below is not
        DolphinConfig().replace(fraction=0.9),
        DolphinConfig().replace(fixed_tp_pct=0.05),
        DolphinConfig().replace(max_hold_bars=500),
        DolphinConfig().replace(vel_div_threshold=-0.06, vel_div_extreme=-0.08),
        DolphinConfig().replace(fraction=0.01, max_leverage=0.5),
    ]
    return [*inside, *outside, inside[0], outside[0]]


@pytest.mark.parametrize("which", ["shipped", "synthetic"])
def test_day_status_codes_equal_the_per_cell_gate(which, request):
    models = load_cached() if which == "shipped" else request.getfixturevalue("synthetic_models")
    rng = np.random.default_rng(5)
    configs = _mixed_configs(rng)
    lev = rng.uniform(0.3, 20.0, size=(len(configs), 6))
    lev[:, 1] = lev[:, 0]  # repeated days
    lev[:, 2] = [c.alpha.max_leverage * 1.347 for c in configs]  # the engine's boost x base
    lev[:, 3] = 12.0  # the edge of the sampled range: still inside
    lev[len(configs) - 8, 4] = 20.0  # fraction 0.5 at leverage 20: outside the explored map
    codes = day_status_codes(models, configs, lev)
    assert codes.shape == lev.shape and codes.dtype == np.int8
    gates = [ForewarnerGate(models, c) for c in configs]
    per_cell = np.array(
        [
            [MC_STATUS_CODE[g.assess("2024-01-01", x).status] for x in row]
            for g, row in zip(gates, lev, strict=True)
        ]
    )
    np.testing.assert_array_equal(codes, per_cell)
    # never OK outside the explored region: leverage above 12, or any feature outside RANGES
    assert (codes[lev > RANGES["max_leverage"][1]] != 0).all()
    assert codes[len(configs) - 8, 4] != 0
    assert (codes[len(configs) - 7 : len(configs) - 2] != 0).all()
    assert len(set(codes.ravel().tolist())) >= 2  # the test sees more than one status


def test_day_status_codes_of_many_configs_predict_each_distinct_row_once(monkeypatch):
    models = load_cached()
    configs = [DolphinConfig().replace(max_leverage=x) for x in (2.0, 3.0)] * 50
    lev = np.tile([[1.0, 2.0, 2.0, 5.0]], (100, 1))
    calls = []
    real = ModelSet.predict

    def spy(self, x):
        calls.append(len(x))
        return real(self, x)

    monkeypatch.setattr(ModelSet, "predict", spy)
    codes = day_status_codes(models, configs, lev)
    assert calls == [3]  # the two configs share every feature but max_leverage: 3 leverages
    assert (codes == codes[0]).all()


def test_day_status_codes_reject_bad_shapes_and_non_finite_leverage():
    models, configs = load_cached(), [DolphinConfig()] * 2
    with pytest.raises(BadInputError, match="2 configs x days"):
        day_status_codes(models, configs, np.ones(2))
    with pytest.raises(BadInputError, match="2 configs x days"):
        day_status_codes(models, configs, np.ones((3, 4)))
    bad = np.ones((2, 3))
    bad[1, 2] = math.nan
    with pytest.raises(BadInputError, match="config 1, day 2 is not finite"):
        day_status_codes(models, configs, bad)
    assert day_status_codes(models, configs, np.ones((2, 0))).shape == (2, 0)
    assert day_status_codes(models, [], np.ones((0, 43))).shape == (0, 43)


def test_default_gate_uses_the_shipped_set_once_and_names_its_model():
    meta = json.loads((DEFAULT_DIR / "meta.json").read_text())
    a = default_gate(DolphinConfig())
    b = default_gate(DolphinConfig().replace(fraction=0.1))
    assert a.model_id == b.model_id == meta["version"] == meta["training_sha256"][:12]
    assert a.models is b.models  # loaded once per process
    assert b.base["fraction"] == 0.1 and a.base["fraction"] == DolphinConfig().alpha.fraction


# ---------------------------------------------------------------- atomic save
def _dummy(tag: str, blob_bytes: int = 0) -> ModelSet:
    """A model set whose four parts and meta all carry ``tag`` (to check they belong together)."""
    blob = np.random.default_rng(len(tag)).integers(0, 255, blob_bytes, dtype=np.uint8)
    return ModelSet(scaler=tag, classifier=blob, envelope=tag, guard=tag, meta={"version": tag})


def _same_set(m: ModelSet) -> bool:
    return m.scaler == m.envelope == m.guard == m.meta["version"]


def test_save_replaces_both_files_keeps_other_files_and_leaves_no_temporaries(tmp_path):
    d = tmp_path / "mc"
    save(_dummy("A"), d)
    (d / "README").write_text("keep me")
    save(_dummy("B"), d)
    again = load(d)
    assert again.scaler == "B" and again.meta["version"] == "B"
    assert (d / "README").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mc"]
    assert sorted(p.name for p in d.iterdir()) == ["README", "meta.json", "models.joblib"]


def test_a_failed_save_leaves_the_previous_set_and_no_temporaries(tmp_path, monkeypatch):
    d = tmp_path / "mc"
    save(_dummy("A"), d)
    bad = _dummy("B")
    bad.guard = threading.Lock()  # cannot be pickled: fails while writing models.joblib
    with pytest.raises(TypeError, match="pickle"):
        save(bad, d)

    def boom(path):
        raise OSError("disk full")

    monkeypatch.setattr(mc_models, "_fsync", boom)  # fails after both files are written
    with pytest.raises(OSError, match="disk full"):
        save(_dummy("C"), d)
    assert load(d).meta["version"] == "A" and _same_set(load(d))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mc"]


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "two-renames"])
def test_a_reader_never_sees_a_new_model_with_an_old_meta(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(mc_models, "_exchange", lambda a, b: False)
    d = tmp_path / "mc"
    save(_dummy("A", 200_000), d)
    done = threading.Event()
    seen: list[str] = []
    mixed: list[ModelSet] = []

    def read():
        while not done.is_set():
            m = load(d)
            seen.append(m.meta["version"])
            if not _same_set(m):
                mixed.append(m)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(16):
            save(_dummy("AB"[i % 2] * (1 + i % 3), 200_000), d)
    finally:
        done.set()
        reader.join()
    assert not mixed
    assert len(set(seen)) >= 2  # the reader did overlap with several saves
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mc"]


def test_concurrent_saves_use_unique_temporaries_and_end_with_one_whole_set(tmp_path):
    d = tmp_path / "mc"
    errors: list[BaseException] = []

    def write(tag: str):
        try:
            for _ in range(5):
                save(_dummy(tag, 50_000), d)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(t,)) for t in ("X", "YY", "ZZZ")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    final = load(d)
    assert _same_set(final) and final.meta["version"] in ("X", "YY", "ZZZ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mc"]


def test_load_cached_reloads_after_a_save(tmp_path):
    d = tmp_path / "mc"
    save(_dummy("A"), d)
    first = load_cached(d)
    assert load_cached(d) is first
    save(_dummy("B"), d)
    assert load_cached(d).meta["version"] == "B"
