"""One test per pre-trade check, plus the pipeline's order (seed 004 §2.3)."""

from __future__ import annotations

import math

import pytest

from dolphin.core.config import PreTradeConfig
from dolphin.risk.pretrade import (
    CHECKS,
    Denial,
    OrderDeniedError,
    OrderIntent,
    RiskContext,
    is_reduction,
    pre_trade,
    require_allowed,
)

LIM = PreTradeConfig(
    max_order_notional=10_000.0,
    max_position_notional=15_000.0,
    max_gross_leverage=2.0,
    max_orders_per_min=3,
)
T = 10 * 60_000_000_000


def ctx(**kw) -> RiskContext:
    base = {"ts_ns": T, "posture": "APEX", "equity": 20_000.0, "positions": {}}
    return RiskContext(**{**base, **kw})


def deny(order: OrderIntent, c: RiskContext) -> Denial | None:
    return pre_trade(order, c, LIM).denial


def test_a_plain_entry_passes():
    v = pre_trade(OrderIntent("BTCUSDT", -1, 5_000.0), ctx(), LIM)
    assert v.allowed and v.denial is None
    require_allowed(v)


@pytest.mark.parametrize(
    "c",
    [
        ctx(equity=math.nan),
        ctx(equity=0.0),
        ctx(posture="UNKNOWN"),
        ctx(positions={"ETHUSDT": math.nan}),
    ],
)
def test_no_entry_when_any_input_is_unknown(c):
    assert deny(OrderIntent("BTCUSDT", -1, 5_000.0), c) is Denial.UNKNOWN_INPUT


@pytest.mark.parametrize("notional", [math.nan, math.inf, 0.0, -5.0])
def test_an_order_with_unknown_notional_is_denied(notional):
    assert deny(OrderIntent("BTCUSDT", -1, notional), ctx()) is Denial.UNKNOWN_INPUT


def test_a_reduction_passes_even_when_equity_is_unknown():
    c = ctx(equity=math.nan, positions={"BTCUSDT": -8_000.0})
    assert deny(OrderIntent("BTCUSDT", 1, 8_000.0), c) is None


@pytest.mark.parametrize("posture", ["TURTLE", "HIBERNATE"])
def test_reduce_only_in_turtle_and_hibernate(posture):
    c = ctx(posture=posture, positions={"BTCUSDT": -8_000.0})
    assert deny(OrderIntent("ETHUSDT", -1, 1_000.0), c) is Denial.REDUCE_ONLY
    assert deny(OrderIntent("BTCUSDT", -1, 1_000.0), c) is Denial.REDUCE_ONLY  # adds to it
    assert deny(OrderIntent("BTCUSDT", 1, 9_000.0), c) is Denial.REDUCE_ONLY  # would flip it
    assert deny(OrderIntent("BTCUSDT", 1, 3_000.0), c) is None


def test_stalker_still_allows_entries():
    assert deny(OrderIntent("BTCUSDT", -1, 1_000.0), ctx(posture="STALKER")) is None


def test_order_rate_limit_counts_the_trailing_minute_only():
    recent = [T - 70_000_000_000, T - 50_000_000_000, T - 20_000_000_000, T - 1]
    assert deny(OrderIntent("BTCUSDT", -1, 1_000.0), ctx(recent_orders_ns=recent)) is (
        Denial.ORDER_RATE
    )
    assert deny(OrderIntent("BTCUSDT", -1, 1_000.0), ctx(recent_orders_ns=recent[:3])) is None


def test_max_notional_per_order():
    assert deny(OrderIntent("BTCUSDT", -1, 10_000.01), ctx()) is Denial.MAX_ORDER_NOTIONAL
    assert deny(OrderIntent("BTCUSDT", -1, 10_000.0), ctx()) is None


def test_max_position_per_asset():
    c = ctx(equity=1e6, positions={"BTCUSDT": -9_000.0})
    assert deny(OrderIntent("BTCUSDT", -1, 7_000.0), c) is Denial.MAX_POSITION
    assert deny(OrderIntent("ETHUSDT", -1, 7_000.0), c) is None


def test_max_gross_leverage():
    c = ctx(equity=15_000.0, positions={"ETHUSDT": 12_000.0, "SOLUSDT": -14_000.0})
    assert deny(OrderIntent("BTCUSDT", -1, 9_000.0), c) is Denial.MAX_LEVERAGE  # 35k / 15k
    assert deny(OrderIntent("BTCUSDT", -1, 4_000.0), c) is None  # 30k / 15k = 2.0


def test_reductions_skip_size_limits():
    c = ctx(equity=1_000.0, positions={"BTCUSDT": -50_000.0})
    assert is_reduction(OrderIntent("BTCUSDT", 1, 20_000.0), c)
    assert deny(OrderIntent("BTCUSDT", 1, 20_000.0), c) is None


def test_pipeline_reports_the_first_failing_check():
    assert [c.__name__ for c in CHECKS] == [
        "check_known_inputs",
        "check_posture",
        "check_order_rate",
        "check_order_notional",
        "check_position",
        "check_leverage",
    ]
    # TURTLE and oversized: the posture reason wins over the size reason
    assert deny(OrderIntent("BTCUSDT", -1, 1e9), ctx(posture="TURTLE")) is Denial.REDUCE_ONLY


def test_require_allowed_raises_a_typed_error_naming_the_reason():
    v = pre_trade(OrderIntent("BTCUSDT", -1, 1e9), ctx(), LIM)
    with pytest.raises(OrderDeniedError, match="max_order_notional") as err:
        require_allowed(v)
    assert err.value.denial is Denial.MAX_ORDER_NOTIONAL
