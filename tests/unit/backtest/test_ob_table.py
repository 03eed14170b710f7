"""Recorded OB features: loading, the as-of alignment to bars, RecordedOb, OB-4 daily stress.

Every expected value is written down from the OBF contract's rules (a bar's scan is known at
open + bar length; the latest row at or before then, at most ``max_age_s`` old, else neutral).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dolphin.alpha import layout as lay
from dolphin.alpha.engine import NDAlphaEngine
from dolphin.alpha.session import DayProtocol, acb_days
from dolphin.backtest.ob_table import ObTable, RecordedOb, recorded_ob
from dolphin.core.config import DolphinConfig
from dolphin.core.errors import (
    DataError,
    DuplicateTimestampError,
    MissingColumnError,
    TimestampError,
    UnsortedTimestampError,
)
from dolphin.risk.acb import AdaptiveCircuitBreaker
from tests.kit.ob import NEUTRAL_ASSET, NEUTRAL_MACRO, neutral, per_bar_frame, write_frame

S = 1_000_000_000
T0 = int(pd.Timestamp("2024-03-01", tz="UTC").value)  # a bar open time
BAR_S = 60.0
KNOWN = T0 + 60 * S  # when bar 0's scan is known


def row(ts_ns: int, symbol: str, feats=(0.0, 0.0, 0.0, 1.0, 0.5), macro=(0.0, 0.0, 1.0)):
    """One contract row: ``feats`` in engine order, the raw imbalance equal to imbalance_ma5."""
    out = {"ts_ns": ts_ns, "symbol": symbol, "imbalance": float(feats[0])}
    out.update(zip(("imbalance_ma5", "imbalance_persistence", "withdrawal_velocity",
                    "depth_quality", "fill_probability"), map(float, feats), strict=True))
    out.update(zip(("cascade_count", "regime_signal", "market_multiplier"), map(float, macro),
                   strict=True))
    return out


def frame(*rows) -> pd.DataFrame:
    df = pd.DataFrame(list(rows))
    return df.astype({"ts_ns": np.int64})


# ------------------------------------------------------------------ the as-of rule by hand
@pytest.fixture
def table() -> ObTable:
    """Four symbols, each with one row placed around bar 0's known time."""
    return ObTable(frame(
        row(KNOWN - 120 * S - 1, "CCC", (0.3, 0.3, 0.3, 0.3, 0.3), (3, -1, 0.9)),  # too old
        row(KNOWN - 120 * S, "DDD", (0.4, 0.4, 0.4, 0.4, 0.4), (4, 1, 1.1)),  # exactly max age
        row(KNOWN, "AAA", (0.1, 0.2, -0.3, 1.7, 0.8), (1, 1, 1.2)),  # exactly at T
        row(KNOWN + 1, "BBB", (0.5, 0.5, 0.5, 0.5, 0.5), (2, -1, 0.85)),  # 1 ns after T
    ))


def test_row_at_exactly_t_is_used_one_ns_later_is_not_and_too_old_is_neutral(table):
    assets = ["AAA", "BBB", "CCC", "DDD", "EEE"]
    ob_asset, ob_macro = table.arrays(np.array([T0, T0 + 60 * S]), BAR_S, assets)
    assert ob_asset.shape == (2, 5, lay.N_OB_ASSET) and ob_macro.shape == (2, lay.N_OB_MACRO)
    assert ob_asset.dtype == np.float64 and ob_asset.flags.c_contiguous
    assert ob_macro.dtype == np.float64 and ob_macro.flags.c_contiguous
    # bar 0, known at KNOWN
    np.testing.assert_array_equal(ob_asset[0, 0], [0.1, 0.2, -0.3, 1.7, 0.8])  # at T: used
    np.testing.assert_array_equal(ob_asset[0, 1], NEUTRAL_ASSET)  # T + 1 ns: not yet known
    np.testing.assert_array_equal(ob_asset[0, 2], NEUTRAL_ASSET)  # 120 s + 1 ns old: stale
    np.testing.assert_array_equal(ob_asset[0, 3], [0.4] * 5)  # exactly 120 s old: still fresh
    np.testing.assert_array_equal(ob_asset[0, 4], NEUTRAL_ASSET)  # never recorded
    np.testing.assert_array_equal(ob_macro[0], [1, 1, 1.2])  # the cycle at T
    # bar 1, known 60 s later: AAA is 60 s old, BBB 60 s − 1 ns, DDD 180 s (stale)
    np.testing.assert_array_equal(ob_asset[1, 0], [0.1, 0.2, -0.3, 1.7, 0.8])
    np.testing.assert_array_equal(ob_asset[1, 1], [0.5] * 5)
    np.testing.assert_array_equal(ob_asset[1, 3], NEUTRAL_ASSET)
    np.testing.assert_array_equal(ob_macro[1], [2, -1, 0.85])  # the latest cycle, T + 1 ns


