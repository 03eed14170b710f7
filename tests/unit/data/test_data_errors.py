"""Bad bar input raises a typed error naming the file, the row and the offending value."""

from __future__ import annotations

import gzip
import json
import zipfile

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from dolphin.core.errors import (
    BadInputError,
    BadPriceError,
    BadVolumeError,
    DataError,
    DuplicateTimestampError,
    InconsistentPriceError,
    MalformedRowError,
    MissingColumnError,
    MixedBarSizeError,
    TimestampError,
    UnsortedTimestampError,
    UnsupportedFormatError,
)
from dolphin.data import load_bars, validate_bars
from tests.kit.builders import (
    epoch,
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


# --- Corrupt containers and text: typed errors, never a raw decoder exception -----------------


def _json_bytes(bars) -> bytes:
    """Return ``bars`` as freqtrade candle JSON: ``[[ms, open, high, low, close, volume], ...]``."""
    cols = [bars[c].tolist() for c in ("open", "high", "low", "close", "volume")]
    rows = [[int(t), *v] for t, *v in zip(epoch(bars["timestamp"]), *cols, strict=True)]
    return json.dumps(rows).encode()


@pytest.mark.parametrize(
    ("name", "data", "needle"),
    [
        ("BTC_USDT-1m.json", b"\xff\xfe[[1, 2]]", "not UTF-8"),
        ("BTC_USDT-1m.json", b"[" * 100_000, "nested too deeply"),
        ("BTC_USDT-1m.json", b"[[" + b"9" * 5000 + b", 1, 1, 1, 1, 1]]", "not valid JSON"),
        ("BTC_USDT-1m.json", b'{"a": 1}', "must be a JSON list"),
        ("BTCUSDT-1m-2021-04.zip", b"PK\x03\x04junk", "not a readable zip"),
        ("BTCUSDT-1m-2021-04.csv", b"1617321600000,\xc3\x28,1,1,1,1,0,0,0,0,0,0\n", "not UTF-8"),
        ("BTCUSDT-1m-2021-04.csv", b"1617321600000,1,1\x00,1,1,1,0,0,0,0,0,0\n", "control char"),
    ],
)
def test_corrupt_text_and_containers_are_unsupported_format(tmp_path, name, data, needle):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(UnsupportedFormatError, match=needle) as info:
        load_bars(path)
    assert info.value.source == str(path)


@pytest.mark.parametrize("cut", ["truncated", "corrupt"])
def test_truncated_or_corrupt_json_gz_is_unsupported_format(tmp_path, cut):
    packed = gzip.compress(_json_bytes(real_bars("BTCUSDT", 50)), mtime=0)
    bad = (
        packed[: len(packed) // 2]
        if cut == "truncated"
        else packed[:12] + b"\x00" * 24 + packed[36:]
    )
    path = tmp_path / "BTC_USDT-1m.json.gz"
    path.write_bytes(bad)
    with pytest.raises(UnsupportedFormatError, match="gzip"):
        load_bars(path)


def test_zip_with_two_members_is_unsupported_format(tmp_path):
    path = tmp_path / "BTCUSDT-1m-2021-04.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a.csv", "x")
        archive.writestr("b.csv", "y")
    with pytest.raises(UnsupportedFormatError, match="exactly one CSV, found 2"):
        load_bars(path)


def test_feather_with_corrupt_pandas_metadata_is_unsupported_format(tmp_path):
    path = write_freqtrade_feather(tmp_path / "BTC_USDT-1m.feather", real_bars("BTCUSDT", 10))
    path.write_bytes(path.read_bytes().replace(b'{"index_columns"', b'["index_columns"'))
    with pytest.raises(UnsupportedFormatError, match="cannot read freqtrade feather"):
        load_bars(path)


def test_struct_symbol_column_is_a_data_error_naming_the_value(tmp_path):
    bars = real_bars("BTCUSDT", 4)
    table = pa.Table.from_pandas(bars, preserve_index=False)
    table = table.set_column(1, "symbol", pa.array([{"a": 1}] * 4))
    pq.write_table(table, tmp_path / "bars.parquet")
    exc = raises_at(DataError, tmp_path / "bars.parquet", 0, "{'a': 1}")
    assert exc.field == "symbol"


@pytest.mark.parametrize("bad", ["BTC USDT", "", "BTC\x00USDT"])
def test_symbol_that_is_not_printable_text_is_a_data_error(tmp_path, bad):
    bars = long_bars(periods=3).astype({"symbol": object})
    bars.loc[4, "symbol"] = bad
    with pytest.raises(DataError, match=r"row 4, field 'symbol'"):
        validate_bars(bars)


def test_repeated_csv_header_name_is_a_data_error(tmp_path):
    path = tmp_path / "BTCUSDT-1m-2021-04-02.csv"
    path.write_text("open_time,open,high,low,close,volume,open\n1617321600000,1,2,0.5,1,1,1\n")
    with pytest.raises(DataError, match="repeated") as info:
        load_bars(path)
    assert info.value.field == "open"


def test_repeated_column_in_feather_or_parquet_is_a_data_error(tmp_path):
    bars = real_bars("BTCUSDT", 4).drop(columns="symbol").rename(columns={"timestamp": "date"})
    table = pa.Table.from_pandas(bars, preserve_index=False)
    table = table.rename_columns([*table.column_names[:-1], "close"])  # volume renamed close
    feather.write_feather(table, tmp_path / "BTC_USDT-1m.feather")
    with pytest.raises(DataError, match="appears 2 times") as info:
        load_bars(tmp_path / "BTC_USDT-1m.feather")
    assert info.value.field == "close"
    pq.write_table(table, tmp_path / "BTC_USDT-1m.parquet")  # pyarrow itself refuses to read it
    with pytest.raises(DataError, match="close"):
        load_bars(tmp_path / "BTC_USDT-1m.parquet")


# --- Values that used to load silently -------------------------------------------------------


@pytest.mark.parametrize("unit", ["ms", "us"])
def test_epoch_beyond_2100_is_refused_not_wrapped(tmp_path, unit):
    bars = real_bars("BTCUSDT", 5)
    per = {"ms": 1, "us": 1_000}[unit]
    raw = bars.assign(timestamp=epoch(bars["timestamp"], unit))
    raw.loc[3, "timestamp"] = 21_900_000_000_000 * per  # year 2664: ns overflow wraps to 2070
    path = write_binance_csv(tmp_path / "BTCUSDT-1m-2021-04-02.csv", raw, unit=unit)
    raises_at(TimestampError, path, 3, 21_900_000_000_000 * per)


def test_datetime_beyond_2100_in_parquet_is_refused(tmp_path):
    bars = real_bars("BTCUSDT", 3)
    table = pa.Table.from_pandas(bars, preserve_index=False)
    us = table.column("timestamp").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_pylist()
    us[1] = 23_036_000_000 * 1_000_000  # year 2700, representable in µs but not in ns
    table = table.set_column(0, "timestamp", pa.array(us, type=pa.timestamp("us", tz="UTC")))
    pq.write_table(table, tmp_path / "bars.parquet")
    raises_at(TimestampError, tmp_path / "bars.parquet", 1, "2699")


def test_csv_row_with_a_missing_field_is_refused_not_shifted(tmp_path):
    path = write_binance_csv(tmp_path / "BTCUSDT-1m-2021-04-02.csv", real_bars("BTCUSDT", 6))
    lines = path.read_text().splitlines()
    fields = lines[3].split(",")
    del fields[2]  # high: every later column would shift left (volume read as close)
    lines[3] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    exc = raises_at(MalformedRowError, path, 3, ",".join(fields)[:40])
    assert "11 fields" in str(exc)


def test_json_candle_of_the_wrong_length_is_a_malformed_row(tmp_path):
    rows = json.loads(_json_bytes(real_bars("BTCUSDT", 5)))
    rows[2] = rows[2][:5]
    path = tmp_path / "BTC_USDT-1m.json"
    path.write_text(json.dumps(rows))
    raises_at(MalformedRowError, path, 2, rows[2][0])


def test_headerless_csv_needs_all_twelve_binance_columns(tmp_path):
    path = tmp_path / "BTCUSDT-1m-2021-04-02.csv"
    path.write_text("1617321600000,1,2,0.5,1,1\n")
    with pytest.raises(MissingColumnError, match="12 Binance columns, found 6"):
        load_bars(path)


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("high", lambda b: b["low"] * 0.99, "high is below low"),
        ("close", lambda b: b["high"] * 1.01, "close outside"),
        ("close", lambda b: b["low"] * 0.99, "close outside"),
        ("open", lambda b: b["high"] * 1.01, "open outside"),
        ("open", lambda b: b["low"] * 0.99, "open outside"),
    ],
)
def test_prices_outside_the_bars_range_are_inconsistent(tmp_path, field, value, needle):
    bars = real_bars("BTCUSDT", 8)
    bars.loc[5, field] = value(bars.loc[5])
    path = write_long_parquet(tmp_path / "bars.parquet", bars)
    exc = raises_at(InconsistentPriceError, path, 5, bars.loc[5, field])
    assert exc.field == field
    assert needle in str(exc)
    assert isinstance(exc, BadPriceError)


