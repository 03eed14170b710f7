"""The MC-Forewarner gate's contract (Bible §12): the day's report and the gate protocol.

Defined in the risk layer so the forewarner (``risk.forewarner``, ``risk.mc_models``) need not
import the alpha engine; ``alpha.interfaces`` re-exports both for the engine and its callers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from dolphin.core.enums import McStatus


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
            return McStatus.RED.name
        if self.envelope_score < 0 or self.catastrophic_probability > 0.10:
            return McStatus.ORANGE.name
        return McStatus.OK.name


class McGate(Protocol):
    """The MC-Forewarner envelope gate, assessed once per day (Bible §12)."""

    def assess(self, date: str, max_leverage: float) -> McReport:
        """Assess the day's config whose max leverage is ``base_max_leverage * day_base_boost``."""
        ...