def test_a_bar_before_any_row_and_long_after_the_last_is_neutral(table):
    ob_asset, ob_macro = table.arrays(np.array([T0 - 3600 * S, T0 + 3600 * S]), BAR_S, ["AAA"])
    np.testing.assert_array_equal(ob_asset[:, 0], [NEUTRAL_ASSET, NEUTRAL_ASSET])
    np.testing.assert_array_equal(ob_macro, [NEUTRAL_MACRO, NEUTRAL_MACRO])


def test_max_age_is_a_parameter_and_the_bar_length_moves_the_known_time():
    df = frame(row(KNOWN - 30 * S, "AAA", (0.1, 0.1, 0.1, 0.1, 0.1)))
    assert ObTable(df, max_age_s=29.0).arrays(np.array([T0]), BAR_S, ["AAA"])[0][0, 0, 0] == 0.0
    assert ObTable(df, max_age_s=30.0).arrays(np.array([T0]), BAR_S, ["AAA"])[0][0, 0, 0] == 0.1
    # a 5-minute bar opening at T0 is known 4 minutes later: the row is 270 s old by then
    five = ObTable(df).arrays(np.array([T0]), 300.0, ["AAA"])[0]
    np.testing.assert_array_equal(five[0, 0], NEUTRAL_ASSET)


def test_a_nan_row_is_neutral_and_hides_the_older_valid_row():
    df = frame(
        row(KNOWN - 10 * S, "AAA", (0.2, 0.2, 0.2, 0.2, 0.2), (1, 0, 1.1)),
        row(KNOWN, "AAA", (np.nan, np.nan, np.nan, np.nan, np.nan), (np.nan, 0, 1.0)),
    )
    ob_asset, ob_macro = ObTable(df).arrays(np.array([T0, T0 - 5 * S]), BAR_S, ["AAA"])
    np.testing.assert_array_equal(ob_asset[0, 0], NEUTRAL_ASSET)  # the newest says "invalid"
    np.testing.assert_array_equal(ob_macro[0], NEUTRAL_MACRO)
    np.testing.assert_array_equal(ob_asset[1, 0], [0.2] * 5)  # 5 s earlier: the valid row
    np.testing.assert_array_equal(ob_macro[1], [1, 0, 1.1])


def test_neutral_values_are_the_contracts():
    ob_asset, ob_macro = ObTable(frame(row(T0, "AAA"))[:0]).arrays(np.array([T0]), BAR_S, ["X"])
    # imbalance_ma5 0, persistence 0, withdrawal 0, depth quality 1, fill probability 0.5
    np.testing.assert_array_equal(ob_asset[0, 0], [0.0, 0.0, 0.0, 1.0, 0.5])
    np.testing.assert_array_equal(ob_macro[0], [0.0, 0.0, 1.0])  # cascade, regime, multiplier


def test_engine_columns_take_the_recorded_columns_by_name_not_position():
    df = frame(row(KNOWN, "AAA", (0.1, 0.2, 0.3, 0.4, 0.5), (6, -1, 0.95)))
    df["imbalance"] = 0.9  # the raw imbalance is not an engine input
    df = df[list(reversed(df.columns))]
    ob_asset, ob_macro = ObTable(df).arrays(np.array([T0]), BAR_S, ["AAA"])
    a = ob_asset[0, 0]
    assert (a[lay.OB_IMBALANCE], a[lay.OB_PERSISTENCE], a[lay.OB_WITHDRAWAL],
            a[lay.OB_DEPTH_QUALITY], a[lay.OB_FILL_PROB]) == (0.1, 0.2, 0.3, 0.4, 0.5)
    m = ob_macro[0]
    assert (m[lay.OB_CASCADE], m[lay.OB_REGIME], m[lay.OB_MARKET_MULT]) == (6, -1, 0.95)