@pytest.mark.parametrize(
    ("field", "text", "error"),
    [
        ("close", "nan", BadPriceError),
        ("close", "inf", BadPriceError),
        ("close", "-inf", BadPriceError),
        ("close", '"58700.1"', BadPriceError),
        ("close", "true", BadPriceError),
        ("volume", "nan", BadVolumeError),
        ("volume", "1e400", BadVolumeError),
        ("volume", "-3.5", BadVolumeError),
        ("volume", '"12.5"', BadVolumeError),
    ],
)
def test_bad_number_text_in_csv_names_row_and_value(tmp_path, field, text, error):
    path = write_binance_csv(tmp_path / "BTCUSDT-1m-2021-04-02.csv", real_bars("BTCUSDT", 6))
    lines = path.read_text().splitlines()
    cells = lines[2].split(",")
    cells[{"close": 4, "volume": 5}[field]] = text
    lines[2] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    exc = raises_at(error, path, 2, text)
    assert exc.field == field


@pytest.mark.parametrize(
    ("column", "value", "error"),
    [
        (4, "58700.1", BadPriceError),  # a quoted number
        (2, True, BadPriceError),  # a boolean
        (5, False, BadVolumeError),
        (3, None, BadPriceError),
        (4, [1.0], BadPriceError),
        (0, "1617321720000", TimestampError),
        (0, True, TimestampError),
    ],
)
def test_json_value_that_is_not_a_number_is_refused(tmp_path, column, value, error):
    rows = json.loads(_json_bytes(real_bars("BTCUSDT", 5)))
    rows[2][column] = value
    path = tmp_path / "BTC_USDT-1m.json"
    path.write_text(json.dumps(rows))
    raises_at(error, path, 2, value)


