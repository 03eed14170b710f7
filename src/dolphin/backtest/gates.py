"""What every backtest-like run attaches besides the scans: funding and the MC-Forewarner.

One place builds them for ``dolphin backtest`` (internal and Nautilus), ``sweep``, ``paper`` and
``run``, so no runner can forget one: the forewarner (Bible §12, §14.1 ⑤ "always active") is on
unless it is turned off explicitly, and funding is modelled exactly when a funding file is given
(the metrics and the report then say which).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from dolphin.core.config import DolphinConfig


def load_gate(config: DolphinConfig, model_dir: str | Path | None = None) -> Any:
    """Return the MC-Forewarner day gate of ``config`` on the shipped (or given) model set."""
    from dolphin.risk.mc_models import ForewarnerGate, load_cached

    return ForewarnerGate(load_cached(model_dir), config)


def run_gates(
    config: DolphinConfig, funding_path: str | Path | None, forewarner: bool
) -> tuple[pd.DataFrame | None, Any]:
    """Return ``(funding table or None, forewarner gate or None)`` for a run."""
    from dolphin.features.funding import load_funding

    funding = load_funding(funding_path) if funding_path is not None else None
    gate = load_gate(config) if forewarner else None
    return funding, gate
