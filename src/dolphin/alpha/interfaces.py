"""Injected collaborators of the engine (Bible §9, §11.7, §12) and their defaults.

The survival controller (posture), the MC-Forewarner (day gate) and the order-book engine live in
other packages; the engine sees them only through these protocols. Defaults: APEX posture, gate
open, no OB engine (the legacy seeded Monte-Carlo OB edge of §8.3 then applies). ``McReport`` and
``McGate`` are defined in ``risk.mc_gate`` (risk sits below alpha) and re-exported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from dolphin.alpha.layout import N_OB_ASSET, N_OB_MACRO
from dolphin.core.enums import Posture
from dolphin.risk.mc_gate import McGate, McReport

__all__ = [
    "ApexPosture",
    "McGate",
    "McReport",
    "ObEngine",
    "OpenGate",
    "PostureProvider",
    "empty_ob",
]


class PostureProvider(Protocol):
    """Source of the day's posture (Bible §11.5): APEX, STALKER, TURTLE or HIBERNATE."""

    def posture(self, date: str) -> str:
        """Return the posture for ``date`` (YYYY-MM-DD)."""
        ...


class ObEngine(Protocol):
    """Order-book features for one bar (Bible §9.1–§9.3, OB sub-systems 1, 2, 3 and 5).

    ``per_asset`` has one row per asset: imbalance_ma5, imbalance_persistence,
    withdrawal_velocity, depth_quality, fill_probability. ``macro`` is cascade_count,
    regime_signal (−1 calm, 0 neutral, +1 withdrawal stress), market_multiplier.
    """

    def features(self, ts_ns: int, assets: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(per_asset (n_assets, 5), macro (3,))`` float64 arrays for the bar."""
        ...


class ApexPosture:
    """Default posture provider: always APEX."""

    def posture(self, date: str) -> str:
        """Return APEX."""
        return Posture.APEX.name


class OpenGate:
    """Default MC gate: always open (status OK)."""

    def assess(self, date: str, max_leverage: float) -> McReport:
        """Return an all-clear report."""
        return McReport()


def empty_ob(n_assets: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the placeholder OB arrays used when no OB engine is attached (never read)."""
    return np.zeros((1, n_assets, N_OB_ASSET)), np.zeros((1, N_OB_MACRO))
