"""Injected collaborators of the engine (Bible §9, §11.7, §12) and their defaults.

The survival controller (posture), the MC-Forewarner (day gate) and the order-book engine live in
other packages; the engine sees them only through these protocols. Defaults: APEX posture, gate
open, no OB engine (the legacy seeded Monte-Carlo OB edge of §8.3 then applies).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from dolphin.alpha.layout import N_OB_ASSET, N_OB_MACRO


class PostureProvider(Protocol):
    """Source of the day's posture (Bible §11.5): APEX, STALKER, TURTLE or HIBERNATE."""

    def posture(self, date: str) -> str:
        """Return the posture for ``date`` (YYYY-MM-DD)."""
        ...


@dataclass(frozen=True)
class McReport:
    """The MC-Forewarner's verdict on a config (Bible §12)."""

    catastrophic_probability: float = 0.0
    envelope_score: float = 0.0

    @property
    def status(self) -> str:
        """Return RED, ORANGE or OK with the §12 thresholds."""
        red = self.catastrophic_probability > 0.25 or self.envelope_score < -1.0
        if red:
            return "RED"
        if self.envelope_score < 0 or self.catastrophic_probability > 0.10:
            return "ORANGE"
        return "OK"


class McGate(Protocol):
    """The MC-Forewarner envelope gate, assessed once per day (Bible §12)."""

    def assess(self, date: str, max_leverage: float) -> McReport:
        """Assess the day's config whose max leverage is ``base_max_leverage * day_base_boost``."""
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
        return "APEX"


class OpenGate:
    """Default MC gate: always open (status OK)."""

    def assess(self, date: str, max_leverage: float) -> McReport:
        """Return an all-clear report."""
        return McReport()


def empty_ob(n_assets: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the placeholder OB arrays used when no OB engine is attached (never read)."""
    return np.zeros((1, n_assets, N_OB_ASSET)), np.zeros((1, N_OB_MACRO))
