"""Replay backtest: outputs, determinism, metrics recomputed from files, malformed scans, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from plotly.offline import get_plotlyjs

from dolphin.backtest.metrics import compute_metrics, max_drawdown, trades_sha256
from dolphin.backtest.output import write_outputs
from dolphin.backtest.replay import run_replay, validate_scans
from dolphin.cli import main
from dolphin.core.config import DolphinConfig
from dolphin.core.errors import BadInputError, MissingColumnError
from tests.kit.scans import build_scans, random_scans, scan_columns, trend_prices


@pytest.fixture(scope="module")
def scans():
    return random_scans(3 * 1440, 8, seed=3)


@pytest.fixture(scope="module")
def result(scans):
    return run_replay(scans, DolphinConfig())


def test_kit_builder_has_the_scan_schema_and_assets():
    df = build_scans({"BTCUSDT": trend_prices(5, 100.0, -1.0)}, np.full(5, -0.03), gap_bars=[2])
    assert list(df.columns) == [*scan_columns(), "BTCUSDT"]
    assert str(df["timestamp"].dtype) == "datetime64[ns, UTC]"
    np.testing.assert_allclose(df["BTCUSDT"], [100.0, 99.0, 98.0, 97.0, 96.0])
    assert df["data_gap"].tolist() == [False, False, True, False, False]
    assert validate_scans(df) == ["BTCUSDT"]


def test_replay_trades_and_daily_reconcile(result):
    t, d = result.trades, result.daily
    assert len(t) > 10
    assert len(d) == 3
    assert d["trades"].sum() == len(t)
    assert d["capital_end"].iloc[-1] == pytest.approx(25_000.0 + t["pnl"].sum())
    assert result.equity["equity"].iloc[-1] == pytest.approx(d["capital_end"].iloc[-1])
    assert (t["exit_bar"] > t["entry_bar"]).all()
    assert set(t["exit_reason"]) <= {"FIXED_TP", "STOP_LOSS", "MAX_HOLD", "END_OF_DATA"}
    assert set(t["bucket"]) <= {"extreme", "strong", "moderate", "weak"}
    assert (t["leverage"] <= 6.0).all() and (t["leverage"] >= 0.5).all()


def test_same_inputs_same_trades_sha256(scans, result):
    again = run_replay(scans, DolphinConfig())
    assert again.metrics["trades_sha256"] == result.metrics["trades_sha256"]
    other_seed = run_replay(scans, DolphinConfig().replace(seed=7))
    assert other_seed.metrics["trades_sha256"] != result.metrics["trades_sha256"]


def test_metrics_recompute_from_written_files(result, tmp_path):
    paths = write_outputs(result, tmp_path)
    trades = pd.read_parquet(paths["trades.parquet"])
    equity = pd.read_parquet(paths["equity.parquet"])
    daily = pd.read_parquet(paths["daily.parquet"])
    written = json.loads(paths["metrics.json"].read_text())
    again = compute_metrics(
        trades, equity, daily, initial_capital=25_000.0, config_id=DolphinConfig().id
    )
    # every computed metric recomputes; the rest say what the run modelled
    assert again == pytest.approx({k: written[k] for k in again})
    assert set(written) - set(again) == {
        "funding_modelled", "funding_paid", "funding_missing_assets", "forewarner", "bar",
        "durations", "warnings", "denials",
    }
    assert written["funding_modelled"] is False and written["funding_paid"] is None
    assert trades_sha256(trades) == written["trades_sha256"]
    pnl = trades["pnl"]
    assert written["roi"] == pytest.approx(pnl.sum() / 25_000.0)
    assert written["win_rate"] == pytest.approx((pnl > 0).mean())
    assert written["profit_factor"] == pytest.approx(pnl[pnl > 0].sum() / -pnl[pnl < 0].sum())
    assert written["config_id"] == DolphinConfig().id


def test_metrics_hand_worked():
    assert max_drawdown(np.array([100.0, 120.0, 90.0, 130.0, 117.0])) == pytest.approx(0.25)
    daily = pd.DataFrame({"capital_end": [110.0, 99.0], "equity_end": [110.0, 99.0]})
    equity = pd.DataFrame({"equity": [100.0, 110.0, 99.0], "in_position": [True, False, False]})
    trades = pd.DataFrame({"pnl": [10.0, -11.0], "entry_bar": [0, 1], "exit_bar": [1, 4]})
    m = compute_metrics(trades, equity, daily, initial_capital=100.0, config_id="x")
    assert m["roi"] == pytest.approx(-0.01)
    assert m["sharpe"] == pytest.approx(0.0)
    assert m["sortino"] == pytest.approx(0.0)
    assert m["max_drawdown"] == pytest.approx(0.1)
    assert m["profit_factor"] == pytest.approx(10 / 11)
    assert m["avg_hold_bars"] == pytest.approx(2.0)
    assert m["exposure"] == pytest.approx(1 / 3)
    assert m["geometric_growth_daily"] == pytest.approx(math.sqrt(0.99) - 1)


def test_missing_column_is_a_typed_error(scans):
    with pytest.raises(MissingColumnError, match="vel_div"):
        run_replay(scans.drop(columns=["vel_div"]), DolphinConfig())


def test_nan_vel_div_after_warmup_is_a_typed_error(scans):
    bad = scans.copy()
    bad.loc[500, "vel_div"] = np.nan
    with pytest.raises(BadInputError, match="row 500"):
        run_replay(bad, DolphinConfig())


def test_leading_nan_vel_div_is_warmup(scans):
    warm = scans.iloc[:1500].copy()
    warm.loc[:799, "vel_div"] = np.nan
    res = run_replay(warm, DolphinConfig())
    assert (res.trades["entry_bar"] >= 800).all()


def test_hell_friction_costs_more_and_takes_fewer_trades(scans, result):
    hell = run_replay(scans, DolphinConfig(), hell=True)
    assert 0 < len(hell.trades) < len(result.trades)


def test_cli_backtest_writes_every_file(scans, tmp_path, capsys):
    src = tmp_path / "scans.parquet"
    scans.to_parquet(src)
    out = tmp_path / "out"
    assert main(["backtest", "--scans", str(src), "--friction", "hell", "--out", str(out)]) == 0
    for name in (
        "trades.parquet",
        "equity.parquet",
        "daily.parquet",
        "metrics.json",
        "report.html",
    ):
        assert (out / name).exists(), name
    for name in ("trades.parquet", "metrics.json", "intervals.json"):  # the other friction
        assert (out / "default" / name).exists(), name
    text = capsys.readouterr().out
    assert f"config_id {DolphinConfig().id}" in text
    assert "95% interval" in text and "HELL" in text and "default" in text  # `run`'s table
    html = (out / "report.html").read_text()
    assert "HELL friction" in html and "default friction" in html
    assert 'id="fig-equity"' in html  # plotly charts, plotly.js inline (offline)
    assert "cdn.plot.ly" not in html.replace(get_plotlyjs(), "")


def test_cli_backtest_bad_scans_exit_code(tmp_path, capsys):
    src = tmp_path / "scans.parquet"
    random_scans(200, 3).drop(columns=["data_gap"]).to_parquet(src)
    assert main(["backtest", "--scans", str(src), "--out", str(tmp_path / "o")]) == 2
    assert "data_gap" in capsys.readouterr().err
