"""Bad bar input raises a typed error naming the file, the row and the offending value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dolphin.core.errors import (
    BadPriceError,
    BadVolumeError,
    DataError,
    DuplicateTimestampError,
    MissingColumnError,
    MixedBarSizeError,
    TimestampError,
    UnsortedTimestampError,
    UnsupportedFormatError,
)
from dolphin.data import load_bars, validate_bars
from tests.kit.builders import (
    long_bars,
    real_bars,
    write_binance_csv,
    write_freqtrade_feather,
    write_freqtrade_json,
    write_long_parquet,
)


def raises_at(error, path, row, value, **kwargs):
    """Load ``path``; assert ``error`` naming the file, row and value (message and attributes)."""
    with pytest.raises(error) as info:
        load_bars(path, **kwargs)
    exc = info.value
    assert exc.source == str(path)
    assert path.name in str(exc)
    assert exc.row == row
    assert f"row {row}" in str(exc)
    assert str(value) in str(exc)
    return exc


def test_missing_column_in_long_parquet_names_the_column(tmp_path):
    path = write_long_parquet(tmp_path / "bars.parquet", long_bars().drop(columns="close"))
    with pytest.raises(MissingColumnError, match=r"bars\.parquet.*'close'") as info:
        load_bars(path)
    assert info.value.field == "close"


def test_missing_column_in_feather_names_the_column(tmp_path):
    bars = real_bars("BTCUSDT", 5).drop(columns="volume")
    bars["volume"] = 1.0
    path = write_freqtrade_feather(tmp_path / "BTC_USDT-1m.feather", bars.drop(columns="high"))
    with pytest.raises(MissingColumnError, match="'high'"):
        load_bars(path)


def test_headerless_csv_with_too_few_columns_is_missing_columns(tmp_path):
    path = tmp_path / "BTCUSDT-1m-2021-04-02.csv"
    path.write_text("1617321600000,1,2,0.5\n")
    with pytest.raises(MissingColumnError, match="'close'"):
        load_bars(path)


def test_unparsable_csv_timestamp_names_row_and_value(tmp_path):
    bars = real_bars("BTCUSDT", 10)
    rows = bars.assign(
        timestamp=pd.Series((bars["timestamp"].astype("int64") // 1_000_000).astype(object))
    )
    rows.loc[4, "timestamp"] = "2021-04-02TXX"
    path = write_binance_csv(tmp_path / "BTCUSDT-1m-2021-04-02.csv", rows, header=True)
    raises_at(TimestampError, path, 4, "2021-04-02TXX")


def test_epoch_in_seconds_is_rejected_not_guessed(tmp_path):
    bars = real_bars("BTCUSDT", 3)
    rows = bars.assign(timestamp=bars["timestamp"].astype("int64") // 1_000_000_000)
    path = write_freqtrade_json(tmp_path / "BTC_USDT-1m.json", rows)
    raises_at(TimestampError, path, 0, rows["timestamp"].iloc[0])


def test_duplicate_timestamp_within_symbol(tmp_path):
    bars = real_bars("BTCUSDT", 10)
    bars.loc[6, "timestamp"] = bars.loc[5, "timestamp"]
    path = write_binance_csv(tmp_path / "BTCUSDT-1m-2021-04-02.csv", bars)
    raises_at(DuplicateTimestampError, path, 6, "2021-04-02 00:05:00+00:00")


def test_duplicate_bar_across_two_files_names_the_second_file(tmp_path):
    bars = real_bars("BTCUSDT", 10)
    write_binance_csv(tmp_path / "BTCUSDT-1m-a.csv", bars.iloc[:6])
    second = write_binance_csv(tmp_path / "BTCUSDT-1m-b.csv", bars.iloc[5:])
    with pytest.raises(DuplicateTimestampError) as info:
        load_bars(tmp_path)
    assert info.value.source == str(second)
    assert info.value.row == 0


def test_unsorted_timestamp_within_symbol_in_parquet(tmp_path):
    bars = long_bars(periods=8)
    # Swap two bars of BBBUSDT (rows 10 and 11 of the file): row 11 goes backwards.
    bars.iloc[[10, 11]] = bars.iloc[[11, 10]].to_numpy()
    path = write_long_parquet(tmp_path / "bars.parquet", bars)
    exc = raises_at(UnsortedTimestampError, path, 11, "2024-01-01 00:02:00+00:00")
    assert "BBBUSDT" in str(exc)


def test_interleaved_symbols_are_not_unsorted(tmp_path):
    bars = long_bars(periods=5).sort_values("timestamp", kind="stable")
    df = load_bars(write_long_parquet(tmp_path / "bars.parquet", bars))
    assert df["symbol"].tolist() == ["AAAUSDT"] * 5 + ["BBBUSDT"] * 5


@pytest.mark.parametrize("bad", [0.0, -1.5, np.nan, np.inf])
def test_non_positive_or_nan_price_is_bad_price(tmp_path, bad):
    bars = long_bars(periods=6)
    bars.loc[3, "low"] = bad
    path = write_long_parquet(tmp_path / "bars.parquet", bars)
    exc = raises_at(BadPriceError, path, 3, bad)
    assert exc.field == "low"


def test_non_numeric_price_in_csv_is_bad_price(tmp_path):
    bars = real_bars("BTCUSDT", 6).astype({"close": object})
    bars.loc[2, "close"] = "n/a"
    path = write_binance_csv(tmp_path / "BTCUSDT-1m-2021-04-02.csv", bars)
    raises_at(BadPriceError, path, 2, "n/a")


def test_negative_volume_is_bad_volume(tmp_path):
    bars = real_bars("BTCUSDT", 6)
    bars.loc[1, "volume"] = -3.0
    path = write_freqtrade_json(tmp_path / "BTC_USDT-1m.json", bars)
    raises_at(BadVolumeError, path, 1, -3.0)


def test_spacing_not_a_multiple_of_bar_is_mixed_bar_size(tmp_path):
    bars = long_bars(periods=8)
    bars.loc[5, "timestamp"] += pd.Timedelta(seconds=30)
    path = write_long_parquet(tmp_path / "bars.parquet", bars)
    raises_at(MixedBarSizeError, path, 5, "00:05:30")


def test_symbols_with_different_bars_are_mixed_bar_size(tmp_path):
    one = long_bars(["AAAUSDT"], periods=30)
    five = long_bars(["BBBUSDT"], periods=6, bar="5min")
    path = write_long_parquet(tmp_path / "bars.parquet", pd.concat([one, five]))
    exc = raises_at(MixedBarSizeError, path, 31, "2024-01-01 00:05:00+00:00")
    assert "BBBUSDT has bar 5m" in str(exc)


def test_gaps_that_are_whole_bars_are_legal(tmp_path):
    bars = long_bars(periods=20, drop={"AAAUSDT": [3, 4, 5, 11]})
    df = load_bars(write_long_parquet(tmp_path / "bars.parquet", bars))
    assert len(df) == 36


def test_not_json_is_unsupported(tmp_path):
    path = tmp_path / "BTC_USDT-1m.json"
    path.write_text("{not json")
    with pytest.raises(UnsupportedFormatError, match=r"BTC_USDT-1m\.json"):
        load_bars(path)


def test_empty_csv_is_a_data_error(tmp_path):
    path = tmp_path / "BTCUSDT-1m-2021-04-02.csv"
    path.write_text("")
    with pytest.raises(DataError, match="empty"):
        load_bars(path)


def test_validate_bars_names_the_frame_when_no_file():
    bars = long_bars(periods=3)
    bars.loc[0, "symbol"] = np.nan
    with pytest.raises(DataError, match=r"<frame>, row 0, field 'symbol'"):
        validate_bars(bars)


def test_ns_epoch_integers_keep_full_precision(tmp_path):
    bars = long_bars(["AAAUSDT"], periods=3)
    ns = bars["timestamp"].astype("int64")
    got = validate_bars(bars.assign(timestamp=ns))
    assert got["timestamp"].astype("int64").tolist() == ns.tolist()


def test_infinite_float_epoch_is_a_timestamp_error(tmp_path):
    bars = long_bars(["AAAUSDT"], periods=3)
    ms = (bars["timestamp"].astype("int64") // 1_000_000).astype(float)
    ms.iloc[1] = np.inf
    with pytest.raises(TimestampError, match="row 1"):
        validate_bars(bars.assign(timestamp=ms))
