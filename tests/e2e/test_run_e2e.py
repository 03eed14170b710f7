"""`dolphin run`, the job behind `make run`, on the committed sample."""

from __future__ import annotations

import json

from dolphin.cli import main
from tests.kit.paths import SAMPLE


def test_run_scans_backtests_and_reports(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(SAMPLE.parents[1])
    out = tmp_path / "run"
    assert main(["run", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "latest scan" in text and "vel_div over" in text
    assert "roi" in text and "HELL" in text and "report " in text
    assert (out / "scans.parquet").exists()
    metrics = json.loads((out / "backtest" / "metrics.json").read_text())
    assert metrics["trades"] > 0
    assert metrics["trades_sha256"] in text
    assert (out / "backtest" / "report.html").read_text().startswith("<!DOCTYPE html>")
    # honest figures: sample, intervals, and the caveat of a 7-day sample
    assert "sample: default 7 days" in text and "95% interval" in text
    assert "annualised figures (sharpe, sortino, calmar) are not meaningful" in text
    intervals = json.loads((out / "backtest" / "intervals.json").read_text())
    assert intervals["days"] == metrics["days"] and intervals["annualisation_meaningful"] is False
    lo, hi = intervals["intervals"]["sharpe"]
    assert lo <= metrics["sharpe"] <= hi
    hell = json.loads((out / "backtest" / "hell" / "metrics.json").read_text())
    assert hell["trades"] < metrics["trades"]  # HELL results on disk too