# ------------------------------------------------------------------ RecordedOb
def test_recorded_ob_gives_the_arrays_bar_by_bar_in_any_call_order():
    rng = np.random.default_rng(4)
    assets = ["BBB", "AAA", "CCC"]  # the engine's order, not the table's
    bars = T0 + 60 * S * np.arange(40, dtype=np.int64)
    per_asset = rng.uniform(-1, 2, size=(40, 3, 5))
    macro = rng.uniform(-1, 2, size=(40, 3))
    df = per_bar_frame(bars, BAR_S, assets, per_asset, macro)
    df = df[(df["ts_ns"] < bars[10] + 60 * S) | (df["ts_ns"] > bars[20])]  # a recording gap
    table = ObTable(df.reset_index(drop=True))
    ob_asset, ob_macro = table.arrays(bars, BAR_S, assets)
    ob = RecordedOb(table, BAR_S, block=7)  # small blocks: the block edges are exercised
    order = [*range(40), 3, 39, 0, 17, 16]  # forwards, then jumps back and forth
    for t in order:
        a, m = ob.features(int(bars[t]), assets)
        np.testing.assert_array_equal(a, ob_asset[t])
        np.testing.assert_array_equal(m, ob_macro[t])
    off_grid = int(bars[5]) + 30 * S  # not a bar of the grid the block was built on
    a, m = ob.features(off_grid, assets)
    np.testing.assert_array_equal(a, table.arrays(np.array([off_grid]), BAR_S, assets)[0][0])
    np.testing.assert_array_equal(ob.features(int(bars[5]), ["CCC"])[0], ob_asset[5, 2:3])
    # the values written are the values read, in the engine's asset order
    np.testing.assert_array_equal(ob_asset[30], per_asset[30])
    np.testing.assert_array_equal(ob_asset[15], np.tile(NEUTRAL_ASSET, (3, 1)))  # in the gap


def test_recorded_ob_returns_copies():
    table = ObTable(frame(row(KNOWN, "AAA", (0.1, 0.2, 0.3, 0.4, 0.5))))
    ob = RecordedOb(table, BAR_S)
    a, m = ob.features(T0, ["AAA"])
    a[:] = 9.0
    m[:] = 9.0
    np.testing.assert_array_equal(ob.features(T0, ["AAA"])[0][0], [0.1, 0.2, 0.3, 0.4, 0.5])


def test_recorded_ob_of_a_file_takes_the_scans_bar_length(tmp_path):
    path = write_frame(tmp_path / "ob.parquet", frame(row(T0 + 300 * S, "AAA", (0.1,) * 5)))
    bars = T0 + 300 * S * np.arange(3, dtype=np.int64)
    ob = recorded_ob(path, bars)
    assert ob.bar_s == 300.0
    np.testing.assert_array_equal(ob.features(T0, ["AAA"])[0][0], [0.1] * 5)
    assert recorded_ob(None, bars) is None


# ------------------------------------------------------------------ OB-4 daily stress
def _cycles(day: str, regimes) -> list[dict]:
    start = int(pd.Timestamp(day, tz="UTC").value)
    return [row(start + (k + 1) * 600 * S, "AAA", macro=(0, r, 1)) for k, r in enumerate(regimes)]


def test_daily_stress_is_the_previous_days_share_of_withdrawal_cycles():
    rows = [*_cycles("2024-03-01", [1, 0, -1, 1, np.nan]),  # 2 of 5 cycles at +1
            *_cycles("2024-03-02", [0, 0, 0, 1])]  # 1 of 4
    # a cycle at exactly 03-04 00:00 belongs to 03-04 (counts for 03-05, not for 03-04)
    rows.append(row(int(pd.Timestamp("2024-03-04", tz="UTC").value), "AAA", macro=(0, 1, 1)))
    table = ObTable(frame(*rows))
    assert table.daily_ob_stress("2024-03-01") == 0.0  # nothing recorded the day before
    assert table.daily_ob_stress("2024-03-02") == pytest.approx(2 / 5)
    assert table.daily_ob_stress("2024-03-03") == pytest.approx(1 / 4)
    assert table.daily_ob_stress("2024-03-04") == 0.0  # 03-03 has no cycle
    assert table.daily_ob_stress("2024-03-05") == 1.0
    assert RecordedOb(table, BAR_S).daily_ob_stress("2024-03-02") == pytest.approx(0.4)


