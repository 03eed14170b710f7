"""Parity report: two runs of the same scans, trade by trade, every difference quantified.

Trades are matched on (entry bar, asset, direction). For each matched pair the PnL difference
is split into the parts a cost model can cause:

- ``d_fees``: commissions (SmartPlacer blended fees vs the venue's taker fee on each leg);
- ``ob_edge``: the engine's simulated OB edge (§8.3), which a venue fill never pays;
- ``d_size``: the same price move on a different filled notional (lot rounding, capital path);
- ``d_price``: the remainder — fill prices (spread, the §7.4 exit slippage), exit timing.

Unmatched trades (a different capital path changes the bucket statistics and so, rarely, a later
decision) are listed with their PnL. ``identical`` is the acceptance test of ``--parity``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dolphin.core.io import atomic_write_parquet, atomic_write_text

KEY = ["entry_bar", "asset", "direction"]
#: Parity acceptance: PnL per trade agrees to this relative tolerance.
PNL_RTOL = 1e-6


def _move_pct(m: pd.DataFrame, suffix: str) -> np.ndarray:
    """Return the signed price move of one side's fills, as a fraction of its entry price."""
    sign = np.where(m["direction"] == "SHORT", -1.0, 1.0)
    entry = m[f"entry_price{suffix}"].to_numpy()
    return sign * (m[f"exit_price{suffix}"].to_numpy() - entry) / entry


def compare_trades(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Return the matched trades of runs ``a`` and ``b`` with the PnL decomposition."""
    m = a.merge(b, on=KEY, how="inner", suffixes=("_a", "_b"))
    pct_a = _move_pct(m, "_a")
    out = m[KEY].copy()
    out["exit_bar_a"], out["exit_bar_b"] = m["exit_bar_a"], m["exit_bar_b"]
    out["pnl_a"], out["pnl_b"] = m["pnl_a"], m["pnl_b"]
    out["d_pnl"] = m["pnl_b"] - m["pnl_a"]
    out["d_fees"] = (m["entry_fee_a"] + m["exit_fee_a"]) - (m["entry_fee_b"] + m["exit_fee_b"])
    out["ob_edge"] = -m["ob_edge_pct_a"] * m["notional_a"] + m["ob_edge_pct_b"] * m["notional_b"]
    out["d_size"] = pct_a * (m["notional_b"] - m["notional_a"])
    out["d_price"] = out["d_pnl"] - out["d_fees"] - out["ob_edge"] - out["d_size"]
    out["rel_pnl"] = (out["d_pnl"].abs() / m["pnl_a"].abs().clip(lower=1e-12)).to_numpy()
    out["entry_px_bps"] = (m["entry_price_b"] / m["entry_price_a"] - 1) * 1e4
    out["exit_px_bps"] = (m["exit_price_b"] / m["exit_price_a"] - 1) * 1e4
    return out


def _unmatched(x: pd.DataFrame, y: pd.DataFrame) -> pd.DataFrame:
    keys = set(map(tuple, y[KEY].itertuples(index=False)))
    mask = [tuple(r) not in keys for r in x[KEY].itertuples(index=False)]
    return x.loc[mask, [*KEY, "exit_bar", "pnl"]]


def parity_report(a: pd.DataFrame, b: pd.DataFrame, label_a: str, label_b: str) -> dict[str, Any]:
    """Return the summary of runs ``a`` vs ``b`` (trades frames of the replay's schema)."""
    cmp = compare_trades(a, b)
    only_a, only_b = _unmatched(a, b), _unmatched(b, a)
    same_exits = bool((cmp["exit_bar_a"] == cmp["exit_bar_b"]).all())
    max_rel = float(cmp["rel_pnl"].max()) if len(cmp) else 0.0
    identical = (len(only_a) == 0 and len(only_b) == 0 and same_exits
                 and len(a) == len(b) and max_rel <= PNL_RTOL)
    return {
        "a": label_a,
        "b": label_b,
        "trades_a": len(a),
        "trades_b": len(b),
        "matched": len(cmp),
        "only_a": only_a.to_dict("records"),
        "only_b": only_b.to_dict("records"),
        "exit_bar_mismatches": int((cmp["exit_bar_a"] != cmp["exit_bar_b"]).sum()),
        "max_rel_pnl_diff": max_rel,
        "pnl_a": float(a["pnl"].sum()),
        "pnl_b": float(b["pnl"].sum()),
        "explained": {
            "fees": float(cmp["d_fees"].sum()),
            "ob_edge": float(cmp["ob_edge"].sum()),
            "size": float(cmp["d_size"].sum()),
            "price": float(cmp["d_price"].sum()),
            "unmatched": float(only_b["pnl"].sum() - only_a["pnl"].sum()),
        },
        "mean_entry_px_bps": float(cmp["entry_px_bps"].mean()) if len(cmp) else 0.0,
        "mean_exit_px_bps": float(cmp["exit_px_bps"].mean()) if len(cmp) else 0.0,
        "identical": bool(identical),
    }


def write_parity(a: pd.DataFrame, b: pd.DataFrame, label_a: str, label_b: str,
                 out: str | Path) -> dict[str, Any]:
    """Write ``parity.json`` and ``parity_trades.parquet`` into ``out``; return the summary."""
    out = Path(out)
    summary = parity_report(a, b, label_a, label_b)
    atomic_write_text(out / "parity.json",
                      json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    atomic_write_parquet(compare_trades(a, b), out / "parity_trades.parquet")
    return summary
