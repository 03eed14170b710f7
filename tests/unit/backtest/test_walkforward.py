"""Walk-forward windows, seeded optimisation and the leverage study on real shared data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dolphin.backtest import sweep as sw
from dolphin.backtest.leverage_study import geometric_growth, growth_svg, leverage_study
from dolphin.backtest.optimize import load_space, optimize
from dolphin.backtest.sweep_run import expand_grid
from dolphin.backtest.walkforward import day_windows, stitched_metrics, walk_forward
from dolphin.core.config import DolphinConfig
from dolphin.core.errors import ConfigError
from tests.kit.paths import CONFIGS
from tests.kit.scans import spot_2021_scans


@pytest.fixture(scope="module")
def scans() -> pd.DataFrame:
    """Scans of 2021-04-05..09 (five UTC days) from the production scanner."""
    return spot_2021_scans("2021-04-04 12:00", "2021-04-10")


def test_day_windows_roll_by_the_test_length():
    assert day_windows(7, 3, 2) == [(0, 3, 5), (2, 5, 7)]
    with pytest.raises(ConfigError, match="cannot hold"):
        day_windows(3, 3, 1)


def test_stitched_metrics_compound():
    m = stitched_metrics(np.array([0.1, -0.5, 0.2]))
    assert m["roi"] == pytest.approx(1.1 * 0.5 * 1.2 - 1)
    assert m["max_drawdown"] == pytest.approx(0.5)


def test_walk_forward_picks_on_train_and_reports_out_of_sample(scans):
    grid = expand_grid({"vel_div_threshold": [-0.015, -0.02], "fixed_tp_pct": [0.006, 0.0095]})
    table, stitched = walk_forward(scans, grid, 2, 1, select="sharpe")
    assert len(table) == 4  # 6 UTC days (the first partial): windows start on days 0..3
    assert (table["test_start"] > table["train_start"]).all()
    assert stitched["days"] == 4
    first = table.iloc[0]
    day = scans[scans["timestamp"].dt.date.astype(str) == first["test_start"]]
    cfg = next(c for c in grid.configs if c.id == first["config_id"])
    again = sw.evaluate(sw.prepare(day.reset_index(drop=True)), [cfg])[0]
    assert again["roi"] == first["oos_roi"]  # the test window is re-runnable on its own rows


def test_optimize_is_seeded_and_uses_the_kernel(scans):
    data = sw.prepare(scans)
    space = load_space(CONFIGS / "grids" / "space.yaml")
    a, sa = optimize(data, space, 12, seed=3, batch=4)
    b, sb = optimize(data, space, 12, seed=3, batch=4)
    pd.testing.assert_frame_equal(a, b)
    assert sa == sb and sa["trials"] == 12
    row = a.iloc[int(np.argmax(a["objective"]))]
    cfg = DolphinConfig().replace(**{k: row[k].item() for k in space})
    assert cfg.id == sa["best"]["config_id"]
    assert sw.evaluate(data, [cfg])[0]["trades_sha256"] == row["trades_sha256"]


def test_leverage_study_finds_peak_and_knee(scans):
    table, summary = leverage_study(sw.prepare(scans), [1.0, 3.0, 6.0, 10.0], n_boot=200)
    assert list(table["max_leverage"]) == [1.0, 3.0, 6.0, 10.0]
    assert (table["band_lo"] <= table["band_hi"]).all()
    assert summary["knee_leverage"] <= summary["peak_leverage"]
    assert summary["peak_growth_daily"] == table["growth"].max()
    assert "<polygon" in growth_svg(table)


def test_geometric_growth_hand_worked():
    assert geometric_growth(np.array([0.1, -0.1]))[()] == pytest.approx(np.sqrt(0.99) - 1)
    assert geometric_growth(np.array([0.5, -1.0]))[()] == -1.0


def test_walk_forward_and_optimize_on_worker_processes_equal_one_process(scans):
    from dolphin.core.chunks import PoolRunner

    grid = expand_grid({"vel_div_threshold": [-0.015, -0.02], "fixed_tp_pct": [0.006, 0.0095]})
    one, stitched = walk_forward(scans, grid, 2, 1)
    two, stitched_2 = walk_forward(scans, grid, 2, 1, runner=PoolRunner(2))
    pd.testing.assert_frame_equal(one, two, check_exact=True)
    assert stitched == stitched_2
    data = sw.prepare(scans)
    space = load_space(CONFIGS / "grids" / "space.yaml")
    a, sa = optimize(data, space, 8, seed=5, batch=4)
    b, sb = optimize(data, space, 8, seed=5, batch=4, runner=PoolRunner(2))
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert sa == sb
    with pytest.raises(ConfigError, match="--workers"):
        PoolRunner(0)
