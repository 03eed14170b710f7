"""Sweep speed on the 43-day 50-asset 1m set; prints ONE JSON line.

1. Full stack: a 10,000-combination grid (threshold × TP × max hold × max leverage × IRP
   alignment) through ``run_sweep`` with 2 worker processes, every layer on, each row with the
   metrics of ``metrics.json`` and ``trades_sha256``; combos/s and bar-combos/s.
2. Side by side with vectorbt on the nearest strategy it can express: SHORT one asset (BTCUSDT)
   when vel_div < threshold, fixed TP, max-hold exit, 2 bps fee per side, no slippage. DOLPHIN
   runs it as a sweep with its other layers off (IRP → fallback BTCUSDT, no DC, no alpha layers,
   fixed 1x leverage and 2 % fraction, ACB beta 0, no OB edge, maker rates 1.0 so fee = 2 bps and
   no slippage). vectorbt has no time stop: max hold is emulated with its ``adjust_tp_func_nb``
   and ``adjust_sl_func_nb`` hooks (TP and SL both set to 0 once the position is ``max_hold``
   bars old: one of them fires, at the close, like DOLPHIN's MAX_HOLD); stop exits are priced at
   the close (``stop_exit_price=Close``) since DOLPHIN exits at the bar close. DOLPHIN's entry
   rules that are not parameters (warm-up lookback, no entry while the 50-bar window spans a
   data gap) are baked into the entry signal.
   vectorbt needs ~9 GB for 10,000 columns of 61.7k bars here, so it is timed on a subset of the
   grid and its per-combination time is scaled to 10,000 (stated in the output).
   Equality: for several combinations the entry/exit bars must match exactly and the per-trade
   net return per unit of entry notional to 1e-9, once DOLPHIN's gross return is restated under
   vectorbt's fee convention (vectorbt charges the exit fee on the exit value, DOLPHIN on the
   entry notional).

vectorbt is not in the lock file: it is installed on demand (``VBT_PIN``, the newest release whose
requirements resolve without changing a locked package; ``plotly<6`` because vectorbt 1.0.0 uses
plotly trace names removed in 6). The machine is shared: timings vary run to run.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dolphin.backtest.sweep import evaluate, prepare, trade_records
from dolphin.backtest.sweep_run import expand_grid, run_sweep
from dolphin.core.config import DolphinConfig
from dolphin.core.records import EXIT_DATA_END, EXIT_END_OF_DATA

GAP_WINDOW = DolphinConfig().alpha.gap_window_bars  # was a layout constant, now a config field

REPO = Path(__file__).resolve().parents[1]
BARS = REPO.parent / "shared" / "data" / "bars" / "binance_spot_1m_2021-04_top50.parquet"
VBT_PIN = ("vectorbt==1.0.0", "plotly<6")
VBT_SUBSET = 400
FEE = 0.0002
FULL_GRID = {
    "vel_div_threshold": [-0.012, -0.014, -0.016, -0.018, -0.02, -0.022, -0.025, -0.028, -0.03,
                          -0.035],
    "fixed_tp_pct": [0.004, 0.006, 0.008, 0.0095, 0.011, 0.013, 0.015, 0.018, 0.022, 0.03],
    "max_hold_bars": [20, 40, 60, 80, 100, 120, 150, 180, 240, 300],
    "max_leverage": [2.0, 3.0, 4.0, 5.0, 6.0],
    "min_irp_alignment": [0.40, 0.45],
}  # fmt: skip
VBT_GRID = {
    "vel_div_threshold": [float(x) for x in np.round(np.linspace(-0.035, -0.012, 10), 5)],
    "fixed_tp_pct": [float(x) for x in np.round(np.linspace(0.003, 0.03, 25), 5)],
    "max_hold_bars": list(range(10, 410, 10)),
}
PLAIN = {
    "use_asset_selection": False,
    "use_direction_confirm": False,
    "use_alpha_layers": False,
    "use_dynamic_leverage": False,
    "use_ob_edge": False,
    "sp_maker_entry_rate": 1.0,
    "sp_maker_exit_rate": 1.0,
    "min_leverage": 1.0,
    "max_leverage": 1.0,
    "abs_max_leverage": 1.0,
    "fraction": 0.02,
    "beta_high": 0.0,
    "beta_low": 0.0,
    "vel_div_extreme": -0.05,
}


def load_scans(tmp: Path) -> pd.DataFrame:
    """Scan the shared 43-day set with ``dolphin scan`` (cached in ``tmp``)."""
    out = tmp / "scans43.parquet"
    if not out.exists():
        subprocess.run([sys.executable, "-m", "dolphin", "scan", "--bars", str(BARS), "--out",
                        str(out)], check=True, capture_output=True)  # fmt: skip
    return pd.read_parquet(out)


def ensure_vectorbt():
    """Import vectorbt, installing the pinned release into this interpreter when absent."""
    try:
        import vectorbt
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *VBT_PIN], check=True)
        import vectorbt
    return vectorbt


def vbt_portfolio(vbt, close: np.ndarray, entries: np.ndarray, grid: list[tuple]):
    """Run vectorbt's from_signals over ``grid`` columns (threshold, tp, max_hold)."""
    from numba import njit

    # vectorbt stops must be >= 0, so "exit now at the close" is a zero TP (fires if the short
    # is in profit) together with a zero SL (fires if it is not): exactly one of them fires.
    @njit
    def max_hold_tp(c, max_hold):
        if c.position_now != 0 and c.i - c.init_i >= max_hold[c.col]:
            return 0.0
        return c.curr_stop

    @njit
    def max_hold_sl(c, max_hold):
        if c.position_now != 0 and c.i - c.init_i >= max_hold[c.col]:
            return 0.0, False
        return c.curr_stop, c.curr_trail

    thr = np.array([g[0] for g in grid])
    mh = np.array([g[2] for g in grid], dtype=np.int64)
    ent = entries[:, None] & (VD[:, None] < thr[None, :])
    return vbt.Portfolio.from_signals(
        pd.Series(close), entries=ent, exits=False, direction="shortonly", size=np.inf,
        fees=FEE, tp_stop=np.array([g[1] for g in grid])[None, :],
        sl_stop=np.nan, stop_exit_price="close", adjust_tp_func_nb=max_hold_tp,
        adjust_tp_args=(mh,), adjust_sl_func_nb=max_hold_sl, adjust_sl_args=(mh,),
        init_cash=25_000.0, freq="1min",
    )  # fmt: skip


