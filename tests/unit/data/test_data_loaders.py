"""Every supported bar format loads into the same validated long layout."""

from __future__ import annotations

import gzip
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from dolphin.core.errors import DataError, UnsupportedFormatError
from dolphin.data import detect_format, load_bars
from dolphin.data.loaders import symbol_from_name
from tests.kit.builders import (
    real_bars,
    write_binance_csv,
    write_freqtrade_feather,
    write_freqtrade_json,
    write_long_parquet,
)
from tests.kit.paths import SAMPLE, USDM_1M_2025, require

PRICES = ["open", "high", "low", "close", "volume"]


def assert_long_layout(df: pd.DataFrame) -> None:
    assert list(df.columns) == ["timestamp", "symbol", *PRICES]
    assert str(df["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert all(df[c].dtype == np.float64 for c in PRICES)
    assert isinstance(df["symbol"].dtype, pd.CategoricalDtype)


def assert_same_bars(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert_long_layout(got)
    assert list(got["timestamp"]) == list(want["timestamp"])
    np.testing.assert_array_equal(got[PRICES].to_numpy(), want[PRICES].to_numpy())


def test_long_parquet_loads_sorted_with_ns_utc_timestamps(tmp_path):
    a, b = real_bars("ETHUSDT", 5), real_bars("BTCUSDT", 5)
    # Interleaved by time, as a writer appending bar by bar would store it.
    mixed = pd.concat([a, b]).sort_values("timestamp", kind="stable").reset_index(drop=True)
    mixed["timestamp"] = mixed["timestamp"].astype("datetime64[us, UTC]")
    df = load_bars(write_long_parquet(tmp_path / "bars.parquet", mixed))
    assert_long_layout(df)
    assert list(df["symbol"].cat.categories) == ["BTCUSDT", "ETHUSDT"]
    assert_same_bars(df.iloc[:5], b)
    assert_same_bars(df.iloc[5:].reset_index(drop=True), a)


def test_long_parquet_symbol_argument_selects_one_symbol():
    df = load_bars(require(USDM_1M_2025), symbol="BTCUSDT")
    assert list(df["symbol"].unique()) == ["BTCUSDT"]
    with pytest.raises(DataError, match="NOPEUSDT"):
        load_bars(USDM_1M_2025, symbol="NOPEUSDT")


@pytest.mark.parametrize("unit", ["ms", "us"])
@pytest.mark.parametrize("header", [False, True])
def test_binance_csv_loads_with_or_without_header_in_ms_or_us(tmp_path, unit, header):
    bars = real_bars("BTCUSDT", 20)
    path = write_binance_csv(tmp_path / "BTCUSDT-1m-2021-04-02.csv", bars, header=header, unit=unit)
    df = load_bars(path)
    assert_same_bars(df, bars)
    assert list(df["symbol"].unique()) == ["BTCUSDT"]
    assert detect_format(path) == "binance kline csv"


def test_binance_zip_dump_loads_like_its_csv(tmp_path):
    bars = real_bars("ETHUSDT", 10)
    csv = write_binance_csv(tmp_path / "ETHUSDT-1m-2021-04.csv", bars)
    zipped = shutil.make_archive(str(tmp_path / "ETHUSDT-1m-2021-04"), "zip", tmp_path, csv.name)
    csv.unlink()
    assert_same_bars(load_bars(zipped), bars)


def test_binance_csv_symbol_argument_overrides_file_name(tmp_path):
    bars = real_bars("BTCUSDT", 5)
    path = write_binance_csv(tmp_path / "klines.csv", bars)
    with pytest.raises(DataError, match="symbol"):
        load_bars(path)
    assert list(load_bars(path, symbol="BTCUSDT")["symbol"].unique()) == ["BTCUSDT"]


def test_freqtrade_json_loads_and_names_symbol_from_pair(tmp_path):
    bars = real_bars("BTCUSDT", 15)
    df = load_bars(write_freqtrade_json(tmp_path / "BTC_USDT-1m.json", bars))
    assert_same_bars(df, bars)
    assert list(df["symbol"].unique()) == ["BTCUSDT"]


def test_freqtrade_json_gz_loads(tmp_path):
    bars = real_bars("BTCUSDT", 5)
    plain = write_freqtrade_json(tmp_path / "x.json", bars)
    gz = tmp_path / "BTC_USDT-1m.json.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    assert_same_bars(load_bars(gz), bars)


def test_freqtrade_futures_feather_drops_settle_currency(tmp_path):
    bars = real_bars("ETHUSDT", 12)
    df = load_bars(write_freqtrade_feather(tmp_path / "ETH_USDT_USDT-1m-futures.feather", bars))
    assert_same_bars(df, bars)
    assert list(df["symbol"].unique()) == ["ETHUSDT"]


def test_directory_merges_every_supported_file_and_ignores_others(tmp_path):
    bars = real_bars("BTCUSDT", 20)
    write_binance_csv(tmp_path / "BTCUSDT-1m-2021-04-02b.csv", bars.iloc[10:])
    write_binance_csv(tmp_path / "BTCUSDT-1m-2021-04-02a.csv", bars.iloc[:10])
    write_freqtrade_json(tmp_path / "ETH_USDT-1m.json", real_bars("ETHUSDT", 20))
    (tmp_path / "notes.txt").write_text("not bars")
    df = load_bars(tmp_path)
    assert_long_layout(df)
    assert list(df["symbol"].cat.categories) == ["BTCUSDT", "ETHUSDT"]
    assert_same_bars(df[df["symbol"] == "BTCUSDT"].reset_index(drop=True), bars)
    assert detect_format(tmp_path) == "directory"


def test_directory_without_bar_files_is_unsupported(tmp_path):
    (tmp_path / "readme.md").write_text("x")
    with pytest.raises(UnsupportedFormatError, match="no supported bar files"):
        load_bars(tmp_path)


def test_unknown_suffix_is_unsupported(tmp_path):
    path = tmp_path / "bars.xlsx"
    path.write_text("x")
    with pytest.raises(UnsupportedFormatError, match=r"bars\.xlsx"):
        load_bars(path)


def test_missing_path_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_bars(tmp_path / "absent.parquet")


@pytest.mark.parametrize(
    ("name", "fmt", "symbol"),
    [
        ("BTCUSDT-1m-2024-01-01.csv", "binance kline csv", "BTCUSDT"),
        ("BTCUSDT-1m-2024-01.zip", "binance kline csv", "BTCUSDT"),
        ("BTC_USDT-1m.json", "freqtrade json", "BTCUSDT"),
        ("BTC_USDT_USDT-1m-futures.feather", "freqtrade feather", "BTCUSDT"),
        ("1000SATS_USDT-5m.json", "freqtrade json", "1000SATSUSDT"),
        ("prices.csv", "binance kline csv", None),
    ],
)
def test_symbol_comes_from_the_file_name(tmp_path, name, fmt, symbol):
    assert symbol_from_name(tmp_path / name, fmt) == symbol


def test_committed_sample_loads_as_20_symbols_by_7_days():
    df = load_bars(require(SAMPLE / "bars_1m_sample.parquet"))
    assert_long_layout(df)
    assert df["symbol"].nunique() == 20
    assert len(df) == 20 * 7 * 1440
    assert df["timestamp"].min() == pd.Timestamp("2021-04-12", tz="UTC")


@pytest.mark.parametrize(
    "convert",
    [
        lambda ts: ts.dt.tz_convert("Asia/Tokyo"),
        lambda ts: ts.dt.tz_localize(None),
        lambda ts: ts.astype("datetime64[s, UTC]"),
        lambda ts: ts.astype("int64") // 1_000_000,
        lambda ts: ts.astype("int64") // 1_000,
        lambda ts: (ts.astype("int64") // 1_000_000).astype(float),
    ],
    ids=["tokyo", "naive", "seconds", "int-ms", "int-us", "float-ms"],
)
def test_long_parquet_times_in_any_unit_or_zone_load_as_the_same_utc_bars(tmp_path, convert):
    bars = real_bars("BTCUSDT", 10)
    path = write_long_parquet(
        tmp_path / "bars.parquet", bars.assign(timestamp=convert(bars["timestamp"]))
    )
    assert_same_bars(load_bars(path), bars)


def test_csv_with_bom_crlf_blank_lines_and_padding_loads(tmp_path):
    bars = real_bars("BTCUSDT", 5)
    text = write_binance_csv(tmp_path / "x.csv", bars, header=True).read_text()
    lines = [" , ".join(line.split(",")) for line in text.splitlines()]
    path = tmp_path / "BTCUSDT-1m-2021-04-02.csv"
    path.write_bytes(("\ufeff" + "\r\n".join([*lines[:3], "", *lines[3:]]) + "\r\n").encode())
    assert_same_bars(load_bars(path), bars)


def test_json_integer_prices_and_float_times_load(tmp_path):
    bars = real_bars("BTCUSDT", 4).round({"open": 0, "high": 0, "low": 0, "close": 0})
    bars["high"] = bars[["open", "high", "close"]].max(axis=1)
    bars["low"] = bars[["open", "low", "close"]].min(axis=1)
    path = tmp_path / "BTC_USDT-1m.json"
    rows = write_freqtrade_json(path, bars)
    raw = [
        [float(t), int(o), int(h), int(lo), int(c), v]
        for t, o, h, lo, c, v in json.loads(rows.read_text())
    ]
    path.write_text(json.dumps(raw))
    assert_same_bars(load_bars(path), bars)