@pytest.mark.parametrize("dtype", [pa.string(), pa.bool_()])
def test_parquet_price_column_of_text_or_booleans_is_refused(tmp_path, dtype):
    bars = real_bars("BTCUSDT", 4)
    table = pa.Table.from_pandas(bars, preserve_index=False)
    close = table.column("close")
    values = close.cast(dtype) if dtype == pa.string() else pa.array([True] * 4)
    table = table.set_column(table.schema.get_field_index("close"), "close", values)
    pq.write_table(table, tmp_path / "bars.parquet")
    with pytest.raises(BadPriceError, match=r"row 0, field 'close'"):
        load_bars(tmp_path / "bars.parquet")


def test_boolean_price_column_in_a_frame_is_refused():
    bars = long_bars(periods=3)
    bars["volume"] = True
    with pytest.raises(BadVolumeError, match="bool"):
        validate_bars(bars)


@pytest.mark.parametrize("text", ["99999999999999999999m", "106752d", "367d", "1e30min", "-1m"])
def test_absurd_bar_size_is_bad_input_not_overflow(text):
    from dolphin.data.bars import parse_bar, to_bar

    with pytest.raises(BadInputError, match="bar size"):
        parse_bar(text)
    with pytest.raises(BadInputError, match="bar size"):
        to_bar(10**30)


@pytest.mark.parametrize("text", ["[]", "[[]]", "[5]", '[[1617321600000, 1, 1, 1, 1, 1], "x"]'])
def test_empty_or_ragged_json_is_a_typed_error(tmp_path, text):
    path = tmp_path / "BTC_USDT-1m.json"
    path.write_text(text)
    with pytest.raises(DataError, match=r"BTC_USDT-1m\.json"):
        load_bars(path)
