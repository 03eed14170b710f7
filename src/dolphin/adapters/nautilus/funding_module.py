"""Funding on the Nautilus venue account: a ``SimulationModule`` that books each payment.

Nautilus has no perpetual funding in its simulated exchange; its documented hook for cash flows
that are not fills is a simulation module adjusting the account (as its FX rollover interest
module does). The strategy hands each bar's funding payment, computed by the engine kernel
(``features.funding`` timing rule), to ``FundingModule.book``; the account balance then holds it
and the capital synced back at the next close includes it.
"""

from __future__ import annotations

from nautilus_trader.backtest.config import SimulationModuleConfig
from nautilus_trader.backtest.modules import SimulationModule
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.objects import Money


class FundingModule(SimulationModule):
    """Book funding payments on the simulated venue's USDT account."""

    def __init__(self) -> None:
        super().__init__(SimulationModuleConfig())
        self.total_paid = 0.0
        self.payments = 0

    def book(self, paid: float) -> None:
        """Take ``paid`` (negative: received) from the account balance."""
        if self.exchange is None:
            raise RuntimeError("FundingModule used before its venue was registered")
        self.exchange.adjust_account(Money(-paid, USDT))
        self.total_paid += paid
        self.payments += 1

    def process(self, ts_now: int) -> None:
        """Nothing to do per time step: payments arrive from the strategy."""

    def log_diagnostics(self, logger) -> None:
        """Log the total funding booked."""
        logger.info(f"funding booked: {self.payments} payments, {self.total_paid:.6f} USDT paid")

    def reset(self) -> None:
        """Forget the totals."""
        self.total_paid = 0.0
        self.payments = 0
