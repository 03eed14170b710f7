"""Edge test: does the strategy's PnL on this data beat the same config on shuffled vel_div?

Null hypothesis: vel_div carries no information about the prices that follow it. Under it, a
vel_div series with the same distribution and the same short-range dynamics, but placed at
other times, should earn as much. Each of ``runs`` shuffled runs therefore

1. resamples vel_div in time by a circular moving-block bootstrap (Künsch 1989): blocks of
   ``block_bars`` consecutive finite values, from uniformly drawn starts, laid end to end into
   the finite positions of the series (the warm-up and other NaN rows stay where they are, so
   the replay's NaN rules hold); prices, gaps, ACB, funding and the forewarner are untouched;
2. runs the SAME config through the sweep kernel (``backtest.sweep.evaluate``: the replay's own
   step kernel, its risk-gate audit and, when the gate would refuse an entry, the replay
   itself), which is what ``dolphin backtest`` computes, in a few milliseconds a run.

The statistic is the run's PnL (final − initial capital, USDT); the one-sided p-value is
``(1 + #{shuffled PnL >= actual PnL}) / (runs + 1)`` (Phipson & Smyth 2010: never 0; valid
under the null to the extent the unshuffled run is exchangeable with the shuffled ones). Run
``i`` draws from the ``i``-th child of ``SeedSequence(seed)``, so a seed reproduces every run
and a longer test extends a shorter one.

Blocks default to ``max_hold_bars`` of the config: long enough to keep vel_div's own
autocorrelation within a holding period, short enough to break its alignment with prices.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from dolphin.backtest.sweep import SweepData, evaluate
from dolphin.core.config import DolphinConfig
from dolphin.core.errors import BadInputError

DEFAULT_RUNS = 200


def block_bootstrap(values: np.ndarray, block: int, rng: np.random.Generator) -> np.ndarray:
    """Return ``values`` with its finite entries replaced by a circular moving-block resample
    of them (NaN entries stay in place)."""
    v = np.asarray(values, dtype=np.float64)
    if block < 1:
        raise BadInputError(f"block must be >= 1 bar, got {block}")
    out = v.copy()
    pos = np.flatnonzero(np.isfinite(v))
    n = pos.size
    if n == 0:
        return out
    b = min(block, n)
    starts = rng.integers(0, n, size=-(-n // b))
    idx = ((starts[:, None] + np.arange(b)[None, :]).ravel()[:n]) % n
    out[pos] = v[pos][idx]
    return out


def p_value(actual: float, shuffled: np.ndarray) -> float:
    """Return ``(1 + #{shuffled >= actual}) / (len(shuffled) + 1)``."""
    s = np.asarray(shuffled, dtype=np.float64)
    return (1.0 + float(np.count_nonzero(s >= actual))) / (s.size + 1.0)


@dataclass(frozen=True)
class EdgeResult:
    """The edge test's outcome: the run's PnL, every shuffled run's PnL and the p-value."""

    actual_pnl: float
    actual_trades: int
    shuffled_pnl: np.ndarray
    shuffled_trades: np.ndarray
    p_value: float
    runs: int
    block_bars: int
    seed: int
    config_id: str
    hell: bool

    def to_dict(self) -> dict[str, Any]:
        """Return the result as plain JSON-ready values (what ``edge.json`` holds)."""
        s = self.shuffled_pnl
        return {
            "actual_pnl": self.actual_pnl,
            "actual_trades": self.actual_trades,
            "p_value": self.p_value,
            "n_at_least": int(np.count_nonzero(s >= self.actual_pnl)),
            "runs": self.runs,
            "block_bars": self.block_bars,
            "seed": self.seed,
            "config_id": self.config_id,
            "friction": "hell" if self.hell else "default",
            "shuffled_pnl_quantiles": {
                q: float(np.quantile(s, float(q))) for q in ("0.05", "0.5", "0.95")
            } if s.size else {},
            "shuffled_pnl": s.tolist(),
            "shuffled_trades": self.shuffled_trades.tolist(),
        }


def with_vel_div(data: SweepData, vel_div: np.ndarray) -> SweepData:
    """Return ``data`` with another vel_div series (everything else shared, not copied)."""
    d = copy.copy(data)
    d.vel_div = np.ascontiguousarray(vel_div, dtype=np.float64)
    if data.inputs is not None:  # the replay fallback must see the same series
        d.inputs = dataclasses.replace(data.inputs, vd=d.vel_div)
    return d


def _pnl(row: dict[str, Any]) -> tuple[float, int]:
    return float(row["final_capital"]) - float(row["initial_capital"]), int(row["trades"])


def edge_test(
    data: SweepData,
    config: DolphinConfig,
    *,
    runs: int = DEFAULT_RUNS,
    block_bars: int | None = None,
    seed: int = 0,
    hell: bool = False,
) -> EdgeResult:
    """Run ``config`` on ``data`` and on ``runs`` block-shuffled copies of its vel_div."""
    if runs < 1:
        raise BadInputError(f"runs must be >= 1, got {runs}")
    block = int(block_bars if block_bars is not None else config.alpha.max_hold_bars)
    actual, n_actual = _pnl(evaluate(data, [config], hell=hell)[0])
    pnl = np.empty(runs)
    trades = np.empty(runs, dtype=np.int64)
    for i, child in enumerate(np.random.SeedSequence(seed).spawn(runs)):
        vd = block_bootstrap(data.vel_div, block, np.random.default_rng(child))
        pnl[i], trades[i] = _pnl(evaluate(with_vel_div(data, vd), [config], hell=hell)[0])
    return EdgeResult(actual, n_actual, pnl, trades, p_value(actual, pnl), runs, block, seed,
                      config.id, hell)  # fmt: skip
