"""What a run should tell its reader about its own inputs: bar-size units and a thin universe.

DESIGN.md "Data contracts": ``lookback``, ``max_hold_bars`` and ``dc_lookback_bars`` (and the
other bar-counted parameters) are bars, and the champion was calibrated on 5 s bars (Bible
§22.3); on 1 m bars the same numbers last twelve times longer. Every run therefore shows them as
durations at the input's bar size and warns when that bar differs from the config's declared
calibration bar. A universe of fewer than ``MIN_LIVE_ASSETS`` assets with a real close makes the
IRP ranking and the correlation signal degenerate, so runs warn about it too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from dolphin.core.config import DolphinConfig

MIN_LIVE_ASSETS = 5
BAR_PARAMETERS = (
    "lookback", "max_hold_bars", "dc_lookback_bars", "irp_window_bars", "gap_window_bars",
)  # fmt: skip


def format_duration(seconds: float) -> str:
    """Return ``seconds`` as a compact duration: 45s, 7m, 2h, 1d4h, 8m20s."""
    s = round(seconds)
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if s >= size or (unit == "s" and not parts):
            parts.append(f"{s // size}{unit}")
            s %= size
    return "".join(parts[:2])


def durations(config: DolphinConfig, bar_s: float) -> dict[str, str]:
    """Return each bar-counted parameter as ``"N bars = duration"`` at ``bar_s`` seconds a bar."""
    a = config.alpha
    values = {name: int(getattr(a, name)) for name in BAR_PARAMETERS}
    values["data_end_bars"] = int(a.data_end_bars or a.max_hold_bars)
    return {k: f"{v} bars = {format_duration(v * bar_s)}" for k, v in values.items()}


def thin_bars(prices: np.ndarray) -> np.ndarray:
    """Return per bar whether fewer than ``MIN_LIVE_ASSETS`` assets have a real close."""
    return np.isfinite(prices).sum(axis=1) < MIN_LIVE_ASSETS


def describe_bars(
    bar_s: float, thin: np.ndarray, config: DolphinConfig, entry_bars: np.ndarray
) -> dict[str, Any]:
    """Return ``bar``, ``durations`` and ``warnings`` of a run (``thin``: ``thin_bars``)."""
    warnings = []
    cal = config.alpha.calibration_bar_seconds
    if bar_s != cal:
        warnings.append(
            f"bar size {format_duration(bar_s)} differs from the config's calibration bar "
            f"{format_duration(cal)}: bar-counted parameters last {bar_s / cal:g}x longer than "
            "calibrated"
        )
    if thin.any():
        msg = (f"{int(thin.sum()):,} of {len(thin):,} bars have fewer than {MIN_LIVE_ASSETS} "
               "assets with a real close")
        if len(entry_bars):
            msg += (f"; {int(thin[entry_bars].sum())} of {len(entry_bars)} trades entered on "
                    "such bars")
        warnings.append(msg)
    return {
        "bar": format_duration(bar_s),
        "durations": durations(config, bar_s),
        "warnings": warnings,
    }


def describe_run(
    ts_ns: np.ndarray, prices: np.ndarray, config: DolphinConfig, trades: pd.DataFrame
) -> dict[str, Any]:
    """Return ``describe_bars`` for scans (``prices``: their real closes) and a trades table."""
    from dolphin.backtest.replay import scan_bar_ns

    bar_s = scan_bar_ns(np.asarray(ts_ns, dtype=np.int64)) / 1e9
    entry = trades["entry_bar"].to_numpy(dtype=np.int64) if len(trades) else np.zeros(0, int)
    return describe_bars(bar_s, thin_bars(prices), config, entry)


def notes_lines(metrics: dict[str, Any]) -> list[str]:
    """Return the lines a run prints beside its metrics: units, funding, forewarner, warnings."""
    lines = [f"bar {metrics.get('bar')}: " + ", ".join(
        f"{k} {v}" for k, v in metrics.get("durations", {}).items())]
    if not metrics.get("funding_modelled"):
        lines.append("funding not modelled (pass --funding FILE)")
    else:
        missing = metrics.get("funding_missing_assets")
        lines.append(f"funding paid {metrics['funding_paid']:.2f} USDT"
                     + (f" (no rates for {missing})" if missing else ""))
    fw = metrics.get("forewarner", "off")
    lines.append("forewarner off" if fw == "off" else f"forewarner model set {fw}")
    lines += [f"warning: {w}" for w in metrics.get("warnings", [])]
    return lines
