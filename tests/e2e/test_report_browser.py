"""Every page opens in headless Chromium with no console error and charts with tick labels.

Pages: the backtest report of `dolphin run` on the committed sample (default beside HELL) and
the edge test page of `dolphin edge` on the same scans. ``DOLPHIN_SCREENSHOTS=docs/img`` also
saves a screenshot of each page there (how docs/img/report_*.png are made).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from dolphin.cli import main
from dolphin.commands import edge
from tests.kit.browser import open_page
from tests.kit.paths import SAMPLE

REPORT_CHARTS = {"fig-equity", "fig-underwater", "fig-daily", "fig-rolling-sharpe",
                 "fig-exposure", "fig-trade-pnl", "fig-vel-div", "fig-monthly"}


def _shot(tmp_path: Path, name: str) -> Path:
    folder = os.environ.get("DOLPHIN_SCREENSHOTS")
    return (Path(folder) if folder else tmp_path) / f"report_{name}.png"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cwd = Path.cwd()
    os.chdir(SAMPLE.parents[1])
    try:
        assert main(["run", "--out", str(out)]) == 0
    finally:
        os.chdir(cwd)
    return out


def _assert_clean(report, charts: set[str], shot: Path) -> None:
    assert report.errors == []
    seen = {c["id"]: c for c in report.charts}
    assert charts <= set(seen), charts - set(seen)
    for c in seen.values():  # every chart drew, with tick labels and titles on both axes
        assert c["drawn"] and c["xticks"] > 0 and c["yticks"] > 0, c
        assert c["xtitle"] and c["ytitle"], c
    shot.parent.mkdir(parents=True, exist_ok=True)
    shot.write_bytes(report.screenshot)
    assert len(report.screenshot) > 50_000


def test_backtest_report_opens_without_console_errors(run_dir, tmp_path):
    report = open_page(run_dir / "backtest" / "report.html", max_height=9000)
    _assert_clean(report, REPORT_CHARTS, _shot(tmp_path, "backtest"))


def test_edge_page_opens_without_console_errors(run_dir, tmp_path):
    p = argparse.ArgumentParser()
    edge.register(p.add_subparsers())
    out = tmp_path / "edge"
    args = p.parse_args(["edge", "--scans", str(run_dir / "scans.parquet"), "--runs", "40",
                         "--seed", "3", "--out", str(out)])
    assert args.func(args) == 0
    again = tmp_path / "edge2"
    args.out = again
    assert args.func(args) == 0
    first = json.loads((out / "edge.json").read_text())
    assert first == json.loads((again / "edge.json").read_text())  # reproducible by seed
    assert 1 / 41 <= first["p_value"] <= 1.0
    _assert_clean(open_page(out / "edge.html"), {"fig-edge"}, _shot(tmp_path, "edge"))


def test_browser_kit_reports_console_errors_and_missing_ticks(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><head><title>bad</title></head><body>"
                    "<div class='js-plotly-plot' id='empty'></div>"
                    "<script>console.error('boom'); undefinedFunction();</script>"
                    "<img src='missing.png'></body></html>")
    report = open_page(page)
    assert any("boom" in e for e in report.errors)
    assert any("undefinedFunction" in e for e in report.errors)
    assert any("missing.png" in e or "ERR_FILE_NOT_FOUND" in e for e in report.errors)
    assert [(c["id"], c["drawn"], c["xticks"]) for c in report.charts] == [("empty", False, 0)]
