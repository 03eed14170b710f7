"""End to end: the research commands on real scans, their pages opened in headless Chromium,
``--export-best`` reproduced exactly by ``dolphin backtest --config``, and the run index.

Each page must load without a console error, an uncaught exception or an error log entry, draw
every chart it holds, and every chart must carry x and y tick labels and axis titles. With
``DOLPHIN_UPDATE_SCREENSHOTS=1`` the screenshots are written to ``docs/img/research_*.png``.
"""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest
import yaml

from dolphin.cli import main
from dolphin.core.runs_index import ENV_INDEX, read_runs
from tests.kit.browser import open_page
from tests.kit.paths import CONFIGS, REPO
from tests.kit.scans import spot_2021_scans

GRID = {"vel_div_threshold": [-0.015, -0.02], "fixed_tp_pct": [0.006, 0.0095],
        "max_hold_bars": [60, 120], "min_irp_alignment": [0.35, 0.45]}
PAGES = {"sweep": "sweep.html", "walkforward": "wf.html", "optimize": "opt.html",
         "leverage": "lev.html"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run sweep, walkforward, optimize and the leverage study once; return their folder."""
    d = tmp_path_factory.mktemp("research")
    scans = d / "scans.parquet"
    spot_2021_scans("2021-04-06", "2021-04-09").to_parquet(scans)
    (d / "grid.yaml").write_text(yaml.safe_dump(GRID))
    mp = pytest.MonkeyPatch()
    mp.setenv(ENV_INDEX, str(d / "index.jsonl"))
    common = ["--scans", str(scans), "-q"]
    try:
        assert main(["sweep", *common, "--grid", str(d / "grid.yaml"), "--out",
                     str(d / "sweep.parquet"), "--export-best", str(d / "sweep-best.yml")]) == 0
        assert main(["walkforward", *common, "--grid", str(d / "grid.yaml"), "--train-days", "1",
                     "--test-days", "1", "--out", str(d / "wf.parquet"),
                     "--export-best", str(d / "wf-best.yml")]) == 0
        assert main(["optimize", *common, "--space", str(CONFIGS / "grids" / "space.yaml"),
                     "--trials", "12", "--batch", "4", "--out", str(d / "opt.parquet"),
                     "--export-best", str(d / "opt-best.yml")]) == 0
        assert main(["study", "leverage", *common, "--levels", "1,2,3,6,9", "--bootstrap",
                     "100", "--out", str(d / "lev.html")]) == 0
        yield d
    finally:
        mp.undo()


def _backtest(scans, config, out) -> dict:
    assert main(["backtest", "--scans", str(scans), "--config", str(config), "--out", str(out),
                 "--no-forewarner", "-q"]) == 0  # the research commands ran without it
    return json.loads((out / "metrics.json").read_text())


def _same_run(metrics: dict, row, prefix: str = "") -> None:
    assert metrics["trades_sha256"] == row[f"{prefix}trades_sha256"]
    for k in ("roi", "sharpe", "max_drawdown", "trades"):
        want = row[f"{prefix}{k}"]
        assert (metrics[k] is None and pd.isna(want)) or metrics[k] == want, k


def test_sweep_export_best_is_the_best_row_by_dsr_and_backtest_reproduces_it(runs):
    df = pd.read_parquet(runs / "sweep.parquet")
    best = df.loc[df["dsr"].idxmax()]  # derived here, not read from the summary
    text = (runs / "sweep-best.yml").read_text()
    assert f"# config id: {best['config_id']}" in text and "--no-forewarner" in text
    metrics = _backtest(runs / "scans.parquet", runs / "sweep-best.yml", runs / "bt-sweep")
    assert metrics["config_id"] == best["config_id"]
    _same_run(metrics, best)


def test_optimize_export_best_is_the_best_trial_and_backtest_reproduces_it(runs):
    df = pd.read_parquet(runs / "opt.parquet")
    ok = df[df["sr_daily"].notna()]
    best = ok.loc[ok["sr_daily"].astype(float).idxmax()]
    metrics = _backtest(runs / "scans.parquet", runs / "opt-best.yml", runs / "bt-opt")
    assert metrics["config_id"] == best["config_id"]
    _same_run(metrics, best)


def test_walkforward_export_best_is_the_last_pick_and_reproduces_its_test_window(runs):
    table = pd.read_parquet(runs / "wf.parquet")
    last = table.iloc[-1]
    scans = pd.read_parquet(runs / "scans.parquet")
    day = scans["timestamp"].dt.strftime("%Y-%m-%d")
    window = scans[(day >= last["test_start"]) & (day <= last["test_end"])]
    window.reset_index(drop=True).to_parquet(runs / "wf-window.parquet")
    metrics = _backtest(runs / "wf-window.parquet", runs / "wf-best.yml", runs / "bt-wf")
    assert metrics["config_id"] == last["config_id"]
    _same_run(metrics, last, prefix="oos_")


def test_the_research_runs_are_in_the_index_and_outputs_in_their_manifest(runs):
    entries = read_runs(runs / "index.jsonl")
    assert [e["command"] for e in entries][:4] == ["sweep", "walkforward", "optimize",
                                                   "study leverage"]
    assert entries[0]["span"] == ["2021-04-06", "2021-04-08"]
    assert entries[0]["metrics"]["trials"] == 16
    manifest = json.loads((runs / ".dolphin-manifest.json").read_text())["outputs"]
    assert set(manifest["sweep.parquet"]["files"]) == {"sweep.parquet", "sweep.summary.json",
                                                       "sweep.html", "sweep-best.yml"}


@pytest.mark.parametrize("name", list(PAGES))
def test_each_research_page_opens_in_chromium_without_errors_and_with_tick_labels(runs, name):
    report = open_page(runs / PAGES[name])
    assert report.errors == []
    assert report.figure_divs >= 1 and len(report.charts) == report.figure_divs
    for chart in report.charts:
        assert chart["drawn"], chart
        assert chart["xticks"] > 0 and chart["yticks"] > 0, chart
        assert chart["xtitle"] and chart["ytitle"], chart
    assert report.screenshot[:8] == b"\x89PNG\r\n\x1a\n"
    (runs / f"research_{name}.png").write_bytes(report.screenshot)
    if os.environ.get("DOLPHIN_UPDATE_SCREENSHOTS") == "1":
        (REPO / "docs" / "img").mkdir(parents=True, exist_ok=True)
        (REPO / "docs" / "img" / f"research_{name}.png").write_bytes(report.screenshot)