def compare(vbt_pf, data, grid: list[tuple], cols: list[int]) -> int:
    """Check trades and per-trade net returns of ``cols``; return the trades compared."""
    names = list(VBT_GRID)
    n = 0
    rec_all = vbt_pf.trades.records_readable
    for k in cols:
        values = [float(grid[k][0]), float(grid[k][1]), int(grid[k][2])]
        cfg = DolphinConfig().replace(**PLAIN, **dict(zip(names, values, strict=True)))
        d = trade_records(data, cfg)
        d = d[d["exit_reason"] != EXIT_END_OF_DATA]  # vectorbt leaves the last position open
        v = rec_all[(rec_all["Column"] == k) & (rec_all["Status"] == "Closed")]
        assert len(d) == len(v) and len(d) > 0, (k, len(d), len(v))
        assert (d["entry_bar"] == v["Entry Timestamp"].to_numpy()).all()
        # DATA_END (no real close for data_end_bars bars) has no vectorbt counterpart: vectorbt
        # exits at the next real close. Same entries, then only the other exits are compared.
        keep = d["exit_reason"] != EXIT_DATA_END
        d, v = d[keep], v[keep]
        assert (d["exit_bar"] == v["Exit Timestamp"].to_numpy()).all()
        # DOLPHIN charges both fees on the entry notional, vectorbt the exit fee on the exit
        # value: restate DOLPHIN's gross price return under vectorbt's fee convention
        assert np.allclose(d["pnl"] / d["notional"], d["pnl_pct"] - 2 * FEE, rtol=0, atol=1e-12)
        net_d = d["pnl_pct"] - FEE - FEE * d["exit_price"] / d["entry_price"]
        net_v = v["PnL"].to_numpy() / (v["Size"] * v["Avg Entry Price"]).to_numpy()
        assert np.allclose(net_d, net_v, atol=1e-9, rtol=0), (k, np.abs(net_d - net_v).max())
        n += len(d)
    return n


