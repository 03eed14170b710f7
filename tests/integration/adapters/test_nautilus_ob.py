"""The Nautilus backtest with recorded OB features agrees with the internal engine.

Compared as ``test_nautilus_parity`` compares the two engines: the parity cost model, the
committed spot sample scanned by ``dolphin scan``, one ``dolphin backtest`` per engine in its own
process, here both with ``--ob`` on the same table; identical trades and PnL to 1e-6 relative.
The table is random on every bar so OB-1/2/3/5 act throughout, and its regimes give each day
an OB-4 stress the daily betas must show.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from dolphin.cli import main
from dolphin.scanner.schema import asset_columns
from tests.kit.ob import bar_times, per_bar_frame, write_frame
from tests.kit.paths import SAMPLE, require

NS_PER_DAY = 86_400_000_000_000


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("nt_ob")
    scans_path = root / "scans.parquet"
    bars = require(SAMPLE / "bars_1m_sample.parquet")
    assert main(["scan", "--bars", str(bars), "--out", str(scans_path)]) == 0
    scans = pd.read_parquet(scans_path)
    ts, assets = bar_times(scans), asset_columns(scans)
    rng = np.random.default_rng(3)
    n, m = len(ts), len(assets)
    per_asset = np.stack([rng.uniform(-0.5, 0.5, (n, m)), rng.uniform(0, 1, (n, m)),
                          rng.uniform(-0.5, 0.3, (n, m)), rng.uniform(0, 2, (n, m)),
                          rng.uniform(0, 1, (n, m))], axis=2)
    macro = np.stack([(rng.uniform(0, 1, n) < 0.05).astype(float),
                      rng.choice([-1.0, 0.0, 1.0], n), rng.uniform(0.8, 1.25, n)], axis=1)
    frame = per_bar_frame(ts, 60.0, assets, per_asset, macro)
    return scans_path, write_frame(root / "ob.parquet", frame), frame


def _backtest(scans, out, *extra):
    cmd = [sys.executable, "-m", "dolphin", "backtest", "--scans", str(scans), "--out", str(out),
           *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _stress_reference(frame: pd.DataFrame, dates) -> list[float]:
    """Plain reference of OB-4: per day, the previous UTC day's share of cycles at regime +1."""
    cycles = frame.drop_duplicates("ts_ns")
    day = cycles["ts_ns"] // NS_PER_DAY
    out = []
    for d in dates:
        prev = int(pd.Timestamp(d, tz="UTC").value) // NS_PER_DAY - 1
        regimes = cycles["regime_signal"][day == prev]
        out.append(float((regimes == 1.0).mean()) if len(regimes) else 0.0)
    return out


def test_nautilus_with_ob_gives_the_internal_trades_and_betas(inputs, tmp_path):
    scans, ob, frame = inputs
    _backtest(scans, tmp_path / "int", "--parity", "--ob", str(ob))
    _backtest(scans, tmp_path / "nt", "--engine", "nautilus", "--parity", "--ob", str(ob))
    _backtest(scans, tmp_path / "plain", "--parity")
    a = pd.read_parquet(tmp_path / "int" / "trades.parquet")
    b = pd.read_parquet(tmp_path / "nt" / "trades.parquet")
    plain = pd.read_parquet(tmp_path / "plain" / "trades.parquet")
    assert len(a) >= 20 and len(a) == len(b)
    key = ["entry_bar", "exit_bar", "asset", "direction"]
    pd.testing.assert_frame_equal(a[key], b[key])
    rel = ((a["pnl"] - b["pnl"]).abs() / a["pnl"].abs()).max()
    assert rel < 1e-6
    assert abs(b["capital_after"].iloc[-1] / a["capital_after"].iloc[-1] - 1) < 1e-9
    # the table acted: other trades than the same run without it
    assert len(plain) != len(a) or not plain[key].equals(a[key])
    # OB-4 on both engines: beta_low (7-day warm-up) × (1 + 0.25 × the previous day's share)
    da = pd.read_parquet(tmp_path / "int" / "daily.parquet")
    db = pd.read_parquet(tmp_path / "nt" / "daily.parquet")
    stress = _stress_reference(frame, da["date"])
    assert stress[0] == 0.0 and min(stress[1:]) > 0.2
    np.testing.assert_allclose(da["beta"], 0.2 * (1 + 0.25 * np.array(stress)), rtol=1e-12)
    np.testing.assert_array_equal(db["beta"].to_numpy(), da["beta"].to_numpy())
