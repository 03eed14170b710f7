"""End to end: `dolphin sweep` on real scans, parity of rows with `dolphin backtest`, a killed
sweep resumed, and the walkforward / optimize / study commands."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from dolphin.cli import main
from tests.kit.paths import CONFIGS, REPO
from tests.kit.scans import spot_2021_scans

GRID = {
    "vel_div_threshold": [-0.015, -0.02],
    "fixed_tp_pct": [0.006, 0.0095],
    "max_hold_bars": [60, 120],
    "min_irp_alignment": [0.35, 0.45],
}


@pytest.fixture(scope="module")
def scans_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("scans") / "scans.parquet"
    spot_2021_scans("2021-04-06", "2021-04-09").to_parquet(path)
    return path


@pytest.fixture(scope="module")
def grid_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("grid") / "grid.yaml"
    path.write_text(yaml.safe_dump(GRID))
    return path


def test_sweep_rows_match_dolphin_backtest(scans_path, grid_path, tmp_path, capsys):
    out = tmp_path / "sweep.parquet"
    # the sweep applies the forewarner only when asked; the backtest applies it by default
    assert main(["sweep", "--scans", str(scans_path), "--grid", str(grid_path),
                 "--out", str(out), "--workers", "2", "--no-progress",
                 "--forewarner"]) == 0  # fmt: skip
    df = pd.read_parquet(out)
    assert len(df) == 16
    assert (df["forewarner"] != "off").all()
    assert out.with_suffix(".html").read_text().count('<div id="heatmap-') == 6  # one per pair
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["best_by_dsr"]["config_id"] in set(df["config_id"])
    for i in (0, 7, 13):  # a few rows through the real `dolphin backtest` command
        row = df.iloc[i]
        cfg = tmp_path / f"c{i}.yaml"
        cfg.write_text(yaml.safe_dump({k: row[k].item() for k in GRID}))
        bt = tmp_path / f"bt{i}"
        assert main(["backtest", "--scans", str(scans_path), "--config", str(cfg),
                     "--out", str(bt)]) == 0  # fmt: skip
        metrics = json.loads((bt / "metrics.json").read_text())
        assert metrics["config_id"] == row["config_id"]
        assert metrics["trades_sha256"] == row["trades_sha256"]
        assert metrics["roi"] == row["roi"]
        assert metrics["forewarner"] == row["forewarner"]


def test_killed_sweep_resumes(scans_path, tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump({**GRID, "fraction": [0.1, 0.15, 0.2, 0.25]}))
    out = tmp_path / "sweep.parquet"
    cmd = [sys.executable, "-m", "dolphin", "sweep", "--scans", str(scans_path), "--grid",
           str(grid), "--out", str(out), "--chunk", "4", "--no-progress"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    work = out.with_name(out.name + ".work")
    deadline = time.monotonic() + 120
    while len(list(work.glob("part-*.parquet"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = len(list(work.glob("part-*.parquet")))
    assert 2 <= saved < 16 and not out.exists()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    assert "sweep" in done.stdout
    df = pd.read_parquet(out)
    assert len(df) == 64 and df["config_id"].is_unique
    assert df["combo"].tolist() == list(range(64))


def test_walkforward_optimize_and_study_commands(scans_path, grid_path, tmp_path, capsys):
    wf = tmp_path / "wf.parquet"
    assert main(["walkforward", "--scans", str(scans_path), "--grid", str(grid_path),
                 "--train-days", "1", "--test-days", "1", "--out", str(wf)]) == 0  # fmt: skip
    assert len(pd.read_parquet(wf)) == 2
    assert main(["optimize", "--scans", str(scans_path), "--space",
                 str(CONFIGS / "grids" / "space.yaml"), "--trials", "8", "--batch", "4"]) == 0
    lev = tmp_path / "lev.html"
    assert main(["study", "leverage", "--scans", str(scans_path), "--levels", "1,3,6,9",
                 "--bootstrap", "100", "--out", str(lev)]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert '"stitched_oos"' in text and '"best"' in text and '"knee_leverage"' in text
    assert '"fill":"tonexty"' in lev.read_text()  # the growth curve's bootstrap band
