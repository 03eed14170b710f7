"""`dolphin mc sample` on real scans: labelled Monte-Carlo outcomes, deterministic by seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dolphin.cli import main
from tests.kit.paths import SAMPLE


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    out = tmp_path_factory.mktemp("mc") / "scans.parquet"
    assert main(["scan", "--bars", str(SAMPLE / "bars_1m_sample.parquet"), "--out", str(out)]) == 0
    return out


def _sample(scans, out, seed):
    assert main(["mc", "sample", "--scans", str(scans), "--n", "12", "--paths", "3",
                 "--seed", str(seed), "--workers", "1", "--out", str(out)]) == 0
    return pd.read_parquet(out)


def test_mc_sample_labels_outcomes_and_is_deterministic(scans, tmp_path):
    a = _sample(scans, tmp_path / "a.parquet", 7)
    b = _sample(scans, tmp_path / "b.parquet", 7)
    c = _sample(scans, tmp_path / "c.parquet", 8)
    assert len(a) == 12
    for col in ("max_leverage", "fraction", "fixed_tp_pct", "max_hold_bars", "vel_div_threshold",
                "catastrophic"):
        assert col in a.columns, col
    assert set(np.unique(a["catastrophic"])) <= {0, 1}
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_mc_sample_refuses_a_tiny_n(scans, tmp_path, capsys):
    assert main(["mc", "sample", "--scans", str(scans), "--n", "3", "--out",
                 str(tmp_path / "x.parquet")]) != 0
    assert not (tmp_path / "x.parquet").exists()