VD = np.zeros(0)


def main() -> None:
    """Time both runs and print the JSON line."""
    global VD
    tmp = Path(tempfile.gettempdir()) / "dolphin_bench_sweep"
    tmp.mkdir(exist_ok=True)
    scans = load_scans(tmp)
    data = prepare(scans)
    n_bars = data.n_bars
    evaluate(data, [DolphinConfig()])  # load the numba caches before timing

    grid = expand_grid(FULL_GRID)
    out = tmp / "full.parquet"
    t0 = time.perf_counter()
    df, summary = run_sweep(data, grid, out, workers=2, chunk=500, progress=False)
    full_s = time.perf_counter() - t0
    out.unlink()

    combos = list(itertools.product(*VBT_GRID.values()))
    plain = expand_grid({**{k: [v] for k, v in PLAIN.items()}, **VBT_GRID})
    t0 = time.perf_counter()
    run_sweep(data, plain, tmp / "plain.parquet", workers=2, chunk=500, progress=False)
    dol_s = time.perf_counter() - t0

    vbt = ensure_vectorbt()
    VD = data.vel_div
    since_gap = pd.Series(np.where(data.data_gap, 0, 1)).groupby(data.data_gap.cumsum()).cumsum()
    since_gap = np.where(np.arange(n_bars) < np.argmax(data.data_gap), 1e9, since_gap)
    close = data.prices[:, data.assets.index("BTCUSDT")]  # real closes: NaN where no bar
    real = np.isfinite(VD) & np.isfinite(close)  # no entry without a real close
    entries = (np.arange(n_bars) >= 99) & (since_gap >= GAP_WINDOW) & real
    rng = np.random.default_rng(0)
    subset = [combos[i] for i in sorted(rng.choice(len(combos), VBT_SUBSET, replace=False))]
    vbt_portfolio(vbt, close, entries, subset[:2])  # compile vectorbt's kernels
    t0 = time.perf_counter()
    pf = vbt_portfolio(vbt, close, entries, subset)
    pf.total_return()  # one metric per column, as a sweep row needs at least
    vbt_s = time.perf_counter() - t0
    checked = compare(pf, data, subset, [0, 57, 133, 250, 399])
    vbt_per_10k = vbt_s / VBT_SUBSET * len(combos)
    print(json.dumps({
        "bench": "sweep", "machine": "2 cores, shared", "bars": n_bars, "assets": len(data.assets),
        "full_stack": {"combos": len(grid.configs), "workers": 2, "wall_s": round(full_s, 2),
                       "combos_per_s": round(len(grid.configs) / full_s),
                       "bar_combos_per_s": round(len(grid.configs) * n_bars / full_s),
                       "pbo": summary.get("pbo"), "rows": len(df)},
        "vs_vectorbt": {"strategy": "short BTCUSDT, vel_div threshold, fixed TP, max hold, 2bps",
                        "combos": len(combos), "dolphin_wall_s": round(dol_s, 2),
                        "vectorbt": VBT_PIN[0], "vectorbt_subset": VBT_SUBSET,
                        "vectorbt_subset_s": round(vbt_s, 2),
                        "vectorbt_scaled_10k_s": round(vbt_per_10k, 1),
                        "speedup": round(vbt_per_10k / dol_s, 1),
                        "equal_trades_checked": checked, "equal_columns_checked": 5},
    }))  # fmt: skip


if __name__ == "__main__":
    main()
