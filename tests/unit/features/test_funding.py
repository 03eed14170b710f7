"""Funding rates: loading every layout, typed errors, and the per-bar timing rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dolphin.core.errors import BadInputError, DataError, DuplicateTimestampError
from dolphin.features.funding import funding_events, load_funding
from tests.kit.paths import SHARED_DATA, require

MIN = 60_000_000_000


def test_loads_the_shared_long_parquet():
    df = load_funding(require(SHARED_DATA / "funding" / "binance_usdm_funding_2023-07.parquet"))
    assert list(df.columns) == ["timestamp", "symbol", "funding_rate"]
    assert len(df) == 5702 and df["funding_rate"].abs().max() <= 0.0075 + 1e-12


def test_loads_binance_dump_csv_with_the_symbol_from_the_file_name(tmp_path):
    f = tmp_path / "XLMUSDT-fundingRate-2023-07.csv"
    f.write_text("calc_time,funding_interval_hours,last_funding_rate\n"
                 "1688428800000,8,0.00010000\n1688457600000,8,-0.00002500\n")
    df = load_funding(f)
    assert list(df["symbol"]) == ["XLMUSDT", "XLMUSDT"]
    assert df["timestamp"].iloc[0] == pd.Timestamp("2023-07-04", tz="UTC")
    assert list(df["funding_rate"]) == [0.0001, -0.000025]


def test_loads_the_rest_layout_from_csv(tmp_path):
    f = tmp_path / "rates.csv"
    f.write_text("symbol,fundingTime,fundingRate\nBTCUSDT,1688428800000,0.0001\n")
    assert load_funding(f)["symbol"].tolist() == ["BTCUSDT"]


@pytest.mark.parametrize(
    ("body", "error", "needle"),
    [
        ("timestamp,symbol,funding_rate\n2023-07-04,BTCUSDT,nan\n", BadInputError, "finite"),
        ("timestamp,symbol,funding_rate\n2023-07-04,BTCUSDT,0.5\n", BadInputError, "0.5"),
        ("timestamp,symbol,funding_rate\n2023-07-04,BTCUSDT,abc\n", BadInputError, "abc"),
        ("timestamp,symbol,rate\n2023-07-04,BTCUSDT,0.0001\n", DataError, "funding_rate"),
        ("timestamp,symbol,funding_rate\nnot a time,BTCUSDT,0.0001\n", DataError, "time"),
        ("timestamp,symbol,funding_rate\n2023-07-04,BTCUSDT,0.0001\n2023-07-04,BTCUSDT,0.0001\n",
         DuplicateTimestampError, "BTCUSDT"),
    ],
)
def test_bad_funding_files_raise_typed_errors_naming_the_value(tmp_path, body, error, needle):
    f = tmp_path / "rates.csv"
    f.write_text(body)
    with pytest.raises(error) as exc:
        load_funding(f)
    assert needle in str(exc.value) and str(f) in str(exc.value)


def test_a_funding_time_belongs_to_the_first_bar_whose_close_is_at_or_after_it():
    ts = np.arange(10, dtype=np.int64) * MIN  # 1m bars opening at 0..9 min, closing at 1..10
    funding = pd.DataFrame({
        "timestamp": pd.to_datetime([3 * MIN, 3 * MIN + 1_000_000, 10 * MIN, 11 * MIN, 0],
                                    utc=True),
        "symbol": ["A", "A", "B", "A", "A"],
        "funding_rate": [0.1, 0.2, 0.3, 0.4, 0.5],
    })
    ev = funding_events(funding, ts, MIN, ["A", "B"])
    # 3:00 closes bar 2 (opened 2:00); 3:00.001 falls in bar 3; 10:00 closes the last bar;
    # 11:00 is after the data; 0:00 is before the first close
    assert [list(ev.bar(t)[1]) for t in range(10)] == [
        [], [], [0.1], [0.2], [], [], [], [], [], [0.3]
    ]
    assert list(ev.bar(9)[0]) == [1]
    sub = ev.slice(2, 4)
    assert [list(sub.bar(t)[1]) for t in range(2)] == [[0.1], [0.2]]
