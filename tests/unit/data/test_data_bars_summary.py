"""Bar sizes parse, format and infer; the per-symbol summary counts gaps."""

from __future__ import annotations

import pandas as pd
import pytest

from dolphin.core.errors import BadInputError, DataError
from dolphin.data import format_bar, infer_bar, load_bars, parse_bar, summarize
from dolphin.data.bars import format_duration
from dolphin.data.sample import cut_sample
from tests.kit.builders import long_bars
from tests.kit.paths import SPOT_1M_2021, require


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("1m", 1),
        ("5m", 5),
        ("15m", 15),
        ("1h", 60),
        ("4h", 240),
        ("1d", 1440),
        ("1w", 10080),
        ("1min", 1),
    ],
)
def test_parse_bar_reads_binance_intervals(text, minutes):
    assert parse_bar(text) == pd.Timedelta(minutes=minutes)


@pytest.mark.parametrize("text", ["", "0m", "-1m", "1M", "abc", "1 fortnight"])
def test_parse_bar_rejects_non_positive_or_unknown_sizes(text):
    with pytest.raises(BadInputError, match="bar"):
        parse_bar(text)


@pytest.mark.parametrize("text", ["30s", "1m", "5m", "1h", "1d", "1w"])
def test_format_bar_round_trips(text):
    assert format_bar(parse_bar(text)) == text


def test_format_duration_is_compact():
    assert format_duration(pd.Timedelta("2 days 4h13m")) == "2d 4h13m"
    assert format_duration(pd.Timedelta(0)) == "0"


def test_infer_bar_ignores_gaps():
    bars = long_bars(periods=12, bar="5min", drop={"AAAUSDT": [2, 3, 7]})
    assert infer_bar(bars) == pd.Timedelta(minutes=5)


def test_infer_bar_needs_two_bars_of_one_symbol():
    with pytest.raises(DataError, match="bar size"):
        infer_bar(long_bars(periods=1))


def test_summary_counts_missing_bars_and_longest_gap():
    bars = long_bars(periods=20, lives={"BBBUSDT": (5, 19)}, drop={"AAAUSDT": [3, 4, 5, 10]})
    s = summarize(bars).set_index("symbol")
    assert s.loc["AAAUSDT", "rows"] == 16
    assert s.loc["AAAUSDT", "expected_rows"] == 20
    assert s.loc["AAAUSDT", "gaps"] == 4
    assert s.loc["AAAUSDT", "longest_gap"] == pd.Timedelta(minutes=3)
    assert s.loc["BBBUSDT", "first"] == pd.Timestamp("2024-01-01 00:05", tz="UTC")
    assert s.loc["BBBUSDT", "gaps"] == 0
    assert s.loc["BBBUSDT", "longest_gap"] == pd.Timedelta(0)
    assert (s["bar"] == pd.Timedelta(minutes=1)).all()


def test_summary_of_the_real_file_finds_the_two_outages():
    s = summarize(load_bars(require(SPOT_1M_2021)))
    btc = s.set_index("symbol").loc["BTCUSDT"]
    # 2021-04-20 (150 missing minutes) and 2021-04-25 (284): README's maintenance windows.
    assert btc["gaps"] == 434
    assert btc["longest_gap"] == pd.Timedelta(hours=4, minutes=44)


def test_sample_cut_is_7_days_of_the_20_largest_symbols():
    bars = long_bars(
        [f"S{k:02d}USDT" for k in range(22)], start="2021-04-11 23:58", periods=7 * 1440 + 4
    )
    cut = cut_sample(bars)
    assert cut["symbol"].nunique() == 20
    # Builder prices grow with the symbol index, so the two smallest are dropped.
    assert "S00USDT" not in set(cut["symbol"]) and "S21USDT" in set(cut["symbol"])
    assert cut["timestamp"].min() == pd.Timestamp("2021-04-12", tz="UTC")
    assert cut["timestamp"].max() == pd.Timestamp("2021-04-18 23:59", tz="UTC")
