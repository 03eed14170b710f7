"""`dolphin data info` and `dolphin data align` on every shared bar file and on bad input."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from dolphin.cli import main
from dolphin.data import read_wide
from tests.kit.builders import long_bars, real_bars, write_binance_csv, write_long_parquet
from tests.kit.paths import ALL_BAR_FILES, REPO, SAMPLE, require


@pytest.mark.parametrize("path", ALL_BAR_FILES, ids=lambda p: p.name)
def test_info_prints_summary_of_every_shared_bar_file(path, capsys):
    assert main(["data", "info", str(require(path))]) == 0
    out = capsys.readouterr().out
    for label in ("file:", "format:   long parquet", "bar:", "symbols:", "span:", "rows:"):
        assert label in out
    assert "symbol" in out and "longest gap" in out
    assert out.count("USDT") >= int(out.split("symbols:")[1].split()[0])


@pytest.mark.parametrize("path", ALL_BAR_FILES, ids=lambda p: p.name)
def test_align_writes_the_wide_matrix_of_every_shared_bar_file(path, tmp_path, capsys):
    out = tmp_path / "wide.parquet"
    assert main(["data", "align", str(require(path)), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    wide = read_wide(out)
    assert f"wrote {len(wide):,} rows x {wide.shape[1]} columns" in printed
    assert str(out) in printed
    assert wide.shape[1] > 10
    assert os.listdir(tmp_path) == ["wide.parquet"]


def test_align_with_bar_and_symbols_on_the_sample(tmp_path):
    out = tmp_path / "w.parquet"
    sample = require(SAMPLE / "bars_1m_sample.parquet")
    argv = [
        "data",
        "align",
        str(sample),
        "--bar",
        "5m",
        "--symbols",
        "ETHUSDT,BTCUSDT",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    wide = read_wide(out)
    assert list(wide.columns) == ["timestamp", "ETHUSDT", "BTCUSDT"]
    assert len(wide) == 7 * 288
    assert not np.isnan(wide[["ETHUSDT", "BTCUSDT"]].to_numpy()).any()


def test_align_writes_real_closes_or_with_fill_limit_the_filled_matrix(tmp_path, capsys):
    bars = long_bars(periods=8, lives={"AAAUSDT": (0, 3)}, drop={"BBBUSDT": [5]})
    src = write_long_parquet(tmp_path / "b.parquet", bars)
    out = tmp_path / "w.parquet"
    assert main(["data", "align", str(src), "--out", str(out)]) == 0
    assert "real closes" in capsys.readouterr().out
    wide = read_wide(out)
    nan = np.nan
    np.testing.assert_array_equal(wide["AAAUSDT"], [100, 101, 102, 103, nan, nan, nan, nan])
    np.testing.assert_array_equal(wide["BBBUSDT"], [200, 201, 202, 203, 204, nan, 206, 207])
    assert main(["data", "align", str(src), "--fill-limit", "2m", "--out", str(out)]) == 0
    assert "filled for at most 2m" in capsys.readouterr().out
    wide = read_wide(out)
    np.testing.assert_array_equal(wide["AAAUSDT"], [100, 101, 102, 103, 103, 103, nan, nan])
    np.testing.assert_array_equal(wide["BBBUSDT"], [200, 201, 202, 203, 204, 204, 206, 207])


def test_bad_price_exits_non_zero_names_file_and_writes_nothing(tmp_path, capsys):
    bars = long_bars(periods=5)
    bars.loc[2, "close"] = -7.0
    src = write_long_parquet(tmp_path / "bad.parquet", bars)
    out = tmp_path / "out" / "w.parquet"
    out.parent.mkdir()
    assert main(["data", "align", str(src), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "bad.parquet, row 2, field 'close'" in err and "-7.0" in err
    assert os.listdir(out.parent) == []


def test_existing_output_survives_a_failed_align(tmp_path, capsys):
    bars = real_bars("BTCUSDT", 6)
    bars.loc[3, "timestamp"] = bars.loc[2, "timestamp"]
    src = write_binance_csv(tmp_path / "BTCUSDT-1m-2021-04-02.csv", bars)
    out = tmp_path / "w.parquet"
    out.write_bytes(b"previous result")
    assert main(["data", "align", str(src), "--out", str(out)]) == 2
    assert "duplicate timestamp" in capsys.readouterr().err
    assert out.read_bytes() == b"previous result"
    assert sorted(os.listdir(tmp_path)) == ["BTCUSDT-1m-2021-04-02.csv", "w.parquet"]


def test_unknown_symbol_and_unwritable_output_are_one_line_errors(tmp_path, capsys):
    src = write_long_parquet(tmp_path / "ok.parquet", long_bars(periods=3))
    assert (
        main(["data", "align", str(src), "--symbols", "ZZZ", "--out", str(tmp_path / "w.parquet")])
        == 2
    )
    assert "ZZZ" in capsys.readouterr().err
    assert main(["data", "align", str(src), "--out", str(tmp_path / "no" / "w.parquet")]) == 2
    assert "cannot write output" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["ok.parquet"]


def test_info_on_missing_column_exits_non_zero(tmp_path, capsys):
    src = write_long_parquet(tmp_path / "x.parquet", long_bars().drop(columns="open"))
    assert main(["data", "info", str(src)]) == 2
    assert "x.parquet, field 'open'" in capsys.readouterr().err


@pytest.mark.parametrize("action", ["info", "align"])
def test_help_describes_each_action(action, capsys):
    with pytest.raises(SystemExit) as info:
        main(["data", action, "--help"])
    assert info.value.code == 0
    assert "path" in capsys.readouterr().out


def test_python_m_dolphin_reports_bad_timestamp_and_leaves_no_file(tmp_path):
    frame = long_bars(periods=4).astype({"timestamp": str})
    frame.loc[1, "timestamp"] = "yesterday-ish"
    src = write_long_parquet(tmp_path / "bad.parquet", frame)
    out = tmp_path / "w.parquet"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "dolphin", "data", "align", str(src), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert "bad.parquet, row 1, field 'timestamp'" in proc.stderr
    assert "yesterday-ish" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["bad.parquet"]
    assert pd.read_parquet(src).shape == (8, 7)
