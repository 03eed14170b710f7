"""Backtests with recorded OB features on real scans: every OB sub-system shows in the trades.

Scans: the production scanner on the shared 2021-04 spot set, 2021-04-19..21 (the sweep parity
tests' window). The base config turns the §8.3 OB edge off: with a recorded OB engine the edge
is ``fill_probability × ob_edge_bps`` instead of the seeded Monte-Carlo draw, which would move
every trade's PnL and hide what each sub-system does. With it off, a neutral table is exactly no
OB (first test), so each difference below is the one planted row set's doing.

Baseline trades used below (default config, no OB): the first entry is bar 757 on BTCUSDT
(FIXED_TP at 798), the second bar 800 on BTCUSDT, the third bar 1014 on BTCUSDT held to
MAX_HOLD (120 bars) at 1134. The tests assert these facts before relying on them.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dolphin.backtest import sweep as sw
from dolphin.backtest.ob_table import ObTable, RecordedOb
from dolphin.backtest.replay import asset_columns, run_replay
from dolphin.cli import main
from dolphin.core.config import DolphinConfig
from tests.kit.ob import bar_times, neutral, per_bar_frame, write_frame
from tests.kit.scans import spot_2021_scans

BAR_S = 60.0
S = 1_000_000_000
CFG = DolphinConfig().replace(use_ob_edge=False)
TP = 0.0095  # fixed_tp_pct
MAX_HOLD = 120


@pytest.fixture(scope="module")
def scans() -> pd.DataFrame:
    return spot_2021_scans("2021-04-19", "2021-04-22")


@pytest.fixture(scope="module")
def assets(scans) -> list[str]:
    return asset_columns(scans)


@pytest.fixture(scope="module")
def ts(scans) -> np.ndarray:
    return bar_times(scans)


@pytest.fixture(scope="module")
def base(scans):
    r = run_replay(scans, CFG)
    t = r.trades
    assert t.loc[0, ["entry_bar", "exit_bar", "asset", "exit_reason"]].tolist() == [
        757, 798, "BTCUSDT", "FIXED_TP"]
    assert t.loc[1, ["entry_bar", "asset"]].tolist() == [800, "BTCUSDT"]
    assert t.loc[2, ["entry_bar", "exit_bar", "asset", "exit_reason"]].tolist() == [
        1014, 1134, "BTCUSDT", "MAX_HOLD"]
    return r


@pytest.fixture
def arrays(ts, assets):
    """Fresh all-neutral per-bar arrays to plant values in."""
    return neutral(len(ts), len(assets))


def replay_with(scans, ts, assets, per_asset, macro, extra=None, cfg=CFG):
    """Replay with the table whose bar t holds ``per_asset[t]``/``macro[t]`` (+ extra rows)."""
    df = per_bar_frame(ts, BAR_S, assets, per_asset, macro)
    if extra is not None:
        df = pd.concat([df, extra]).sort_values(["ts_ns", "symbol"], kind="stable")
    return run_replay(scans, cfg, ob_engine=RecordedOb(ObTable(df.reset_index(drop=True)),
                                                       BAR_S))


KEY = ["entry_bar", "exit_bar", "asset", "direction", "exit_reason"]


def test_a_neutral_table_is_exactly_no_ob(scans, ts, assets, base, arrays):
    # neutral rows leave every sub-system where it is without OB: confidence ×1, multiplier 1,
    # default exits; depth quality 1 lifts every ARS by 5 % of |ARS|, which keeps the ranking
    r = replay_with(scans, ts, assets, *arrays)
    assert len(base.trades) >= 15
    assert r.metrics["trades_sha256"] == base.metrics["trades_sha256"]
    assert r.daily["beta"].tolist() == base.daily["beta"].tolist()


# ------------------------------------------------------------------ OB-1
def test_ob1_the_depth_gate_skips_a_thin_book(scans, ts, assets, base, arrays):
    per_asset, macro = arrays
    per_asset[:, assets.index("BTCUSDT"), 3] = 0.10  # below the 0.20 depth gate on every bar
    r = replay_with(scans, ts, assets, per_asset, macro).trades
    assert (base.trades["asset"] == "BTCUSDT").sum() >= 3
    assert not (r["asset"] == "BTCUSDT").any()  # a gated asset is never chosen
    # §5.5: the ranking walk goes on past the gated asset, so bar 757 still enters, elsewhere
    assert r.loc[0, "entry_bar"] == 757 and r.loc[0, "asset"] != "BTCUSDT"


def test_ob1_depth_quality_reorders_the_ranking(scans, ts, assets, base, arrays):
    per_asset, macro = arrays
    per_asset[:, :, 3] = 1.6  # deep books: ARS +10 %
    per_asset[:, assets.index("BTCUSDT"), 3] = 0.3  # thin (above the gate): ARS −10 %
    r = replay_with(scans, ts, assets, per_asset, macro).trades
    # BTC's lead at 757 survives a 20 % swing; at 800 another asset overtakes it
    assert r.loc[0, ["entry_bar", "asset"]].tolist() == [757, "BTCUSDT"]
    assert r.loc[1, "entry_bar"] == 800 and r.loc[1, "asset"] != "BTCUSDT"


# ------------------------------------------------------------------ OB-2
def test_ob2_a_persistent_contradiction_skips_the_entry(scans, ts, assets, base, arrays):
    per_asset, macro = arrays
    j = assets.index("BTCUSDT")
    # a SHORT entry against a bid-heavy book (imbalance +0.5, effective −0.5 < −0.15) that has
    # persisted (0.8 > 0.60): the §4.3 hard skip, on bar 757 only
    per_asset[757, j, 0], per_asset[757, j, 1] = 0.5, 0.8
    r = replay_with(scans, ts, assets, per_asset, macro).trades
    assert 757 not in set(r["entry_bar"])
    assert r.loc[0, "entry_bar"] == 800  # the next signal bar enters as before


def test_ob2_a_weak_contradiction_only_dampens_confidence(scans, ts, assets, base, arrays):
    per_asset, macro = arrays
    j = assets.index("BTCUSDT")
    per_asset[757, j, 0], per_asset[757, j, 1] = 0.12, 0.3  # effective −0.12, not persistent
    r = replay_with(scans, ts, assets, per_asset, macro).trades
    b = base.trades
    pd.testing.assert_frame_equal(r[KEY], b[KEY])
    # §4.3: confidence × max(0.85, 1 − 0.12 × 0.3 × 0.4) = × 0.9856 on that trade only
    assert r.loc[0, "confidence"] == pytest.approx(b.loc[0, "confidence"] * 0.9856, rel=1e-12)
    assert (r["confidence"].iloc[1:] == b["confidence"].iloc[1:]).all()


# ------------------------------------------------------------------ OB-3
def test_ob3_the_market_multiplier_scales_leverage(scans, ts, assets, base, arrays):
    per_asset, macro = arrays
    macro[:, 2] = 1.2  # the +20 % end of §9.4's range on every bar
    r = replay_with(scans, ts, assets, per_asset, macro).trades
    b = base.trades
    pd.testing.assert_frame_equal(r[KEY], b[KEY])  # size never moves an exit or an entry
    # §6.5: raw and ceiling are both × 1.2, then the 6x cap: L = min(1.2 × L_base, 6)
    np.testing.assert_allclose(r["leverage"], np.minimum(1.2 * b["leverage"], 6.0), rtol=1e-12)
    assert (r["leverage"] > b["leverage"]).sum() >= 15
    # same capital at the first entry: its notional is 1.2 × as well
    assert r.loc[0, "notional"] == pytest.approx(1.2 * b.loc[0, "notional"], rel=1e-12)


def test_ob3_a_multiplier_below_the_floor_is_clamped_to_085(scans, ts, assets, base, arrays):
    per_asset, macro = arrays
    macro[:, 2] = 0.5  # clamped to 0.85 (−15 %)
    r = replay_with(scans, ts, assets, per_asset, macro).trades
    b = base.trades
    pd.testing.assert_frame_equal(r[KEY], b[KEY])
    inside = (b["leverage"] < 5.0).to_numpy()  # neither at the ACB ceiling nor the 6x cap
    assert inside.sum() >= 15
    np.testing.assert_allclose(r["leverage"][inside],
                               np.maximum(0.85 * b["leverage"][inside], 0.5), rtol=1e-12)


# ------------------------------------------------------------------ OB-4
def test_ob4_withdrawal_stress_raises_the_next_days_beta(scans, ts, assets, base, arrays):
    per_asset, macro = arrays
    # every bar of 04-19 gets three extra cycles with regime +1 one to three seconds before
    # its own (neutral) cycle: the bar reads its own cycle (the latest), so no bar sees the
    # stress (no OB-5 effect) but 04-19's cycle count does
    day = ts // (86_400 * S)
    first = ts[day == day[0]]
    sym = sorted(assets)[0]
    extra = []
    for k in (3, 2, 1):
        e = pd.DataFrame({"ts_ns": first + int(BAR_S) * S - k * S, "symbol": sym})
        for col, v in (("imbalance", 0.0), ("imbalance_ma5", 0.0),
                       ("imbalance_persistence", 0.0), ("withdrawal_velocity", 0.0),
                       ("depth_quality", 1.0), ("fill_probability", 0.5),
                       ("cascade_count", 0.0), ("regime_signal", 1.0),
                       ("market_multiplier", 1.0)):
            e[col] = v
        extra.append(e)
    r = replay_with(scans, ts, assets, per_asset, macro, pd.concat(extra))
    # 04-19's cycles: 3 × 1440 stressed and 1439 neutral (the 23:59 bar's cycle is at 04-20
    # 00:00, a 04-20 cycle); 04-20's are all neutral
    share = 3 * 1440 / (3 * 1440 + 1439)
    beta = [0.2, 0.2 * (1 + 0.25 * share), 0.2]  # beta_low in the 7-day warm-up
    np.testing.assert_allclose(r.daily["beta"], beta, rtol=1e-12)
    assert base.daily["beta"].tolist() == [0.2, 0.2, 0.2]
    t, b = r.trades, base.trades
    pd.testing.assert_frame_equal(t[KEY], b[KEY])
    # §10.4 size multiplier boost × (1 + beta × r³), r the signal ratio: leverage × the ratio of
    # the two multipliers on 04-20's entries, unchanged on the other days
    vd = scans["vel_div"].to_numpy()[b["entry_bar"]]
    cubic = np.clip((-0.02 - vd) / 0.03, 0.0, 1.0) ** 3
    on_20 = (b["entry_time"].dt.strftime("%Y-%m-%d") == "2021-04-20").to_numpy()
    assert on_20.sum() >= 5 and (b["leverage"][on_20] < 5.0).all()
    want = np.where(on_20, (1 + beta[1] * cubic) / (1 + 0.2 * cubic), 1.0) * b["leverage"]
    np.testing.assert_allclose(t["leverage"], want, rtol=1e-9)
    assert (t["leverage"][on_20] > b["leverage"][on_20]).sum() >= 5


# ------------------------------------------------------------------ OB-5
def test_ob5_a_cascade_halves_the_max_hold(scans, ts, assets, base, arrays):
    per_asset, macro = arrays
    macro[1015:1135, 0] = 1.0  # a cascade while the 1014 trade is held
    r = replay_with(scans, ts, assets, per_asset, macro).trades
    b = base.trades
    pd.testing.assert_frame_equal(r[KEY].iloc[:2], b[KEY].iloc[:2])
    # §7.2: max hold int(120 × 0.5) = 60; the TP widens to 1.33 %, which the baseline never
    # reached (it held 120 bars without touching 0.95 %), so it leaves on max hold at 1074
    assert r.loc[2, ["entry_bar", "exit_bar", "exit_reason"]].tolist() == [1014, 1074,
                                                                           "MAX_HOLD"]


def test_ob5_a_calm_favourable_book_lets_the_position_run(scans, ts, assets, base, arrays):
    per_asset, macro = arrays
    macro[1015:1195, 1] = -1.0  # calm regime
    per_asset[1015:1195, assets.index("BTCUSDT"), 0] = -0.2  # ask-heavy: +0.2 for a short
    r = replay_with(scans, ts, assets, per_asset, macro).trades
    # §7.2: calm and effective imbalance 0.2 > 0.15: max hold int(120 × 1.5) = 180
    assert r.loc[2, ["entry_bar", "exit_bar", "exit_reason"]].tolist() == [1014, 1194,
                                                                           "MAX_HOLD"]


def test_ob5_withdrawal_stress_takes_profit_sooner(scans, ts, assets, base, arrays):
    per_asset, macro = arrays
    macro[758:800, 1] = 1.0  # withdrawal stress while the 757 trade is held
    r = replay_with(scans, ts, assets, per_asset, macro).trades
    # §7.2: in profit under stress the TP is 0.6 × 0.95 %; the short's first bar at that
    # profit, from the closes (the exit rule reads the close, before slippage):
    close = scans["BTCUSDT"].to_numpy()
    pnl = -(close[758:799] - close[757]) / close[757]
    first_60 = 758 + int(np.flatnonzero(pnl >= 0.6 * TP)[0])
    assert 758 + int(np.flatnonzero(pnl >= TP)[0]) == 798  # the baseline's exit
    assert first_60 < 798
    assert r.loc[0, ["entry_bar", "exit_bar", "exit_reason"]].tolist() == [757, first_60,
                                                                           "FIXED_TP"]


# ------------------------------------------------------------------ replay == sweep
@pytest.fixture(scope="module")
def rich_frame(ts, assets) -> pd.DataFrame:
    """Every sub-system active somewhere: random books, cascades, regimes and multipliers."""
    rng = np.random.default_rng(11)
    n, m = len(ts), len(assets)
    per_asset = np.stack([rng.uniform(-0.5, 0.5, (n, m)), rng.uniform(0, 1, (n, m)),
                          rng.uniform(-0.5, 0.3, (n, m)), rng.uniform(0, 2, (n, m)),
                          rng.uniform(0, 1, (n, m))], axis=2)
    macro = np.stack([(rng.uniform(0, 1, n) < 0.05).astype(float),
                      rng.choice([-1.0, 0.0, 1.0], n), rng.uniform(0.8, 1.25, n)], axis=1)
    df = per_bar_frame(ts, BAR_S, assets, per_asset, macro)
    keep = rng.uniform(0, 1, len(df)) < 0.9  # some assets missing in some cycles
    return df[keep].reset_index(drop=True)


@pytest.fixture(scope="module")
def rich_table(rich_frame) -> ObTable:
    return ObTable(rich_frame)


def _configs() -> list[DolphinConfig]:
    """The champion and variants that move each path the OB inputs reach."""
    base = DolphinConfig()
    return [
        base,
        base.replace(use_asset_selection=False),  # fallback asset: OB-1 has nothing to rank
        base.replace(max_hold_bars=40, fixed_tp_pct=0.006),
        base.replace(vel_div_threshold=-0.012, vel_div_extreme=-0.04, max_leverage=3.0),
        base.replace(use_direction_confirm=False, min_irp_alignment=0.2, stop_pct=0.01),
        base.replace(use_alpha_layers=False, use_dynamic_leverage=False, seed=7),
    ]


def test_replay_and_sweep_trade_alike_with_a_recorded_table(scans, rich_table):
    data = sw.prepare(scans, ob=rich_table)
    configs = _configs()
    rows = sw.evaluate(data, configs)
    changed = 0
    for cfg, row in zip(configs, rows, strict=True):
        replay = run_replay(scans, cfg, ob_engine=RecordedOb(rich_table, BAR_S))
        rec = sw.trade_records(data, cfg)
        a = replay.records
        assert len(rec) == len(a), cfg.id
        np.testing.assert_array_equal(rec["entry_bar"], a["entry_bar"])
        np.testing.assert_array_equal(rec["exit_bar"], a["exit_bar"])
        np.testing.assert_array_equal(rec["asset"], a["asset"])
        np.testing.assert_allclose(rec["pnl"] / rec["notional"], a["pnl"] / a["notional"],
                                   rtol=0, atol=1e-9)
        assert {k: row[k] for k in replay.metrics} == replay.metrics  # every metric
        changed += replay.metrics["trades_sha256"] != run_replay(scans, cfg).metrics[
            "trades_sha256"]
    assert changed == len(configs)  # the table acted on every config


def test_sweep_without_a_table_is_the_replay_without_ob(scans):
    data = sw.prepare(scans)
    assert data.ob is None and data.ob_asset.shape[0] == 1
    cfg = DolphinConfig()
    assert sw.evaluate(data, [cfg])[0]["trades_sha256"] == run_replay(scans, cfg).metrics[
        "trades_sha256"]


def test_sweep_fingerprint_follows_the_table(scans, rich_frame, rich_table):
    from dolphin.backtest.sweep_run import fingerprint

    plain = fingerprint(sw.prepare(scans), hell=False)
    assert fingerprint(sw.prepare(scans), hell=False) == plain
    with_ob = fingerprint(sw.prepare(scans, ob=rich_table), hell=False)
    younger = ObTable(rich_frame, max_age_s=60.0)  # same rows, other as-of rule
    assert len({plain, with_ob, fingerprint(sw.prepare(scans, ob=younger), hell=False)}) == 3


# ------------------------------------------------------------------ the CLI
@pytest.fixture(scope="module")
def files(tmp_path_factory, scans, rich_frame):
    """The scans and the rich table as the parquet files the commands read."""
    root = tmp_path_factory.mktemp("ob_cli")
    scans_path = root / "scans.parquet"
    scans.to_parquet(scans_path)
    return root, scans_path, write_frame(root / "ob.parquet", rich_frame)


def test_backtest_cli_replays_with_the_table(files, scans):
    root, scans_path, ob_path = files
    out = root / "bt"
    assert main(["backtest", "--scans", str(scans_path), "--ob", str(ob_path), "--out", str(out),
                 "--no-forewarner"]) == 0
    written = json.loads((out / "metrics.json").read_text())
    want = run_replay(scans, DolphinConfig(), ob_engine=RecordedOb(ObTable.read(ob_path),
                                                                   BAR_S))
    assert written["trades_sha256"] == want.metrics["trades_sha256"]
    assert written["trades_sha256"] != run_replay(scans, DolphinConfig()).metrics[
        "trades_sha256"]
    daily = pd.read_parquet(out / "daily.parquet")
    assert daily["beta"].tolist() == want.daily["beta"].tolist()
    assert daily["beta"].iloc[1] > 0.2  # OB-4 reached the CLI's ACB


def test_sweep_cli_runs_every_combination_with_the_table(files, scans):
    root, scans_path, ob_path = files
    grid = root / "grid.yaml"
    grid.write_text("max_hold_bars: [60, 120]\n")
    out = root / "sweep.parquet"
    assert main(["sweep", "--scans", str(scans_path), "--grid", str(grid), "--ob", str(ob_path),
                 "--out", str(out), "--no-progress"]) == 0
    df = pd.read_parquet(out).set_index("max_hold_bars")
    table = ObTable.read(ob_path)
    for mh in (60, 120):
        cfg = DolphinConfig().replace(max_hold_bars=mh)
        want = run_replay(scans, cfg, ob_engine=RecordedOb(table, BAR_S)).metrics
        assert df.loc[mh, "trades_sha256"] == want["trades_sha256"]


def test_a_bad_table_is_a_typed_cli_error_naming_the_file(files, capsys):
    root, scans_path, _ = files
    bad = root / "bad_ob.parquet"
    pd.DataFrame({"ts_ns": [1], "symbol": ["BTCUSDT"]}).to_parquet(bad)
    assert main(["backtest", "--scans", str(scans_path), "--ob", str(bad), "--out",
                 str(root / "bad"), "--no-forewarner"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "imbalance" in err