def test_a_cycle_of_many_rows_counts_once():
    start = int(pd.Timestamp("2024-03-01", tz="UTC").value)
    table = ObTable(frame(row(start + S, "AAA", macro=(0, 1, 1)),
                          row(start + S, "BBB", macro=(0, 1, 1)),
                          row(start + 2 * S, "AAA", macro=(0, 0, 1))))
    assert table.n_cycles == 2
    assert table.daily_ob_stress("2024-03-02") == 0.5


def test_day_protocol_and_acb_days_pass_the_stress_to_the_acb():
    table = ObTable(frame(*_cycles("2024-03-01", [1, 1, 1, 0])))  # 03-02: stress 0.75
    cfg = DolphinConfig()
    engine = NDAlphaEngine(cfg, ["AAA"], ob_engine=RecordedOb(table, BAR_S))
    protocol = DayProtocol(engine, AdaptiveCircuitBreaker(cfg.acb))
    day1 = protocol.begin("2024-03-01")
    protocol.end()
    day2 = protocol.begin("2024-03-02")
    # warm-up: beta is beta_low (0.2); OB-4 raises it by 25 % × stress
    assert day1.beta == pytest.approx(0.2)
    assert day2.beta == pytest.approx(0.2 * (1 + 0.25 * 0.75))
    assert float(engine.state[lay.S_DAY_BETA]) == pytest.approx(0.2375)
    days = acb_days(AdaptiveCircuitBreaker(cfg.acb), ["2024-03-01", "2024-03-02"], [None, None],
                    table.daily_ob_stress)
    assert [d.beta for d in days] == pytest.approx([0.2, 0.2375])
    plain = DayProtocol(NDAlphaEngine(cfg, ["AAA"]), AdaptiveCircuitBreaker(cfg.acb))
    assert plain.begin("2024-03-02").beta == 0.2  # no OB engine: the ACB's own beta


# ------------------------------------------------------------------ bad input
@pytest.fixture
def good() -> pd.DataFrame:
    return frame(row(T0, "AAA"), row(T0, "BBB"), row(T0 + S, "AAA"))


def _read(tmp_path, df):
    return ObTable.read(write_frame(tmp_path / "ob.parquet", df))


@pytest.mark.parametrize("col", ["ts_ns", "symbol", "depth_quality", "imbalance",
                                 "regime_signal"])
def test_a_missing_column_is_named_with_the_file(tmp_path, good, col):
    with pytest.raises(MissingColumnError) as err:
        _read(tmp_path, good.drop(columns=[col]))
    assert err.value.field == col and str(tmp_path / "ob.parquet") in str(err.value)


@pytest.mark.parametrize(("col", "dtype"), [("ts_ns", "float64"), ("depth_quality", "int64"),
                                            ("market_multiplier", "float32"),
                                            ("symbol", "int64")])
def test_an_ill_typed_column_is_named_with_the_file(tmp_path, good, col, dtype):
    bad = good.copy()
    bad[col] = np.arange(len(bad)).astype(dtype)
    with pytest.raises(DataError) as err:
        _read(tmp_path, bad)
    assert err.value.field == col and str(tmp_path / "ob.parquet") in str(err.value)


def test_nan_ts_is_named_with_its_row(tmp_path, good):
    bad = good.astype({"ts_ns": "float64"})
    bad.loc[1, "ts_ns"] = np.nan
    with pytest.raises(TimestampError) as err:
        _read(tmp_path, bad)
    assert err.value.row == 1 and err.value.field == "ts_ns"
    assert str(tmp_path / "ob.parquet") in str(err.value)


