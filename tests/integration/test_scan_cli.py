"""`dolphin scan` and `dolphin scan calibrate` end to end on the committed sample."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from dolphin.cli import main
from tests.kit.builders import long_bars, write_long_parquet
from tests.kit.paths import SAMPLE

BARS = SAMPLE / "bars_1m_sample.parquet"


@pytest.fixture(scope="module")
def sample_scans(tmp_path_factory):
    out = tmp_path_factory.mktemp("scan") / "scans.parquet"
    assert main(["scan", "--bars", str(BARS), "--out", str(out)]) == 0
    return out


def test_scan_writes_one_row_per_bar_with_closes(sample_scans):
    scans = pd.read_parquet(sample_scans)
    assert len(scans) == 7 * 1440
    assert {"vel_div", "instability_50", "v750_lambda_max", "BTCUSDT"} <= set(scans.columns)
    assert scans["vel_div"].iloc[800:].notna().all()


def test_workers_give_byte_identical_output(sample_scans, tmp_path):
    out = tmp_path / "w2.parquet"
    assert main(["scan", "--bars", str(BARS), "--out", str(out), "--workers", "2"]) == 0
    assert out.read_bytes() == sample_scans.read_bytes()


def test_aligned_wide_input_gives_the_same_scans(sample_scans, tmp_path):
    # `data align` writes real closes (NaN = no bar), so even data_gap is the same now.
    wide = tmp_path / "wide.parquet"
    assert main(["data", "align", str(BARS), "--out", str(wide)]) == 0
    out = tmp_path / "from_wide.parquet"
    assert main(["scan", "--bars", str(wide), "--out", str(out)]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(sample_scans), pd.read_parquet(out))


def _ending_early(tmp_path):
    bars = long_bars(["AAAUSDT", "BBBUSDT", "CCCUSDT"], periods=40,
                     lives={"CCCUSDT": (0, 19)}, drop={"AAAUSDT": [10, 11]})
    rng = np.random.default_rng(0)  # non-flat returns so the windows have assets
    bars["close"] = bars["close"] * np.exp(rng.normal(0, 1e-3, len(bars)))
    return write_long_parquet(tmp_path / "early.parquet", bars)


def test_scan_writes_real_closes_and_honours_the_fill_limit(tmp_path):
    src, out = _ending_early(tmp_path), tmp_path / "s.parquet"
    assert main(["scan", "--bars", str(src), "--windows", "3,5", "--fill-limit", "5m",
                 "--out", str(out)]) == 0
    scans = pd.read_parquet(out)
    assert scans["CCCUSDT"].iloc[20:].isna().all() and scans["CCCUSDT"].iloc[:20].notna().all()
    assert scans["AAAUSDT"].iloc[10:12].isna().all()
    assert scans["n_assets"].iloc[24] == 3 and scans["n_assets"].iloc[25] == 2  # 19 + 5 bars
    default = tmp_path / "d.parquet"
    assert main(["scan", "--bars", str(src), "--windows", "3,5", "--out", str(default)]) == 0
    assert (pd.read_parquet(default)["n_assets"] == 3).all()  # one day covers the whole file


def test_bad_fill_limit_is_a_one_line_error(tmp_path, capsys):
    src = _ending_early(tmp_path)
    assert main(["scan", "--bars", str(src), "--fill-limit", "soon",
                 "--out", str(tmp_path / "s.parquet")]) == 2
    assert "fill_limit" in capsys.readouterr().err


def test_custom_windows(tmp_path):
    out = tmp_path / "s.parquet"
    assert main(["scan", "--bars", str(BARS), "--windows", "20,60", "--symbols",
                 "BTCUSDT,ETHUSDT,ADAUSDT", "--out", str(out)]) == 0
    scans = pd.read_parquet(out)
    assert "v60_lambda_max" in scans.columns and "v750_lambda_max" not in scans.columns
    assert scans["v20_n_assets"].max() == 3


def test_calibrate_prints_real_and_surrogate(sample_scans, capsys):
    assert main(["scan", "calibrate", "--scans", str(sample_scans)]) == 0
    text = capsys.readouterr().out
    assert "crossings/day" in text and "surrogate" in text and "sigma" in text


def test_bad_bars_exit_nonzero_and_write_nothing(tmp_path):
    bad = tmp_path / "bad.parquet"
    df = pd.read_parquet(BARS).head(100)
    df.loc[50, "close"] = -1.0
    df.to_parquet(bad)
    out = tmp_path / "never.parquet"
    proc = subprocess.run([sys.executable, "-m", "dolphin", "scan", "--bars", str(bad),
                           "--out", str(out)], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "bad.parquet" in proc.stderr and "-1.0" in proc.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]


def test_scan_without_bars_is_a_config_error(capsys):
    assert main(["scan", "--out", "x.parquet"]) == 3
    assert "--bars" in capsys.readouterr().err
