"""Sweep parity with the replay on real data, the fast trade hash, grid expansion and resume."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dolphin.backtest import sweep as sw
from dolphin.backtest import sweep_run as sr
from dolphin.backtest.metrics import records_sha256, trades_sha256
from dolphin.backtest.replay import _trades_frame, run_replay
from dolphin.core.config import DolphinConfig
from dolphin.core.errors import ConfigError
from tests.kit.scans import spot_2021_scans


@pytest.fixture(scope="session")
def real_scans() -> pd.DataFrame:
    """Production-scanner scans of 2021-04-19..21 (two exchange gaps on the 20th included)."""
    return spot_2021_scans("2021-04-19", "2021-04-22")


@pytest.fixture(scope="session")
def data(real_scans):
    return sw.prepare(real_scans)


def random_configs(n: int, seed: int) -> list[DolphinConfig]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        thr = float(rng.uniform(-0.03, -0.008))
        out.append(
            DolphinConfig().replace(
                vel_div_threshold=thr,
                vel_div_extreme=thr - float(rng.uniform(0.005, 0.05)),
                fixed_tp_pct=float(rng.uniform(0.003, 0.02)),
                max_hold_bars=int(rng.integers(10, 300)),
                max_leverage=float(rng.uniform(1.0, 6.0)),
                min_leverage=0.5,
                leverage_convexity=float(rng.uniform(1.0, 4.0)),
                fraction=float(rng.uniform(0.05, 0.4)),
                dc_lookback_bars=int(rng.integers(2, 20)),
                dc_min_magnitude_bps=float(rng.uniform(0.0, 3.0)),
                min_irp_alignment=float(rng.uniform(0.0, 0.6)),
                beta_high=float(rng.uniform(0.3, 1.0)),
                beta_low=float(rng.uniform(0.0, 0.3)),
                use_direction_confirm=bool(rng.integers(0, 2)),
                use_asset_selection=bool(rng.integers(0, 4) > 0),
                use_alpha_layers=bool(rng.integers(0, 2)),
                stop_pct=float(rng.choice([1.0, 0.01])),
                seed=int(rng.integers(0, 1000)),
            )
        )
    return out


def test_champion_row_equals_replay_metrics(real_scans, data):
    cfg = DolphinConfig()
    row = sw.evaluate(data, [cfg])[0]
    replay = run_replay(real_scans, cfg).metrics
    assert replay["trades"] > 5
    assert {k: row[k] for k in replay} == replay  # every metric, exactly


@pytest.mark.parametrize("hell", [False, True])
def test_random_combinations_have_the_replays_trades(real_scans, data, hell):
    configs = random_configs(12, seed=5 + hell)
    rows = sw.evaluate(data, configs, hell=hell)
    traded = 0
    for cfg, row in zip(configs, rows, strict=True):
        replay = run_replay(real_scans, cfg, hell=hell).metrics
        assert row["trades_sha256"] == replay["trades_sha256"], cfg.id
        assert row["roi"] == replay["roi"]
        assert row["max_drawdown"] == replay["max_drawdown"]
        traded += replay["trades"] > 0
    assert traded >= 8


def test_a_combination_gives_the_same_row_alone_or_among_others(data):
    configs = random_configs(6, seed=9)
    together = sw.evaluate(data, configs)
    alone = sw.evaluate(data, [configs[3]])[0]
    assert alone == together[3]


def test_buffer_overflow_reruns_the_column_with_full_capacity(data):
    cfg = DolphinConfig().replace(max_hold_bars=1, vel_div_threshold=-0.005)
    small = sw.evaluate(data, [cfg], capacity=4)[0]
    assert small["trades"] > 4
    assert small == sw.evaluate(data, [cfg])[0]


def test_records_hash_equals_the_trades_table_hash(real_scans, data):
    rec = sw.trade_records(data, DolphinConfig())
    assert len(rec) > 5
    frame = _trades_frame(rec, data.assets)
    assert records_sha256(rec, data.assets) == trades_sha256(frame)
    empty = rec[:0]
    assert records_sha256(empty, data.assets) == trades_sha256(_trades_frame(empty, data.assets))
    bad = rec.copy()
    bad["pnl"][0] = np.nan
    assert records_sha256(bad, data.assets) == trades_sha256(_trades_frame(bad, data.assets))
    assert records_sha256(bad, data.assets) != records_sha256(rec, data.assets)


def test_trades_hash_sees_every_bit_of_every_column(data):
    rec = sw.trade_records(data, DolphinConfig())
    frame = _trades_frame(rec, data.assets)
    base = trades_sha256(frame)
    nudged = frame.copy()
    nudged.loc[0, "pnl"] = np.nextafter(nudged.loc[0, "pnl"], np.inf)
    assert trades_sha256(nudged) != base
    renamed = frame.copy()
    renamed.loc[1, "asset"] = renamed.loc[1, "asset"] + "X"
    assert trades_sha256(renamed) != base
    later = frame.copy()
    later.loc[2, "exit_time"] = later.loc[2, "exit_time"] + pd.Timedelta(1, "ns")
    assert trades_sha256(later) != base
    assert trades_sha256(frame[list(reversed(frame.columns))]) != base
    # the parquet round trip (what ``dolphin backtest`` writes) keeps the hash
    assert trades_sha256(frame.astype({"entry_bar": np.int32})) == base


def test_grid_expansion_drops_invalid_and_rejects_unknown(tmp_path):
    g = sr.expand_grid({"vel_div_threshold": [-0.02, -0.06], "fixed_tp_pct": [0.01, 0.01]})
    assert len(g.configs) == 1  # -0.06 is beyond the extreme; duplicates run once
    assert g.n_invalid == 2
    with pytest.raises(ConfigError, match="unknown field"):
        sr.expand_grid({"not_a_param": [1]})
    path = tmp_path / "g.yaml"
    path.write_text("max_hold_bars: [60, 120]\nfraction: 0.1\n")
    assert sr.load_grid(path) == {"max_hold_bars": [60, 120], "fraction": [0.1]}


def test_interrupted_sweep_resumes_where_it_stopped(data, tmp_path):
    grid = sr.expand_grid(
        {"vel_div_threshold": [-0.015, -0.02, -0.025], "max_hold_bars": [60, 120, 240]}
    )
    ref, ref_summary = sr.run_sweep(data, grid, tmp_path / "ref.parquet", progress=False, chunk=4)
    out = tmp_path / "s.parquet"
    with pytest.raises(sr.SweepInterruptedError):
        sr.run_sweep(data, grid, out, progress=False, chunk=4, stop_after_chunks=1)
    assert not out.exists()
    assert len(list(sr.work_dir(out).glob("part-*.parquet"))) == 1
    evaluated = []
    df, summary = sr.run_sweep(
        data, grid, out, progress=False, chunk=4, on_chunk=evaluated.append
    )
    assert len(evaluated) == 2  # 9 combos in chunks of 4: only the 2 unsaved chunks ran
    assert not sr.work_dir(out).exists()
    pd.testing.assert_frame_equal(df, ref)
    assert summary == ref_summary
    assert list(df.columns[:2]) == ["vel_div_threshold", "max_hold_bars"]
    assert {"config_id", "trades_sha256", "roi", "sharpe", "dsr", "calmar"} <= set(df.columns)
    assert summary["best_by_dsr"]["config_id"] == df.loc[df["dsr"].idxmax(), "config_id"]


def test_workers_give_the_same_rows(data, tmp_path):
    grid = sr.expand_grid({"fixed_tp_pct": [0.006, 0.0095, 0.013], "fraction": [0.1, 0.2]})
    one, _ = sr.run_sweep(data, grid, tmp_path / "a.parquet", progress=False, chunk=2)
    two, _ = sr.run_sweep(data, grid, tmp_path / "b.parquet", progress=False, chunk=2, workers=2)
    pd.testing.assert_frame_equal(one, two)


def test_work_folder_of_other_scans_is_refused(data, real_scans, tmp_path):
    grid = sr.expand_grid({"max_hold_bars": [60, 120, 240]})
    out = tmp_path / "s.parquet"
    with pytest.raises(sr.SweepInterruptedError):
        sr.run_sweep(data, grid, out, progress=False, chunk=1, stop_after_chunks=1)
    other = sw.prepare(real_scans.iloc[:3000].reset_index(drop=True))
    with pytest.raises(ConfigError, match="other scans"):
        sr.run_sweep(other, grid, out, progress=False)


def test_metrics_of_many_runs_equal_each_run_alone():
    from dolphin.backtest.metrics import metrics_columns, metrics_from_arrays

    rng = np.random.default_rng(4)
    n_trades = [0, 3, 17, 1]
    pnl = [rng.normal(size=k) * 10 for k in n_trades]
    held = [rng.integers(1, 90, size=k).astype(float) for k in n_trades]
    eq = 25_000.0 * np.exp(np.cumsum(rng.normal(size=(4, 9)) * 0.01, axis=1))
    cap = eq + rng.normal(size=eq.shape)
    many = metrics_columns(
        pnl=np.concatenate(pnl),
        held=np.concatenate(held),
        trade_lo=np.r_[0, np.cumsum(n_trades)],
        max_dd=np.array([0.0, 0.1, 0.2, 0.3]),
        exposure=np.array([0.0, 0.5, 0.25, 1.0]),
        bars=100,
        capital_end=cap,
        equity_end=eq,
        initial_capital=np.full(4, 25_000.0),
        config_ids=list("abcd"),
        sha256s=list("wxyz"),
    )
    for i in range(4):
        alone = metrics_from_arrays(
            pnl=pnl[i], held=held[i], max_dd=[0.0, 0.1, 0.2, 0.3][i],
            exposure=[0.0, 0.5, 0.25, 1.0][i], bars=100, capital_end=cap[i], equity_end=eq[i],
            initial_capital=25_000.0, config_id="abcd"[i], sha256="wxyz"[i],
        )  # fmt: skip
        assert many[i] == alone
    assert many[0]["trades"] == 0 and many[0]["win_rate"] is None
    assert many[2]["win_rate"] == float((pnl[2] > 0).mean())
