"""Calibrate the vel_div threshold against a surrogate without temporal structure.

The champion threshold (vel_div < -0.02) was fitted on a different scanner. To re-express it
honestly we compare the real scans with a surrogate in which the bars are shuffled in time:
the cross-section of each bar's returns is kept (same returns, same instantaneous correlation)
but their order is random, so any excess of threshold crossings in the real data over the
surrogate is temporal structure, which is what the signal claims to read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from dolphin.core.config import ScannerConfig
from dolphin.core.errors import BadInputError, MissingColumnError
from dolphin.data import DEFAULT_FILL_LIMIT, fill_closes
from dolphin.scanner.scanner import scan_prices
from dolphin.scanner.schema import scan_columns

QUANTILES = (0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999)


@dataclass(frozen=True)
class VelDivStats:
    """Distribution of vel_div and threshold crossings on one scan set."""

    bars: int
    days: float
    mean: float
    std: float
    quantiles: dict[str, float]
    bars_below_per_day: float
    crossings_per_day: float
    threshold_sigma: float


def tradable_vel_div(scans: pd.DataFrame, short_window: int) -> np.ndarray:
    """vel_div on bars the engine could trade: finite, and no data gap in the short window."""
    for col in ("vel_div", "data_gap", "timestamp"):
        if col not in scans.columns:
            raise MissingColumnError("scan column missing", field=col)
    gap = scans["data_gap"].to_numpy(dtype=bool)
    spans_gap = pd.Series(gap).rolling(short_window, min_periods=1).max().to_numpy() > 0
    vd = scans["vel_div"].to_numpy(dtype=np.float64).copy()
    vd[spans_gap] = np.nan
    return vd


def vel_div_stats(vd: np.ndarray, bar_seconds: float, threshold: float) -> VelDivStats:
    """Summary statistics of ``vd`` (NaN = not tradable) against ``threshold``."""
    ok = np.isfinite(vd)
    x = vd[ok]
    if x.size < 2:
        raise BadInputError("fewer than two tradable vel_div values", field="vel_div")
    days = x.size * bar_seconds / 86_400.0
    below = np.where(ok, vd < threshold if threshold < 0 else vd > threshold, False)
    crossings = int((below[1:] & ~below[:-1]).sum())
    mean, std = float(x.mean()), float(x.std())
    return VelDivStats(
        bars=int(x.size),
        days=days,
        mean=mean,
        std=std,
        quantiles={f"q{q:g}": float(np.quantile(x, q)) for q in QUANTILES},
        bars_below_per_day=float(below.sum() / days),
        crossings_per_day=crossings / days,
        threshold_sigma=(threshold - mean) / std if std > 0 else float("nan"),
    )


def shuffled_prices(closes: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Prices rebuilt from the same per-bar returns in a random bar order.

    Only assets priced on every bar are kept: shuffling a listing or a delisting would
    scatter NaN returns through the history and drop assets from windows at random.
    """
    full = closes.loc[:, closes.notna().all()]
    if full.shape[1] < 2:
        raise BadInputError("surrogate needs at least two assets priced on every bar")
    logp = np.log(full.to_numpy(dtype=np.float64))
    rets = np.diff(logp, axis=0)
    rets = rets[rng.permutation(len(rets))]
    path = np.vstack([logp[:1], logp[:1] + np.cumsum(rets, axis=0)])
    return pd.DataFrame(np.exp(path), columns=full.columns)


def full_universe_span(scans: pd.DataFrame, min_universe: float) -> pd.DataFrame:
    """The longest run of bars where at least ``min_universe`` of the largest universe trades.

    A set whose universe grows (listings) or shrinks (files ending early) is compared with its
    surrogate where nearly every asset trades, so both see the same assets.
    """
    n = scans["n_assets"].to_numpy()
    ok = n >= min_universe * n.max()
    best, start, best_span = 0, None, (0, len(scans))
    for i, flag in enumerate(np.append(ok, False)):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if i - start > best:
                best, best_span = i - start, (start, i)
            start = None
    return scans.iloc[best_span[0] : best_span[1]].reset_index(drop=True)


