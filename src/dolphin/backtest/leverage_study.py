"""Leverage study: geometric growth rate against max leverage, with a bootstrap band and the knee.

Each level runs as a parameter column of one sweep-kernel call with ``max_leverage`` and
``abs_max_leverage`` both set to the level (the 6x cap moves with it, otherwise every level above
6 would be the same run). Growth is the geometric mean daily return ``exp(mean(log(1 + r))) − 1``.
The band resamples whole days with replacement (the same resampled days for every level, so the
levels are compared on equal draws; seeded). The peak is the level of the highest growth; the
knee is the lowest level whose growth reaches the peak's lower band: beyond it the data cannot
tell more leverage from less (the Bible claims 6.0x).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from dolphin.backtest.sweep import SweepData, evaluate
from dolphin.core.config import DolphinConfig
from dolphin.core.errors import BadInputError

DEFAULT_LEVELS = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0)


def check_levels(levels: Sequence[object]) -> list[float]:
    """Return ``levels`` as floats; raise ``BadInputError`` naming the first bad level.

    Checked up front so a bad level is reported as itself, not as the ``min_leverage`` or
    ``max_leverage`` it would later be turned into. A level must be a finite number > 0, and
    levels must be distinct (two equal levels are the same run).
    """
    if len(levels) == 0:
        raise BadInputError("need at least one leverage level", field="levels")
    out: list[float] = []
    for level in levels:
        if isinstance(level, (bool, np.bool_)) or not isinstance(level, numbers.Real):
            raise BadInputError("leverage level must be a number", field="levels", value=level)
        value = float(level)
        if not (math.isfinite(value) and value > 0):
            raise BadInputError(
                "leverage level must be a finite number > 0", field="levels", value=level
            )
        if value in out:
            raise BadInputError("leverage level given twice", field="levels", value=level)
        out.append(value)
    return out


def geometric_growth(r: np.ndarray) -> np.ndarray:
    """Return the geometric mean return along the last axis; −1 once equity is wiped out."""
    with np.errstate(divide="ignore", invalid="ignore"):
        lg = np.log1p(np.maximum(r, -1.0))
    g = np.expm1(lg.mean(axis=-1))
    return np.where(np.isfinite(g), g, -1.0)


def leverage_study(
    data: SweepData,
    levels: Sequence[float] = DEFAULT_LEVELS,
    *,
    base: DolphinConfig | None = None,
    n_boot: int = 1000,
    seed: int = 42,
    band: tuple[float, float] = (5.0, 95.0),
    hell: bool = False,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Return growth per level with its bootstrap band, and the peak and knee levels."""
    levels = check_levels(levels)
    base = base or DolphinConfig()
    configs = [
        base.replace(
            max_leverage=lv, abs_max_leverage=lv, min_leverage=min(base.alpha.min_leverage, lv)
        )
        for lv in levels
    ]
    rows = evaluate(data, configs, hell=hell)
    r = np.array([row["daily_returns"] for row in rows], dtype=float)  # levels × days
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, r.shape[1], size=(n_boot, r.shape[1]))
    boot = geometric_growth(r[:, draws])  # levels × n_boot
    lo, hi = np.percentile(boot, band, axis=1)
    growth = geometric_growth(r)
    peak = int(np.argmax(growth))
    knee = int(np.argmax(growth >= lo[peak]))
    table = pd.DataFrame(
        {
            "max_leverage": list(levels),
            "growth": growth,
            "band_lo": lo,
            "band_hi": hi,
            "roi": [row["roi"] for row in rows],
            "max_drawdown": [row["max_drawdown"] for row in rows],
            "trades": [row["trades"] for row in rows],
            "config_id": [row["config_id"] for row in rows],
        }
    )
    summary = {
        "peak_leverage": float(levels[peak]),
        "peak_growth_daily": float(growth[peak]),
        "knee_leverage": float(levels[knee]),
        "bible_claim": 6.0,
        "bootstrap": {"n": n_boot, "seed": seed, "band_pct": list(band)},
    }
    return table, summary


def growth_svg(table: pd.DataFrame, width: int = 860, height: int = 260) -> str:
    """Return an SVG of growth (line) and its band (shaded) against max leverage."""
    x = table["max_leverage"].to_numpy(dtype=float)
    ys = table[["growth", "band_lo", "band_hi"]].to_numpy(dtype=float)
    lo, hi = float(ys.min()), float(ys.max())
    span = hi - lo if hi > lo else 1.0

    def pt(xv: float, yv: float) -> str:
        px = 40 + (xv - x.min()) / max(x.max() - x.min(), 1e-9) * (width - 60)
        return f"{px:.1f},{height - 20 - (yv - lo) / span * (height - 40):.1f}"

    band = [pt(a, b) for a, b in zip(x, ys[:, 2], strict=True)]
    band += [pt(a, b) for a, b in zip(x[::-1], ys[::-1, 1], strict=True)]
    line = " ".join(pt(a, b) for a, b in zip(x, ys[:, 0], strict=True))
    zero = pt(x.min(), 0.0).split(",")[1]
    labels = "".join(
        f'<text x="{pt(a, lo).split(",")[0]}" y="{height - 4}" font-size="10">{a:g}x</text>'
        for a in x
    )
    return (
        f'<svg width="{width}" height="{height}"><polygon fill="#9ecae1" opacity="0.6" '
        f'points="{" ".join(band)}"/><polyline fill="none" stroke="#08519c" stroke-width="2" '
        f'points="{line}"/><line x1="40" x2="{width - 20}" y1="{zero}" y2="{zero}" '
        f'stroke="#999"/>{labels}</svg>'
    )
