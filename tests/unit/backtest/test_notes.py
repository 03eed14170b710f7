"""Bar-size units and thin-universe warnings (DESIGN.md: parameters counted in bars)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dolphin.backtest.notes import describe_run, format_duration
from dolphin.core.config import DolphinConfig, resolve_overrides


def test_format_duration_by_hand():
    assert format_duration(5) == "5s"
    assert format_duration(500) == "8m20s"
    assert format_duration(7_200) == "2h"
    assert format_duration(100 * 60) == "1h40m"
    assert format_duration(86_400 + 4 * 3_600) == "1d4h"


def _ts(n: int, bar_s: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64) * bar_s * 1_000_000_000


def test_champion_on_1m_bars_reads_as_durations_and_warns_about_the_5s_calibration():
    notes = describe_run(_ts(10, 60), np.ones((10, 6)), DolphinConfig(), pd.DataFrame())
    assert notes["bar"] == "1m"
    assert notes["durations"]["max_hold_bars"] == "120 bars = 2h"  # 120 x 1 min
    assert notes["durations"]["lookback"] == "100 bars = 1h40m"
    assert notes["durations"]["dc_lookback_bars"] == "7 bars = 7m"
    assert notes["warnings"] == [
        "bar size 1m differs from the config's calibration bar 5s: bar-counted parameters "
        "last 12x longer than calibrated"
    ]


def test_no_bar_warning_at_the_calibration_bar():
    notes = describe_run(_ts(10, 5), np.ones((10, 6)), DolphinConfig(), pd.DataFrame())
    assert notes["warnings"] == []
    assert notes["durations"]["max_hold_bars"] == "120 bars = 10m"


def test_a_thin_universe_warns_and_counts_the_trades_entered_on_it():
    prices = np.ones((10, 6))
    prices[6:, 2:] = np.nan  # bars 6..9 have only 2 real closes
    trades = pd.DataFrame({"entry_bar": [1, 7, 8]})
    cfg = resolve_overrides({"calibration_bar_seconds": 60})
    notes = describe_run(_ts(10, 60), prices, cfg, trades)
    assert notes["warnings"] == [
        "4 of 10 bars have fewer than 5 assets with a real close; 2 of 3 trades entered on "
        "such bars"
    ]
