"""Fuzzing the loaders and the config with mutations of real files: typed errors or sound data.

The engine, the reference checks and the campaign command live in ``tests/kit/fuzz.py``
(``.venv/bin/python -m tests.kit.fuzz --seed 7 --cases 10000`` runs a larger campaign).
"""

from __future__ import annotations

import msgspec
import numpy as np
import pandas as pd
import pytest

from dolphin.core.config import DolphinConfig
from dolphin.data import validate_bars
from tests.kit import fuzz
from tests.kit.builders import long_bars, real_bars
from tests.kit.paths import CONFIGS

SEED = 20_240_601
CASES = 2_000


def test_2000_mutated_real_files_give_a_typed_error_or_sound_data_never_a_traceback():
    report = fuzz.campaign(SEED, CASES)
    print(report.summary())
    assert report.failures == [], report.summary()
    assert sum(report.kinds.values()) == CASES
    assert set(report.formats) == set(fuzz.FORMATS)
    # Both outcomes are common, so the oracle is exercised on both sides.
    assert report.kinds["accepted"] > CASES // 10
    assert report.kinds["refused"] > CASES // 2
    assert len(report.mutations) >= 80


def test_a_case_depends_only_on_seed_and_number(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    first = fuzz.make_case(7, 123, tmp_path / "a")
    fuzz.make_case(7, 5, tmp_path / "c")  # another case in between changes nothing
    again = fuzz.make_case(7, 123, tmp_path / "b")
    assert (first.fmt, first.steps, first.raw) == (again.fmt, again.steps, again.raw)


def test_unmutated_cases_must_load_unchanged(tmp_path):
    for index in range(200):
        work = tmp_path / str(index)
        work.mkdir()
        case = fuzz.make_case(SEED, index, work)
        if case.expected is not None:
            assert fuzz.run_case(case).kind == "accepted"
            return
    pytest.fail("no unmutated case among the first 200")


# --- The reference checks catch what they claim to catch (test helpers are tested) ----------


def _sound() -> pd.DataFrame:
    return validate_bars(pd.concat([real_bars("BTCUSDT", 6), real_bars("ETHUSDT", 6)]))


def test_bar_violations_pass_real_bars():
    assert fuzz.bar_violations(_sound()) == []


@pytest.mark.parametrize(
    ("break_it", "needle"),
    [
        (lambda d: d.assign(high=d["low"] * 0.5), "high < low"),
        (lambda d: d.assign(open=d["high"] * 2), "open outside"),
        (lambda d: d.assign(close=d["low"] / 2), "close outside"),
        (lambda d: d.assign(low=np.nan), "price not finite"),
        (lambda d: d.assign(volume=-1.0), "volume"),
        (lambda d: d.assign(volume=np.inf), "volume"),
        (
            lambda d: d.iloc[[1, 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]].reset_index(drop=True),
            "strictly",
        ),
        (lambda d: d.iloc[[0, 0, 1, 2]].reset_index(drop=True), "strictly"),
        (lambda d: d.assign(timestamp=d["timestamp"] + pd.Timedelta(days=365 * 130)), "outside"),
        (lambda d: d.assign(close=d["close"].astype(np.float32)), "dtypes"),
        (lambda d: d.drop(columns="volume"), "columns"),
        (lambda d: d.assign(symbol=pd.Categorical([" "] * len(d))), "symbol"),
    ],
)
def test_bar_violations_flag_each_broken_rule(break_it, needle):
    problems = fuzz.bar_violations(break_it(_sound()))
    assert any(needle in p for p in problems), problems


def test_config_violations_pass_the_blue_config_and_flag_broken_files():
    blue = (CONFIGS / "blue.yml").read_bytes()
    assert fuzz.config_violations(DolphinConfig(), blue) == []
    assert fuzz.config_violations(DolphinConfig(), b"seed: 1\nseed: 1\n") == [
        "duplicate key 'seed'"
    ]
    assert fuzz.config_violations(DolphinConfig(), b"\xff") == ["accepted a file that is not UTF-8"]
    flat = fuzz.config_violations(DolphinConfig(), b"seed: 42\nalpha: {seed: 42}\n")
    assert flat == ["'seed' given flat and in alpha"]
    broken = msgspec.structs.replace(
        DolphinConfig(), alpha=msgspec.structs.replace(DolphinConfig().alpha, fraction=np.nan)
    )
    assert "non-finite value nan" in fuzz.config_violations(broken, b"")


def _first_case(tmp_path, fmt: str, mutated: bool) -> fuzz.Case:
    for index in range(2_000):
        work = tmp_path / str(index)
        work.mkdir()
        case = fuzz.make_case(SEED, index, work)
        if case.fmt == fmt and (case.expected is None) == mutated:
            return case
    raise AssertionError(f"no {fmt} case")


def test_run_case_reports_a_raw_exception_as_a_traceback(tmp_path, monkeypatch):
    def crash(path, symbol=None):
        raise KeyError("boom")

    monkeypatch.setattr("dolphin.data.load_bars", crash)
    out = fuzz.run_case(_first_case(tmp_path, "json", mutated=True))
    assert out.kind == "traceback"
    assert "KeyError" in out.detail


def test_run_case_reports_silently_accepted_bad_data_as_a_violation(tmp_path, monkeypatch):
    broken = long_bars(periods=4).assign(high=1.0)
    monkeypatch.setattr("dolphin.data.load_bars", lambda path, symbol=None: broken)
    assert fuzz.run_case(_first_case(tmp_path, "csv_ms", mutated=True)).kind == "violation"


def test_run_case_reports_an_unmutated_file_that_loads_changed(tmp_path, monkeypatch):
    case = _first_case(tmp_path, "long_parquet", mutated=False)
    wrong = case.expected.assign(volume=case.expected["volume"] + 1.0)
    monkeypatch.setattr("dolphin.data.load_bars", lambda path, symbol=None: wrong)
    out = fuzz.run_case(case)
    assert (out.kind, out.detail) == ("violation", "unmutated file did not load unchanged")
