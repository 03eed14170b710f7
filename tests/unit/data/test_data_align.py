"""The aligned wide close matrices follow DESIGN.md "Data contracts" (causal fill, real closes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dolphin.core.errors import BadInputError, DataError, MixedBarSizeError
from dolphin.data import (
    DEFAULT_FILL_LIMIT,
    align_closes,
    exchange_gap_mask,
    ffill_limited,
    fill_closes,
    fill_fraction,
    fill_limit_bars,
    load_bars,
    load_real_closes,
    load_wide,
    missing_fraction,
    parse_fill_limit,
    read_wide,
    real_closes,
    real_mask,
)
from tests.kit.builders import long_bars, wide_closes, write_long_parquet
from tests.kit.paths import USDM_1M_2023, require

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


def test_nan_before_listing_and_filled_at_most_the_limit_after_the_last_bar():
    # Was "NaN after delisting": knowing where a symbol's data ends is a look-ahead, so the
    # last close is carried like any other missing bar, for at most the fill limit.
    bars = long_bars(periods=6, lives={"AAAUSDT": (2, 3), "BBBUSDT": (0, 5)})
    wide = align_closes(bars, fill_limit="1min")
    np.testing.assert_array_equal(wide["AAAUSDT"], [NAN, NAN, 102.0, 103.0, 103.0, NAN])
    assert wide["BBBUSDT"].tolist() == [200.0, 201.0, 202.0, 203.0, 204.0, 205.0]
    # The default limit (one day) covers the rest of this short frame.
    np.testing.assert_array_equal(
        align_closes(bars)["AAAUSDT"], [NAN, NAN, 102.0, 103.0, 103.0, 103.0]
    )


def test_real_closes_are_nan_wherever_the_long_input_has_no_bar():
    bars = long_bars(
        ["AAAUSDT", "BBBUSDT", "CCCUSDT"],
        periods=7,
        lives={"AAAUSDT": (0, 2), "CCCUSDT": (3, 6)},
        drop={"BBBUSDT": [1, 4, 5], "CCCUSDT": [5]},
    )
    real = real_closes(bars)
    np.testing.assert_array_equal(real["AAAUSDT"], [100, 101, 102, NAN, NAN, NAN, NAN])
    np.testing.assert_array_equal(real["BBBUSDT"], [200, NAN, 202, 203, NAN, NAN, 206])
    np.testing.assert_array_equal(real["CCCUSDT"], [NAN, NAN, NAN, 303, 304, NAN, 306])
    has_bar = {(ts, str(sym)) for ts, sym in zip(bars["timestamp"], bars["symbol"], strict=True)}
    expected = np.array(
        [[(ts, sym) in has_bar for sym in ("AAAUSDT", "BBBUSDT", "CCCUSDT")]
         for ts in real["timestamp"]]
    )
    np.testing.assert_array_equal(real_mask(real), expected)


def test_symbol_that_ends_early_is_filled_for_the_limit_then_nan():
    bars = long_bars(periods=10, lives={"AAAUSDT": (0, 3)})
    wide = align_closes(bars, fill_limit="2m")
    np.testing.assert_array_equal(
        wide["AAAUSDT"], [100, 101, 102, 103, 103, 103, NAN, NAN, NAN, NAN]
    )
    assert wide["BBBUSDT"].tolist() == [200.0 + i for i in range(10)]


def test_gap_longer_than_the_limit_is_nan_until_the_next_real_bar():
    bars = long_bars(["AAAUSDT"], periods=9, drop={"AAAUSDT": [2, 3, 4, 5, 6]})
    wide = align_closes(bars, fill_limit="2m")
    np.testing.assert_array_equal(wide["AAAUSDT"], [100, 101, 101, 101, NAN, NAN, NAN, 107, 108])


def test_fill_limit_zero_leaves_the_real_closes():
    bars = long_bars(periods=6, lives={"AAAUSDT": (1, 3)}, drop={"BBBUSDT": [2]})
    pd.testing.assert_frame_equal(align_closes(bars, fill_limit="0"), real_closes(bars))
    pd.testing.assert_frame_equal(
        align_closes(bars, fill_limit=pd.Timedelta(0)), real_closes(bars)
    )


def test_fill_limit_is_counted_in_coarse_bars_on_a_coarse_grid():
    bars = long_bars(periods=20, lives={"AAAUSDT": (0, 4)})
    np.testing.assert_array_equal(real_closes(bars, bar="5m")["AAAUSDT"], [104, NAN, NAN, NAN])
    wide = align_closes(bars, bar="5m", fill_limit="5m")
    np.testing.assert_array_equal(wide["AAAUSDT"], [104, 104, NAN, NAN])
    assert wide["BBBUSDT"].tolist() == [204.0, 209.0, 214.0, 219.0]


@pytest.mark.parametrize(
    ("limit", "bar", "bars"),
    [("1d", "1m", 1440), ("1d", "5m", 288), ("90s", "1m", 2), ("1h", "7m", 9), ("0", "1m", 0)],
)
def test_fill_limit_in_bars_rounds_up(limit, bar, bars):
    assert fill_limit_bars(limit, bar) == bars


def test_default_fill_limit_is_a_day():
    assert pd.Timedelta("1D") == DEFAULT_FILL_LIMIT
    assert parse_fill_limit("6h") == pd.Timedelta(hours=6)


@pytest.mark.parametrize("bad", ["-1h", "soon", "", None])
def test_bad_fill_limit_is_a_named_input_error(bad):
    with pytest.raises(BadInputError, match="fill_limit"):
        parse_fill_limit(bad)


def test_ffill_limited_by_hand():
    values = np.array([[NAN, 1.0], [2.0, NAN], [NAN, NAN], [NAN, NAN], [5.0, NAN]])
    got = ffill_limited(values, 2)
    np.testing.assert_array_equal(got, [[NAN, 1], [2, 1], [2, 1], [2, NAN], [5, NAN]])
    assert np.isnan(values[1, 1])  # the input is not modified


def test_missing_fraction_by_hand():
    real = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 0]], bool)
    live = np.array([[1, 1, 0], [1, 1, 1], [0, 0, 0]], bool)
    np.testing.assert_allclose(missing_fraction(real, live), [0.0, 2 / 3, 1.0])


def test_fill_fraction_from_the_long_frame_equals_the_one_from_real_closes():
    bars = long_bars(periods=9, lives={"AAAUSDT": (0, 3)}, drop={"BBBUSDT": [2, 3, 7]})
    real = real_closes(bars)
    filled = fill_closes(real, fill_limit="2m")
    live = ~np.isnan(filled.drop(columns="timestamp").to_numpy())
    np.testing.assert_allclose(
        fill_fraction(bars, filled), missing_fraction(real_mask(real), live)
    )
    # AAA ends at 3 and is carried on 4 and 5; BBB is carried on 2, 3 and 7.
    np.testing.assert_allclose(fill_fraction(bars, filled), [0, 0, 0.5, 0.5, 0.5, 0.5, 0, 1, 0])


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
    frac = fill_fraction(bars, align_closes(bars, fill_limit="0"))
    np.testing.assert_allclose(frac, [0.0, 0.0, 1.0, 0.0, 0.0])
    # With the default limit AAA is carried after its last bar: live, but not real.
    np.testing.assert_allclose(fill_fraction(bars, align_closes(bars)), [0, 0, 1, 0.5, 0.5])


def test_fill_fraction_on_a_coarse_grid_counts_any_bar_inside_as_real():
    bars = long_bars(["AAAUSDT"], periods=15, drop={"AAAUSDT": [5, 6, 7, 8, 9]})
    np.testing.assert_allclose(fill_fraction(bars, align_closes(bars, bar="5m")), [0, 1, 0])


def test_read_wide_round_trips_real_closes_and_load_wide_fills_them(tmp_path):
    bars = long_bars(periods=6, lives={"AAAUSDT": (1, 3)}, drop={"BBBUSDT": [2]})
    real = real_closes(bars)
    path = tmp_path / "wide.parquet"
    real.to_parquet(path, index=False)
    pd.testing.assert_frame_equal(read_wide(path), real)
    pd.testing.assert_frame_equal(load_real_closes(path), real)
    pd.testing.assert_frame_equal(load_wide(path), align_closes(bars))
    pd.testing.assert_frame_equal(
        load_wide(path, fill_limit="1m"), align_closes(bars, fill_limit="1m")
    )


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
    bars = long_bars(periods=15, drop={"BBBUSDT": [4, 5, 6, 7, 8, 9]})
    path = tmp_path / "wide.parquet"
    real_closes(bars).to_parquet(path, index=False)
    got = load_real_closes(path, bar="5m", symbols=["BBBUSDT"])
    np.testing.assert_array_equal(got["BBBUSDT"], [203, NAN, 214])
    pd.testing.assert_frame_equal(got, real_closes(bars, bar="5m", symbols=["BBBUSDT"]))
    got = load_wide(path, bar="5m", symbols=["BBBUSDT"])
    pd.testing.assert_frame_equal(got, align_closes(bars, bar="5m", symbols=["BBBUSDT"]))
    with pytest.raises(DataError, match="ZZZ"):
        load_wide(path, symbols=["ZZZ"])


def _truncated(bars: pd.DataFrame, last: pd.Timestamp) -> pd.DataFrame:
    return bars[bars["timestamp"] <= last].reset_index(drop=True)


def test_fill_never_reads_a_later_bar_on_a_small_frame():
    bars = long_bars(
        ["AAAUSDT", "BBBUSDT", "CCCUSDT"],
        periods=12,
        lives={"AAAUSDT": (0, 4)},
        drop={"BBBUSDT": [2, 3], "CCCUSDT": [6, 7, 8, 9]},
    )
    full = align_closes(bars, bar="1m", fill_limit="2m")
    np.testing.assert_array_equal(full["AAAUSDT"].iloc[4:8], [104, 104, 104, NAN])
    np.testing.assert_array_equal(full["CCCUSDT"].iloc[5:11], [305, 305, 305, NAN, NAN, 310])
    for t in range(len(full)):
        # bar= because a one-bar prefix cannot tell its bar size.
        cut = align_closes(_truncated(bars, full["timestamp"].iloc[t]), bar="1m", fill_limit="2m")
        pd.testing.assert_frame_equal(cut, full.iloc[: t + 1])


@pytest.fixture(scope="module")
def usdm_1m_2023() -> pd.DataFrame:
    return load_bars(require(USDM_1M_2023))


def test_aligned_matrix_up_to_t_ignores_later_bars_on_the_2023_perps(usdm_1m_2023):
    bars = usdm_1m_2023
    full = align_closes(bars)
    xlm_end = bars.loc[bars["symbol"] == "XLMUSDT", "timestamp"].max()
    bar = pd.Timedelta("1min")
    cuts = [xlm_end - bar, xlm_end, xlm_end + 90 * bar, xlm_end + 1441 * bar,
            pd.Timestamp("2023-07-18 11:14", tz="UTC"), full["timestamp"].iloc[-2]]
    for last in cuts:
        cut = align_closes(_truncated(bars, last))
        head = full.iloc[: len(cut)]
        assert cut["timestamp"].iloc[-1] == last
        pd.testing.assert_frame_equal(cut, head[cut.columns])
        absent = [c for c in full.columns if c not in cut.columns]
        assert head[absent].isna().all().all()  # not listed yet: NaN, not a later close
    # XLMUSDT: carried one day (1440 bars) after its last bar, then NaN for good.
    xlm = full.set_index("timestamp")["XLMUSDT"]
    last_close = bars.loc[bars["symbol"] == "XLMUSDT", "close"].iloc[-1]
    assert (xlm[xlm_end : xlm_end + 1440 * bar] == last_close).all()
    assert xlm[xlm_end + 1441 * bar :].isna().all() and len(xlm[xlm_end + 1441 * bar :]) > 0
