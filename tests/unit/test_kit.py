"""The test kit's builders produce what the tests assume they produce."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.kit.builders import (
    binance_rows,
    epoch,
    long_bars,
    real_bars,
    wide_closes,
    write_binance_csv,
    write_freqtrade_json,
)


def test_long_bars_is_sorted_regular_and_predictable():
    bars = long_bars(periods=4)
    assert list(bars.columns) == ["timestamp", "symbol", "open", "high", "low", "close", "volume"]
    assert bars["symbol"].tolist() == ["AAAUSDT"] * 4 + ["BBBUSDT"] * 4
    assert bars["close"].tolist() == [100, 101, 102, 103, 200, 201, 202, 203]
    assert (
        bars.groupby("symbol", observed=True)["timestamp"].diff().dropna() == pd.Timedelta("1min")
    ).all()


def test_long_bars_lives_and_drops_remove_exactly_those_bars():
    bars = long_bars(["AAAUSDT"], periods=10, lives={"AAAUSDT": (2, 8)}, drop={"AAAUSDT": [4, 5]})
    assert bars["close"].tolist() == [102, 103, 106, 107, 108]


def test_wide_closes_is_a_regular_grid():
    wide = wide_closes({"A": [1, 2, 3]}, bar="5min")
    assert (wide["timestamp"].diff().dropna() == pd.Timedelta("5min")).all()
    assert wide["A"].dtype == np.float64


def test_real_bars_are_real_consecutive_btc_minutes():
    bars = real_bars("BTCUSDT", 5)
    assert len(bars) == 5
    assert str(bars["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert bars["timestamp"].iloc[0] == pd.Timestamp("2021-04-02", tz="UTC")
    assert 50_000 < bars["close"].iloc[0] < 70_000
    bars.loc[0, "close"] = -1.0  # a copy: the cache must not change
    assert real_bars("BTCUSDT", 5)["close"].iloc[0] > 0


def test_epoch_units_differ_by_a_factor_of_1000():
    ts = pd.Series(pd.to_datetime(["2021-04-02"], utc=True))
    assert epoch(ts, "ms")[0] == 1_617_321_600_000
    assert epoch(ts, "us")[0] == 1_617_321_600_000_000


def test_binance_writer_writes_12_columns_with_optional_header(tmp_path):
    bars = real_bars("BTCUSDT", 3)
    assert binance_rows(bars).shape == (3, 12)
    plain = write_binance_csv(tmp_path / "a.csv", bars).read_text().splitlines()
    headed = write_binance_csv(tmp_path / "b.csv", bars, header=True).read_text().splitlines()
    assert len(plain) == 3 and len(headed) == 4
    assert plain[0].split(",")[0] == "1617321600000"
    assert headed[0].startswith("open_time,open,high,low,close,volume,close_time")


def test_freqtrade_writer_writes_ms_lists(tmp_path):
    text = write_freqtrade_json(tmp_path / "x.json", real_bars("BTCUSDT", 1)).read_text()
    assert text.startswith("[[1617321600000, ")
