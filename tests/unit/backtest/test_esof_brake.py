"""The EsoF meta-brake on sizing: off in the champion, and when on applied alike by the event
replay, the sweep and the scan driver that the Nautilus backtest, paper and live traders run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dolphin.adapters.nautilus.parity_fills import run_parity_replay
from dolphin.alpha import layout as lay
from dolphin.alpha.engine import NDAlphaEngine
from dolphin.backtest import sweep as sw
from dolphin.backtest.replay import run_replay
from dolphin.core.config import DolphinConfig, EsofConfig
from dolphin.core.errors import BadInputError
from dolphin.features.esof import brake_scale
from tests.kit.scans import spot_2021_scans

OFF = DolphinConfig()
TUE = OFF.replace(esof_brake=True, esof_brake_weekdays=("Tue",))


def test_brake_scale_by_weekday_and_retrograde():
    on = EsofConfig(esof_brake=True)  # Mon, Thu, Sun at 0.5
    # 2021-04-19 was a Monday, 2021-04-20 a Tuesday, 2021-04-22 a Thursday, 2021-04-25 a Sunday
    assert [brake_scale(d, on) for d in ("2021-04-19", "2021-04-20", "2021-04-22",
                                         "2021-04-25")] == [0.5, 1.0, 0.5, 0.5]
    assert brake_scale("2021-04-19", EsofConfig()) == 1.0  # off
    retro = EsofConfig(esof_brake=True, esof_brake_weekdays=(), esof_brake_retrograde=True,
                       esof_brake_mult=0.25)
    # Mercury stationed retrograde on 2024-04-01 (22:14 UTC) and direct on 2024-04-25: the
    # 10th (a Wednesday) is inside, 2024-05-15 (also a Wednesday) outside, and 2024-04-01 at
    # 00:00 UTC still direct.
    assert brake_scale("2024-04-10", retro) == 0.25
    assert brake_scale("2024-05-15", retro) == 1.0
    assert brake_scale("2024-04-01", retro) == 1.0
    with pytest.raises(BadInputError):
        brake_scale("10/04/2024", on)


def test_the_engine_day_scale_carries_the_brake():
    eng = NDAlphaEngine(TUE, ["A", "B"])
    eng.begin_day("2021-04-19")
    assert eng.state[lay.S_DAY_MC_SCALE] == 1.0
    eng.begin_day("2021-04-20")
    assert eng.state[lay.S_DAY_MC_SCALE] == 0.5


@pytest.fixture(scope="module")
def scans() -> pd.DataFrame:
    return spot_2021_scans("2021-04-19", "2021-04-22")


def _compare(off: pd.DataFrame, on: pd.DataFrame) -> None:
    """Trades before the braked Tuesday are the same; on it every entry is sized no larger,
    and some smaller (the champion's entries there are not all at the leverage floor)."""
    day = pd.Timestamp("2021-04-20", tz="UTC")
    before_off, before_on = off[off["entry_time"] < day], on[on["entry_time"] < day]
    pd.testing.assert_frame_equal(before_off.reset_index(drop=True),
                                  before_on.reset_index(drop=True))
    tue_off = off[(off["entry_time"] >= day) & (off["entry_time"] < day + pd.Timedelta("1D"))]
    tue_on = on[(on["entry_time"] >= day) & (on["entry_time"] < day + pd.Timedelta("1D"))]
    assert len(tue_off) > 3
    first_off, first_on = tue_off.iloc[0], tue_on.iloc[0]
    assert (first_on["entry_bar"], first_on["asset"]) == (first_off["entry_bar"],
                                                          first_off["asset"])
    # Same capital at that entry, half the size scale: below the floor it is clipped to it.
    floor = OFF.alpha.min_leverage
    assert first_off["leverage"] > floor
    assert first_on["leverage"] == pytest.approx(max(floor, 0.5 * first_off["leverage"]))
    assert first_on["notional"] < first_off["notional"]


def test_the_replay_applies_the_brake(scans):
    _compare(run_replay(scans, OFF).trades, run_replay(scans, TUE).trades)


def test_the_scan_driver_applies_the_brake(scans):
    # DolphinCore and its DayProtocol: what the Nautilus strategy, paper and live traders run.
    _compare(run_parity_replay(scans, OFF).trades, run_parity_replay(scans, TUE).trades)


def test_the_sweep_has_the_replays_trades_with_the_brake(scans):
    configs = [TUE, OFF.replace(esof_brake=True), OFF.replace(esof_brake=True,
                                                              esof_brake_mult=0.25)]
    rows = sw.evaluate(sw.prepare(scans), configs)
    for cfg, row in zip(configs, rows, strict=True):
        replay = run_replay(scans, cfg).metrics
        assert row["trades_sha256"] == replay["trades_sha256"], cfg.id
        assert row["roi"] == replay["roi"]


def test_brake_scales_are_per_config_and_day():
    dates = ["2021-04-19", "2021-04-20"]
    got = sw.brake_scales(dates, [OFF, TUE, TUE])
    assert np.array_equal(got, [[1.0, 1.0], [1.0, 0.5], [1.0, 0.5]])