def calibrate(
    scans: pd.DataFrame,
    threshold: float = -0.02,
    config: ScannerConfig | None = None,
    seed: int = 42,
    min_universe: float = 0.9,
    fill_limit: str | pd.Timedelta = DEFAULT_FILL_LIMIT,
) -> dict[str, object]:
    """Real vs shuffled-surrogate vel_div statistics for a scan set (see module docstring).

    The scans' close columns hold real closes only; the surrogate is built from the matrix the
    scanner computed on, rebuilt with the same causal fill (``fill_limit``, the scan's).
    """
    config = config or ScannerConfig()
    if "n_assets" not in scans.columns:
        raise MissingColumnError("scan column missing", field="n_assets")
    scans = full_universe_span(scans, min_universe)
    known = set(scan_columns(config))
    assets = [c for c in scans.columns if c not in known]
    ts = pd.to_datetime(scans["timestamp"])
    bar_seconds = float(ts.diff().median().total_seconds()) if len(ts) > 1 else 60.0
    real = vel_div_stats(tradable_vel_div(scans, config.windows[0]), bar_seconds, threshold)
    closes = fill_closes(scans[["timestamp", *assets]], fill_limit=fill_limit)[assets]
    surrogate_prices = shuffled_prices(closes, np.random.default_rng(seed))
    surrogate_prices.insert(0, "timestamp", ts.reset_index(drop=True))
    sur_scans = scan_prices(surrogate_prices, config)
    sur = vel_div_stats(sur_scans["vel_div"].to_numpy(), bar_seconds, threshold)
    return {
        "threshold": threshold,
        "span": [str(ts.iloc[0]), str(ts.iloc[-1])],
        "bar_seconds": bar_seconds,
        "assets_real": len(assets),
        "assets_surrogate": surrogate_prices.shape[1] - 1,
        "seed": seed,
        "real": asdict(real),
        "surrogate": asdict(sur),
        "threshold_in_surrogate_sigma": sur.threshold_sigma,
        "crossing_ratio_real_over_surrogate": (
            real.crossings_per_day / sur.crossings_per_day if sur.crossings_per_day else None
        ),
    }


def format_calibration(result: dict[str, object]) -> str:
    """Human-readable table of a ``calibrate`` result."""
    real, sur = result["real"], result["surrogate"]
    assert isinstance(real, dict) and isinstance(sur, dict)
    lines = [
        f"vel_div calibration at threshold {result['threshold']:+g} "
        f"(bar {result['bar_seconds']:g}s, surrogate: bars shuffled in time, "
        f"seed {result['seed']})",
        f"span {result['span'][0]} -> {result['span'][1]}",
        f"{'':24}{'real':>14}{'surrogate':>14}",
        f"{'assets':24}{result['assets_real']:>14}{result['assets_surrogate']:>14}",
        f"{'tradable bars':24}{real['bars']:>14,}{sur['bars']:>14,}",
        f"{'days':24}{real['days']:>14.2f}{sur['days']:>14.2f}",
        f"{'mean':24}{real['mean']:>14.3g}{sur['mean']:>14.3g}",
        f"{'std':24}{real['std']:>14.4g}{sur['std']:>14.4g}",
    ]
    for q in real["quantiles"]:
        lines.append(f"{q:24}{real['quantiles'][q]:>14.4g}{sur['quantiles'][q]:>14.4g}")
    lines += [
        f"{'bars past threshold/day':24}{real['bars_below_per_day']:>14.1f}"
        f"{sur['bars_below_per_day']:>14.1f}",
        f"{'crossings/day':24}{real['crossings_per_day']:>14.1f}{sur['crossings_per_day']:>14.1f}",
        f"{'threshold in sigma':24}{real['threshold_sigma']:>14.2f}{sur['threshold_sigma']:>14.2f}",
        f"threshold = {result['threshold_in_surrogate_sigma']:.2f} sigma of the surrogate; "
        f"real/surrogate crossings = {result['crossing_ratio_real_over_surrogate']}",
    ]
    return "\n".join(lines)
