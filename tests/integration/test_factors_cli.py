"""`dolphin factors build` on the shared indices and `dolphin factors study` on the 2021-04 set.

The study runs on scans that `dolphin scan` makes from the whole shared 2021-04 spot 1m file
(43 UTC days), through the replay `dolphin backtest` runs, with the champion config.
"""

from __future__ import annotations

import contextlib
import io
import json
import math

import numpy as np
import pandas as pd
import pytest

from dolphin.cli import main
from dolphin.commands.factors import DEFAULT_INDICES
from dolphin.features.exf import FACTORS
from dolphin.features.factor_table import table_columns
from tests.kit.paths import SHARED_DATA, SPOT_1M_2021, require


def _strict(text: str) -> dict:
    def refuse(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_default_indices_are_the_shared_ones():
    assert DEFAULT_INDICES == SHARED_DATA / "indices"


def test_build_writes_the_daily_table_of_the_shared_indices(tmp_path, capsys):
    out = tmp_path / "exf"
    assert main(["factors", "build", "--indices", str(require(SHARED_DATA / "indices")),
                 "--start", "2025-11-05", "--end", "2025-11-16", "--out", str(out)]) == 0
    assert "12 days 2025-11-05 .. 2025-11-16" in capsys.readouterr().out
    table = pd.read_parquet(out / "factors.parquet")
    assert list(table.columns) == table_columns() and len(table) == 12
    assert str(table["date"].dtype) == "datetime64[ns, UTC]"
    row = table.set_index("date").loc[pd.Timestamp("2025-11-06", tz="UTC")]
    assert row["fng"] == 27.0  # CSV row 2025-11-06
    assert row["dvol_btc"] == 48.11  # candle stamped 2025-11-05 (ms 1762300800000)
    assert row["taker"] == 1.0272  # candle stamped 2025-11-05, the last of the 30
    # the 11-06 00:00 print is stamped 00:00:00.001, after midnight: 11-05 16:00:00.004 is used
    assert row["funding_btc"] == pytest.approx(0.002816 / 100, rel=1e-15)  # ms 1762358400004
    last = table.iloc[-1]  # 2025-11-16: only F&G is still fresh
    assert last["fng"] == 10.0
    assert all(math.isnan(last[name]) for name in FACTORS if name != "fng")
    assert not list(out.glob(".*.tmp"))  # written atomically


def test_build_names_a_missing_folder(tmp_path, capsys):
    assert main(["factors", "build", "--indices", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "o")]) != 0  # fmt: skip
    assert "factor folder does not exist" in capsys.readouterr().err


def test_study_refuses_zero_permutations(tmp_path, capsys):
    assert main(["factors", "study", "--scans", str(tmp_path / "s.parquet"),
                 "--permutations", "0"]) != 0  # fmt: skip
    assert "--permutations" in capsys.readouterr().err


@pytest.fixture(scope="module")
def scans_2021(tmp_path_factory):
    out = tmp_path_factory.mktemp("scans") / "scans.parquet"
    assert main(["scan", "--bars", str(require(SPOT_1M_2021)), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def study_2021(scans_2021, tmp_path_factory):
    out = tmp_path_factory.mktemp("study")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["factors", "study", "--scans", str(scans_2021), "--out", str(out)]) == 0
    print(buf.getvalue())  # the measured p-values, shown with pytest -s
    return out, buf.getvalue()


def test_study_on_2021_04_reports_every_feature_with_adjusted_p_values(study_2021):
    out, printed = study_2021
    study = _strict((out / "study.json").read_text())
    assert study["n_days"] == 43 and study["first_day"] == "2021-04-02"
    assert study["n_permutations"] == 10_000 and study["seed"] == 42
    by = {f["feature"]: f for f in study["features"]}
    assert [g["n"] for g in by["weekday"]["groups"]] == [6, 6, 6, 6, 7, 6, 6]
    assert sum(g["n"] for g in by["moon_quarter"]["groups"]) == 43
    assert not by["mercury_retrograde"]["testable"]  # direct from 2021-02-21 to 2021-05-29
    assert study["family"] == ["weekday", "moon_quarter"]
    for name in study["family"]:
        f = by[name]
        assert 1 / 10_001 <= f["p_value"] <= 1 and f["p_value"] <= f["p_holm"] <= 1
        assert f["q_bh"] <= f["p_holm"]
        assert f"{name:<19} {len(f['groups'])} groups" in printed
        assert f"Holm {f['p_holm']:.4f}" in printed
    assert study["supports_meta_brake"] == any(by[n]["p_holm"] < 0.05 for n in study["family"])
    assert "verdict: " in printed and "wipeout claim (seed 001)" in printed


def test_study_wipeout_claim_is_the_worst_six_days_of_the_table(study_2021):
    out, _ = study_2021
    claim = _strict((out / "study.json").read_text())["wipeout_claim"]
    days = pd.read_parquet(out / "days.parquet")
    assert len(days) == 43
    worst = days.nsmallest(6, "return")
    assert [d["date"] for d in claim["worst_days"]] == [str(d.date()) for d in worst["date"]]
    assert claim["hits"] == int(worst["weekday"].isin([0, 3, 6]).sum())
    assert claim["days_on_weekdays"] == int(days["weekday"].isin([0, 3, 6]).sum())
    assert claim["p_all_by_chance"] == pytest.approx(
        math.comb(claim["days_on_weekdays"], 6) / math.comb(43, 6))
    assert 0 < claim["p_value"] <= 1


def test_study_daily_pnl_is_the_backtests(scans_2021, tmp_path):
    part = tmp_path / "part.parquet"
    scans = pd.read_parquet(scans_2021)
    scans[scans["timestamp"] < pd.Timestamp("2021-04-05", tz="UTC")].to_parquet(part)
    assert main(["backtest", "--scans", str(part), "--out", str(tmp_path / "bt")]) == 0
    assert main(["factors", "study", "--scans", str(part), "--out", str(tmp_path / "st")]) == 0
    daily = pd.read_parquet(tmp_path / "bt" / "daily.parquet")
    days = pd.read_parquet(tmp_path / "st" / "days.parquet")
    np.testing.assert_array_equal(days["pnl"].to_numpy(), daily["pnl"].to_numpy())
    metrics = json.loads((tmp_path / "bt" / "metrics.json").read_text())
    study = _strict((tmp_path / "st" / "study.json").read_text())
    assert study["trades_sha256"] == metrics["trades_sha256"]
    assert study["config_id"] == metrics["config_id"]
