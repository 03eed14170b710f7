"""The daily ExF factor table on the real shared indices, against values read by hand.

Expected values come straight from the raw files (``json`` / ``csv``, not the loader):
- F&G for day D is the CSV row dated D (published at D 00:00 UTC);
- DVOL for day D is the close of the daily candle stamped D − 1 (it closes at D 00:00);
- funding for day D is the latest 8-hourly print stamped at or before D 00:00, percent / 100;
- taker exists only for 2025-10-08 .. 2025-11-06 (30 candles);
- an observation older than 2 days at D 00:00 is stale: the factor is absent (NaN, NaT).
"""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pandas as pd
import pytest

from dolphin.core.errors import BadInputError
from dolphin.features.exf import FACTORS, MAX_AGE, ExfTable, load_factor_series
from dolphin.features.factor_table import default_span, factor_table, table_columns
from tests.kit.paths import SHARED_DATA, require

INDICES = SHARED_DATA / "indices"
DAY_MS = 86_400_000


def _ms(day: str) -> int:
    return int(pd.Timestamp(day, tz="UTC").value // 1_000_000)


def _raw(name: str) -> list[list[float]]:
    return json.loads(require(INDICES / name).read_text())


def _fng_rows() -> dict[str, float]:
    with require(INDICES / "fear_greed_index.csv").open() as f:
        return {row["Date"]: float(row["fng_value"]) for row in csv.DictReader(f)}


def _row(table: pd.DataFrame, day: str) -> pd.Series:
    return table.set_index("date").loc[pd.Timestamp(day, tz="UTC")]


@pytest.fixture(scope="module")
def table():
    return factor_table(load_factor_series(require(INDICES)))


@pytest.mark.parametrize("day", ["2018-02-01", "2021-04-14", "2024-03-05", "2026-02-24"])
def test_fng_of_a_day_is_the_csv_row_of_that_date(table, day):
    row = _row(table, day)
    assert row["fng"] == _fng_rows()[day]
    assert row["fng_asof"] == pd.Timestamp(day, tz="UTC")


def test_fng_carries_over_a_missing_row_until_it_is_stale(table):
    rows = _fng_rows()
    assert "2018-04-14" not in rows and "2018-04-16" not in rows  # 04-14 .. 04-16 are missing
    for day in ("2018-04-14", "2018-04-15"):  # 1 and 2 days old: still known
        assert _row(table, day)["fng"] == rows["2018-04-13"]
        assert _row(table, day)["fng_asof"] == pd.Timestamp("2018-04-13", tz="UTC")
    stale = _row(table, "2018-04-16")  # 3 days old: absent
    assert math.isnan(stale["fng"]) and pd.isna(stale["fng_asof"])
    assert _row(table, "2018-04-17")["fng"] == rows["2018-04-17"]


@pytest.mark.parametrize("day", ["2022-11-07", "2024-03-05", "2025-11-10"])
def test_dvol_of_a_day_is_the_close_of_the_candle_stamped_the_day_before(table, day):
    candles = dict((int(t), v) for t, v in _raw("dvol_btc.json"))
    row = _row(table, day)
    assert row["dvol_btc"] == candles[_ms(day) - DAY_MS]
    assert row["dvol_btc_asof"] == pd.Timestamp(day, tz="UTC")  # the candle's close


def test_dvol_is_absent_before_its_first_candle_closes_and_after_a_gap_goes_stale(table):
    candles = dict((int(t), v) for t, v in _raw("dvol_btc.json"))
    first = min(candles)
    assert first == _ms("2022-11-06")
    assert math.isnan(_row(table, "2022-11-06")["dvol_btc"])  # its candle closes on 11-07
    assert _ms("2025-11-11") not in candles  # no candle stamped 11-11: 11-12 uses 11-10's
    assert _row(table, "2025-11-12")["dvol_btc"] == candles[_ms("2025-11-10")]
    assert _row(table, "2025-11-12")["dvol_btc_asof"] == pd.Timestamp("2025-11-11", tz="UTC")
    assert math.isnan(_row(table, "2025-11-16")["dvol_btc"])  # last candle 11-12: 3 days old


@pytest.mark.parametrize("day", ["2022-11-04", "2023-07-10", "2025-11-01", "2025-11-03"])
def test_funding_is_the_latest_print_at_or_before_midnight_in_percent_over_100(table, day):
    prints = [(int(t), v) for t, v in _raw("funding_rate_btc.json")]
    t, v = max(p for p in prints if p[0] <= _ms(day))
    row = _row(table, day)
    assert row["funding_btc"] == pytest.approx(v / 100, rel=1e-15)
    assert row["funding_btc_asof"] == pd.Timestamp(t, unit="ms", tz="UTC")


def test_a_midnight_print_stamped_a_few_ms_late_is_not_known_at_midnight(table):
    prints = dict((int(t), v) for t, v in _raw("funding_rate_btc.json"))
    late = [t for t in prints if _ms("2025-11-01") < t < _ms("2025-11-01") + 1000]
    assert late, "the 2025-11-01 00:00 print is stamped after 00:00:00.000"
    row = _row(table, "2025-11-01")
    assert row["funding_btc_asof"] < pd.Timestamp("2025-10-31 16:00:01", tz="UTC")
    assert row["funding_btc_asof"] >= pd.Timestamp("2025-10-31 16:00", tz="UTC")


def test_taker_is_absent_outside_its_thirty_days(table):
    candles = dict((int(t), v) for t, v in _raw("taker_ratio_btc.json"))
    assert len(candles) == 30
    assert _row(table, "2025-10-08")["taker"] == candles[_ms("2025-10-07")]
    for day in ("2024-03-05", "2025-10-07", "2025-11-09"):
        row = _row(table, day)
        assert math.isnan(row["taker"]) and pd.isna(row["taker_asof"])


def test_table_agrees_with_the_acb_lookup_on_every_day(table):
    exf = ExfTable.from_dir(require(INDICES))
    every = exf.table([str(d.date()) for d in table["date"]])
    for name in FACTORS:
        np.testing.assert_array_equal(table[name].to_numpy(), every[name].to_numpy())


def test_as_of_times_are_known_by_the_day_start_and_fresh(table):
    assert list(table.columns) == table_columns()
    assert table["date"].diff().iloc[1:].eq(pd.Timedelta(days=1)).all()
    for name in FACTORS:
        asof, value = table[f"{name}_asof"], table[name]
        assert (asof.isna() == value.isna()).all()
        known = asof.notna()
        assert (asof[known] <= table["date"][known]).all()
        assert (table["date"][known] - asof[known] <= MAX_AGE).all()


def test_default_span_runs_from_the_first_to_the_last_day_anything_is_known(table):
    assert table["date"].iloc[0] == pd.Timestamp("2018-02-01", tz="UTC")  # first F&G row
    assert table["date"].iloc[-1] == pd.Timestamp("2026-02-24", tz="UTC")  # last F&G row


def _series(**stamps: list[tuple[str, float]]) -> dict[str, pd.Series]:
    return {name: pd.Series([v for _, v in rows], index=pd.DatetimeIndex(
        [pd.Timestamp(t, tz="UTC") for t, _ in rows])) for name, rows in stamps.items()}


def test_a_missing_factor_is_an_all_absent_column_and_the_span_ceils_to_days():
    s = _series(funding_btc=[("2024-01-01 08:00", 0.001), ("2024-01-01 16:00", np.nan)])
    assert default_span(s) == (pd.Timestamp("2024-01-02", tz="UTC"),) * 2
    t = factor_table(s)
    assert len(t) == 1 and t["funding_btc"].iloc[0] == 0.001  # the NaN print is no observation
    for name in ("dvol_btc", "fng", "taker"):
        assert t[name].isna().all() and t[f"{name}_asof"].isna().all()


@pytest.mark.parametrize(
    ("series", "start", "end", "needle"),
    [
        ({"vix": pd.Series(dtype=float)}, "2024-01-01", "2024-01-02", "unknown factors"),
        ({}, "2024-01-05", "2024-01-02", "end is before start"),
        ({}, "2024-01-01 06:00", "2024-01-02", "must be a UTC day"),
        ({}, "yesterday-ish", "2024-01-02", "not a date"),
        ({}, None, None, "no factor observations"),
    ],
)
def test_bad_requests_raise_bad_input_naming_the_problem(series, start, end, needle):
    with pytest.raises(BadInputError, match=needle):
        factor_table(series, start, end)