@pytest.mark.parametrize("swap", [(0, 2), (0, 1)])  # time goes back; symbols out of order
def test_unsorted_rows_are_refused_with_the_row(tmp_path, good, swap):
    i, j = swap
    order = list(range(len(good)))
    order[i], order[j] = order[j], order[i]
    with pytest.raises(UnsortedTimestampError) as err:
        _read(tmp_path, good.iloc[order].reset_index(drop=True))
    assert err.value.row == 1 and str(tmp_path / "ob.parquet") in str(err.value)


def test_a_symbol_twice_in_one_cycle_is_refused(tmp_path, good):
    bad = pd.concat([good.iloc[:1], good.iloc[:1], good.iloc[1:]], ignore_index=True)
    with pytest.raises(DuplicateTimestampError) as err:
        _read(tmp_path, bad)
    assert err.value.row == 1


def test_market_values_that_differ_within_a_cycle_are_refused(tmp_path, good):
    bad = good.copy()
    bad.loc[1, "regime_signal"] = 1.0
    with pytest.raises(DataError, match="differ within one cycle") as err:
        _read(tmp_path, bad)
    assert err.value.row == 1


def test_a_missing_or_unreadable_file_names_it(tmp_path):
    with pytest.raises(DataError, match="cannot read OB features") as err:
        ObTable.read(tmp_path / "absent.parquet")
    assert str(tmp_path / "absent.parquet") in str(err.value)
    junk = tmp_path / "junk.parquet"
    junk.write_text("not parquet")
    with pytest.raises(DataError, match=str(junk)):
        ObTable.read(junk)


def test_a_categorical_symbol_column_reads_like_strings(tmp_path, good):
    cat = good.astype({"symbol": "category"})
    a = _read(tmp_path, cat).arrays(np.array([T0 - 60 * S]), BAR_S, ["BBB"])
    b = ObTable(good).arrays(np.array([T0 - 60 * S]), BAR_S, ["BBB"])
    np.testing.assert_array_equal(a[0], b[0])


def test_digest_follows_content_and_age_limit(good):
    base = ObTable(good).digest
    assert ObTable(good.copy()).digest == base
    moved = good.copy()
    moved.loc[2, "depth_quality"] = np.nextafter(1.0, 2.0)
    assert ObTable(moved).digest != base
    assert ObTable(good, max_age_s=60).digest != base


# ------------------------------------------------------------------ the test kit's builder
def test_kit_per_bar_frame_puts_bar_t_asset_j_at_the_bars_known_time():
    bars = np.array([T0, T0 + 60 * S], dtype=np.int64)
    per_asset, macro = neutral(2, 2)
    per_asset[1, 0] = [0.1, 0.2, 0.3, 0.4, 0.6]  # bar 1, asset "ZZZ"
    macro[0] = [2, 1, 1.1]
    df = per_bar_frame(bars, BAR_S, ["ZZZ", "AAA"], per_asset, macro)
    assert df["ts_ns"].tolist() == [KNOWN, KNOWN, KNOWN + 60 * S, KNOWN + 60 * S]
    assert df["symbol"].tolist() == ["AAA", "ZZZ", "AAA", "ZZZ"]  # sorted within a cycle
    z1 = df.iloc[3]
    assert (z1["imbalance"], z1["imbalance_ma5"], z1["imbalance_persistence"],
            z1["withdrawal_velocity"], z1["depth_quality"], z1["fill_probability"]) == (
        0.1, 0.1, 0.2, 0.3, 0.4, 0.6)
    assert df["cascade_count"].tolist() == [2, 2, 0, 0]
    assert df["market_multiplier"].tolist() == [1.1, 1.1, 1.0, 1.0]
    assert df["depth_quality"].tolist() == [1.0, 1.0, 1.0, 0.4]


@pytest.mark.parametrize("bad_symbol", [None, 7])
def test_a_symbol_that_is_not_a_string_is_named_with_its_row(tmp_path, good, bad_symbol):
    bad = good.astype({"symbol": object})
    bad.loc[2, "symbol"] = bad_symbol
    with pytest.raises(DataError, match="symbol must be a string") as err:
        ObTable(bad, source="ob.parquet")
    assert err.value.row == 2 and err.value.field == "symbol"
