"""Online pre-trade risk: an ordered pipeline of small pure checks (seed 004 §2.3, STYLE.md §9).

Each check looks at one order intent in its risk context and returns ``None`` (pass) or a typed
``Denial``. The pipeline runs the checks in a fixed order and stops at the first denial, so the
reason reported is the most fundamental one:

1. ``UNKNOWN_INPUT``: an entry while any input (price, equity, notional, posture, a position)
   is unknown is denied; a reduction needs only its own notional and the position it reduces.
2. ``REDUCE_ONLY``: in TURTLE and HIBERNATE only orders that shrink an existing position pass
   (Bible §11.7: no new entries).
3. ``ORDER_RATE``: at most ``max_orders_per_min`` orders in the trailing minute, reductions
   included (the exchange's limit does not care why an order is sent).
4. ``MAX_ORDER_NOTIONAL``: one order's notional.
5. ``MAX_POSITION``: the asset's resulting absolute notional.
6. ``MAX_LEVERAGE``: gross notional over equity after the order.

Reductions skip 4–6: they can only lower those quantities.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from dolphin.core.config import PreTradeConfig
from dolphin.core.enums import POSTURES, Posture
from dolphin.core.errors import DolphinError

_NS_PER_MIN = 60_000_000_000
#: Postures that allow new exposure (§11.7); TURTLE and HIBERNATE allow reductions only.
_OPENING_POSTURES = (Posture.APEX.name, Posture.STALKER.name)


class Denial(Enum):
    """Why an order was refused."""

    UNKNOWN_INPUT = "unknown_input"
    REDUCE_ONLY = "reduce_only"
    ORDER_RATE = "order_rate"
    MAX_ORDER_NOTIONAL = "max_order_notional"
    MAX_POSITION = "max_position"
    MAX_LEVERAGE = "max_leverage"


class OrderDeniedError(DolphinError):
    """Pre-trade risk refused an order. Action: drop the order, keep running."""

    def __init__(self, denial: Denial, detail: str) -> None:
        self.denial = denial
        super().__init__(f"order denied ({denial.value}): {detail}")


@dataclass(frozen=True)
class OrderIntent:
    """An order about to be sent: asset, side (+1 buy, -1 sell) and notional in quote currency."""

    asset: str
    side: int
    notional: float


@dataclass(frozen=True)
class RiskContext:
    """What the checks may read: time, posture, equity, signed position notionals, order times."""

    ts_ns: int
    posture: str
    equity: float
    positions: Mapping[str, float] = field(default_factory=dict)
    recent_orders_ns: Sequence[int] = ()


@dataclass(frozen=True)
class Verdict:
    """The pipeline's answer: ``denial`` is None when the order may go."""

    denial: Denial | None = None
    detail: str = ""

    @property
    def allowed(self) -> bool:
        """True when no check denied."""
        return self.denial is None


Check = Callable[[OrderIntent, RiskContext, PreTradeConfig], Verdict | None]


def _finite(x: float) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def is_reduction(order: OrderIntent, ctx: RiskContext) -> bool:
    """True when the order trades against the asset's position and does not flip it."""
    pos = ctx.positions.get(order.asset, 0.0)
    if not (_finite(pos) and _finite(order.notional)) or pos == 0.0:
        return False
    return order.side * pos < 0 and 0.0 < order.notional <= abs(pos)


def check_known_inputs(order: OrderIntent, ctx: RiskContext, lim: PreTradeConfig) -> Verdict | None:
    """Deny when an input the decision needs is unknown (NaN, inf, missing, unknown posture)."""
    if order.side not in (-1, 1) or not _finite(order.notional) or order.notional <= 0:
        return Verdict(Denial.UNKNOWN_INPUT, f"bad order side/notional {order}")
    if is_reduction(order, ctx):
        return None
    if ctx.posture not in POSTURES:
        return Verdict(Denial.UNKNOWN_INPUT, f"posture {ctx.posture!r} unknown")
    if not _finite(ctx.equity) or ctx.equity <= 0:
        return Verdict(Denial.UNKNOWN_INPUT, f"equity {ctx.equity!r} unknown")
    bad = [a for a, v in ctx.positions.items() if not _finite(v)]
    if bad:
        return Verdict(Denial.UNKNOWN_INPUT, f"position of {bad[0]} unknown")
    return None


