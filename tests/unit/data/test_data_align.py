"""The aligned wide close matrix follows DESIGN.md "Data contracts"."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dolphin.core.errors import DataError, MixedBarSizeError
from dolphin.data import (
    align_closes,
    exchange_gap_mask,
    fill_fraction,
    load_wide,
    read_wide,
)
from tests.kit.builders import long_bars, wide_closes, write_long_parquet

NAN = np.nan


def test_grid_is_regular_from_first_to_last_bar():
    bars = long_bars(periods=10, lives={"AAAUSDT": (2, 9), "BBBUSDT": (0, 6)})
    wide = align_closes(bars)
    assert list(wide.columns) == ["timestamp", "AAAUSDT", "BBBUSDT"]
    assert str(wide["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert len(wide) == 10
    assert (wide["timestamp"].diff().iloc[1:] == pd.Timedelta("1min")).all()
    assert all(wide[c].dtype == np.float64 for c in ("AAAUSDT", "BBBUSDT"))


def test_missing_bar_inside_life_carries_last_close_forward():
    bars = long_bars(["AAAUSDT"], periods=6, drop={"AAAUSDT": [2, 3]})
    wide = align_closes(bars)
    assert wide["AAAUSDT"].tolist() == [100.0, 101.0, 101.0, 101.0, 104.0, 105.0]


def test_nan_before_listing_and_after_delisting():
    bars = long_bars(periods=6, lives={"AAAUSDT": (2, 3), "BBBUSDT": (0, 5)})
    wide = align_closes(bars)
    np.testing.assert_array_equal(wide["AAAUSDT"], [NAN, NAN, 102.0, 103.0, NAN, NAN])
    assert wide["BBBUSDT"].tolist() == [200.0, 201.0, 202.0, 203.0, 204.0, 205.0]


def test_symbols_select_and_order_columns():
    bars = long_bars(["AAAUSDT", "BBBUSDT", "CCCUSDT"], periods=4)
    wide = align_closes(bars, symbols=["CCCUSDT", "AAAUSDT"])
    assert list(wide.columns) == ["timestamp", "CCCUSDT", "AAAUSDT"]
    assert wide["CCCUSDT"].tolist() == [300.0, 301.0, 302.0, 303.0]


def test_grid_spans_only_the_selected_symbols():
    bars = long_bars(periods=10, lives={"AAAUSDT": (3, 5)})
    wide = align_closes(bars, symbols=["AAAUSDT"])
    assert len(wide) == 3
    assert wide["timestamp"].iloc[0] == pd.Timestamp("2024-01-01 00:03", tz="UTC")


def test_unknown_symbol_is_named():
    with pytest.raises(DataError, match="ZZZUSDT"):
        align_closes(long_bars(), symbols=["AAAUSDT", "ZZZUSDT"])


def test_coarser_bar_takes_last_close_in_each_bar_labelled_by_open_time():
    bars = long_bars(["AAAUSDT"], start="2024-01-01 00:02", periods=13, drop={"AAAUSDT": [3]})
    wide = align_closes(bars, bar="5m")
    # 1m bars 00:02..00:14 fall in the 5m bars opening 00:00, 00:05 and 00:10.
    assert wide["timestamp"].dt.strftime("%H:%M").tolist() == ["00:00", "00:05", "00:10"]
    assert wide["AAAUSDT"].tolist() == [102.0, 107.0, 112.0]


def test_coarser_bar_forward_fills_an_empty_coarse_bar():
    bars = long_bars(["AAAUSDT"], periods=15, drop={"AAAUSDT": [5, 6, 7, 8, 9]})
    wide = align_closes(bars, bar="5m")
    assert wide["AAAUSDT"].tolist() == [104.0, 104.0, 114.0]


@pytest.mark.parametrize("bar", ["30s", "90s"])
def test_finer_or_non_multiple_bar_is_mixed_bar_size(bar):
    with pytest.raises(MixedBarSizeError, match="whole multiple"):
        align_closes(long_bars(), bar=bar)


def test_fill_fraction_counts_forward_filled_live_symbols():
    bars = long_bars(
        ["AAAUSDT", "BBBUSDT", "CCCUSDT"],
        periods=6,
        lives={"CCCUSDT": (2, 5)},
        drop={"AAAUSDT": [3], "BBBUSDT": [1, 3]},
    )
    wide = align_closes(bars)
    frac = fill_fraction(bars, wide)
    assert frac.dtype == np.float64
    np.testing.assert_allclose(frac, [0.0, 0.5, 0.0, 2 / 3, 0.0, 0.0])
    assert exchange_gap_mask(bars, wide).tolist() == [False, False, False, True, False, False]


def test_fill_fraction_is_one_where_no_symbol_is_live():
    bars = long_bars(periods=5, lives={"AAAUSDT": (0, 1), "BBBUSDT": (3, 4)})
    frac = fill_fraction(bars, align_closes(bars))
    np.testing.assert_allclose(frac, [0.0, 0.0, 1.0, 0.0, 0.0])


def test_fill_fraction_on_a_coarse_grid_counts_any_bar_inside_as_real():
    bars = long_bars(["AAAUSDT"], periods=15, drop={"AAAUSDT": [5, 6, 7, 8, 9]})
    np.testing.assert_allclose(fill_fraction(bars, align_closes(bars, bar="5m")), [0, 1, 0])


def test_read_wide_round_trips_an_aligned_file(tmp_path):
    wide = align_closes(long_bars(periods=6, lives={"AAAUSDT": (1, 4)}))
    path = tmp_path / "wide.parquet"
    wide.to_parquet(path, index=False)
    pd.testing.assert_frame_equal(read_wide(path), wide)
    pd.testing.assert_frame_equal(load_wide(path), wide)


def test_read_wide_rejects_an_irregular_grid(tmp_path):
    wide = wide_closes({"AAAUSDT": [1.0, 2.0, 3.0]})
    wide.loc[2, "timestamp"] += pd.Timedelta(minutes=1)
    wide.to_parquet(tmp_path / "w.parquet", index=False)
    with pytest.raises(MixedBarSizeError, match=r"w\.parquet, row 2"):
        read_wide(tmp_path / "w.parquet")


def test_read_wide_rejects_a_non_positive_close(tmp_path):
    wide_closes({"AAAUSDT": [1.0, NAN, -3.0]}).to_parquet(tmp_path / "w.parquet", index=False)
    with pytest.raises(DataError, match=r"row 2, field 'AAAUSDT'.*-3\.0"):
        read_wide(tmp_path / "w.parquet")


def test_load_wide_aligns_a_long_file(tmp_path):
    bars = long_bars(periods=10)
    path = write_long_parquet(tmp_path / "long.parquet", bars)
    pd.testing.assert_frame_equal(load_wide(path), align_closes(bars))


def test_load_wide_resamples_and_selects_a_wide_file(tmp_path):
    bars = long_bars(periods=10)
    path = tmp_path / "wide.parquet"
    align_closes(bars).to_parquet(path, index=False)
    got = load_wide(path, bar="5m", symbols=["BBBUSDT"])
    pd.testing.assert_frame_equal(got, align_closes(bars, bar="5m", symbols=["BBBUSDT"]))
    with pytest.raises(DataError, match="ZZZ"):
        load_wide(path, symbols=["ZZZ"])