def check_posture(order: OrderIntent, ctx: RiskContext, lim: PreTradeConfig) -> Verdict | None:
    """Deny anything but a reduction in TURTLE and HIBERNATE (and in an unknown posture)."""
    if ctx.posture in _OPENING_POSTURES or is_reduction(order, ctx):
        return None
    return Verdict(Denial.REDUCE_ONLY, f"posture {ctx.posture} allows reductions only")


def check_order_rate(order: OrderIntent, ctx: RiskContext, lim: PreTradeConfig) -> Verdict | None:
    """Deny when the trailing minute already holds ``max_orders_per_min`` orders."""
    since = ctx.ts_ns - _NS_PER_MIN
    n = sum(1 for t in ctx.recent_orders_ns if since < t <= ctx.ts_ns)
    if n >= lim.max_orders_per_min:
        return Verdict(Denial.ORDER_RATE, f"{n} orders in the last minute")
    return None


def check_order_notional(
    order: OrderIntent, ctx: RiskContext, lim: PreTradeConfig
) -> Verdict | None:
    """Deny an order above ``max_order_notional`` (reductions pass)."""
    if order.notional > lim.max_order_notional and not is_reduction(order, ctx):
        return Verdict(
            Denial.MAX_ORDER_NOTIONAL,
            f"notional {order.notional:,.2f} > {lim.max_order_notional:,.2f}",
        )
    return None


def check_position(order: OrderIntent, ctx: RiskContext, lim: PreTradeConfig) -> Verdict | None:
    """Deny when the asset's resulting absolute notional exceeds ``max_position_notional``."""
    after = abs(ctx.positions.get(order.asset, 0.0) + order.side * order.notional)
    if after > lim.max_position_notional and not is_reduction(order, ctx):
        return Verdict(
            Denial.MAX_POSITION,
            f"{order.asset} position {after:,.2f} > {lim.max_position_notional:,.2f}",
        )
    return None


def check_leverage(order: OrderIntent, ctx: RiskContext, lim: PreTradeConfig) -> Verdict | None:
    """Deny when gross notional / equity after the order exceeds ``max_gross_leverage``."""
    if is_reduction(order, ctx):
        return None
    pos = dict(ctx.positions)
    pos[order.asset] = pos.get(order.asset, 0.0) + order.side * order.notional
    lev = sum(abs(v) for v in pos.values()) / ctx.equity
    if lev > lim.max_gross_leverage:
        return Verdict(Denial.MAX_LEVERAGE, f"gross leverage {lev:.2f} > {lim.max_gross_leverage}")
    return None


#: The pipeline, in order (module docstring).
CHECKS: tuple[Check, ...] = (
    check_known_inputs,
    check_posture,
    check_order_rate,
    check_order_notional,
    check_position,
    check_leverage,
)


def pre_trade(
    order: OrderIntent,
    ctx: RiskContext,
    limits: PreTradeConfig | None = None,
    checks: Sequence[Check] = CHECKS,
) -> Verdict:
    """Run ``checks`` in order; return the first denial, or an allowing verdict."""
    lim = limits or PreTradeConfig()
    for check in checks:
        verdict = check(order, ctx, lim)
        if verdict is not None:
            return verdict
    return Verdict()


def require_allowed(verdict: Verdict) -> None:
    """Raise ``OrderDeniedError`` for a denial (for callers that prefer an exception)."""
    if verdict.denial is not None:
        raise OrderDeniedError(verdict.denial, verdict.detail)
