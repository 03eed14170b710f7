"""Binance USDT-M perpetual instruments from a recorded ``exchangeInfo`` response.

The file is either plain JSON or cryptofeed's capture format (``URL -> ts: {json}`` per line).
Tick and lot sizes come from the PRICE_FILTER and LOT_SIZE filters. Two adjustments, both logged:

- the price precision is raised to cover the data (FACTS: some coins need 8 decimals; spot
  closes replayed on a perpetual may carry more decimals than the contract's tick), otherwise
  Nautilus would round every fill away from the close the engine saw;
- ``parity=True`` raises the size precision to ``PARITY_SIZE_PRECISION`` so lot rounding does not
  move PnL by more than ~1e-8 relative (parity compares engines, not lot sizes).

A symbol absent from the file (delisted or not yet listed) gets a conservative stand-in: the
data's own price precision, a lot step of 1 and a 5 USDT minimum notional.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.identifiers import InstrumentId, Symbol, Venue
from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.model.objects import Currency, Money, Price, Quantity

from dolphin.alpha.nb import MAKER_FEE, TAKER_FEE
from dolphin.core.errors import BadInputError

log = logging.getLogger(__name__)

VENUE = Venue("BINANCE")
DEFAULT_EXCHANGE_INFO = (
    Path(__file__).resolve().parents[5]
    / "shared/data/raw_ws/cryptofeed_binance_futures/BINANCE_FUTURES.0"
)
PARITY_SIZE_PRECISION = 8
MAX_PRICE_PRECISION = 9


def load_exchange_info(path: str | Path) -> dict[str, dict[str, Any]]:
    """Return the PERPETUAL symbols of an exchangeInfo file, keyed by symbol."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise BadInputError(f"cannot read exchangeInfo ({exc.strerror})", source=str(p)) from None
    for line in text.splitlines():
        body = line.split(": ", 1)[1] if " -> " in line.split("{", 1)[0] else line
        try:
            doc = json.loads(body)
        except json.JSONDecodeError:
            continue
        if isinstance(doc, dict) and "symbols" in doc:
            return {
                s["symbol"]: s for s in doc["symbols"] if s.get("contractType") == "PERPETUAL"
            }
    raise BadInputError("no exchangeInfo document with 'symbols' found", source=str(p))


def decimals_needed(values: np.ndarray, limit: int = MAX_PRICE_PRECISION) -> int:
    """Return the fewest decimals (<= limit) that represent every finite value exactly."""
    v = values[np.isfinite(values)]
    for d in range(limit + 1):
        if np.allclose(np.round(v, d), v, rtol=0.0, atol=10.0 ** -(limit + 1)):
            return d
    return limit


def _filters(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["filterType"]: f for f in spec.get("filters", [])}


def _precision(step: str) -> int:
    exp = Decimal(step).normalize().as_tuple().exponent
    return max(0, -int(exp))


def _plain(step: str) -> str:
    """exchangeInfo pads steps with zeros ("0.00010"); Nautilus reads precision from the
    digits, so strip them to agree with ``_precision``."""
    return f"{Decimal(step).normalize():f}"


def make_instrument(
    symbol: str,
    spec: dict[str, Any] | None,
    *,
    data_price_precision: int = 0,
    parity: bool = False,
) -> CryptoPerpetual:
    """Build the ``SYMBOL-PERP.BINANCE`` instrument (taker/maker fees of the engine's model)."""
    if spec is not None:
        f = _filters(spec)
        tick = _plain(f["PRICE_FILTER"]["tickSize"])
        step = _plain(f["LOT_SIZE"]["stepSize"])
        min_qty = _plain(f["LOT_SIZE"]["minQty"])
        min_notional = f.get("MIN_NOTIONAL", {}).get("notional", "5")
        base = spec["baseAsset"]
    else:
        log.warning("instrument %s not in exchangeInfo: using a conservative stand-in", symbol)
        tick, step, min_qty, min_notional = "1", "1", "1", "5"
        base = symbol.removesuffix("USDT")
    price_precision = max(_precision(tick), data_price_precision)
    if price_precision > _precision(tick):
        log.info("%s: price precision %d -> %d to cover the data", symbol, _precision(tick),
                 price_precision)
        tick = f"{Decimal(1).scaleb(-price_precision):f}"
    size_precision = PARITY_SIZE_PRECISION if parity else _precision(step)
    if parity:
        step = min_qty = f"{Decimal(1).scaleb(-size_precision):f}"
    return CryptoPerpetual(
        instrument_id=InstrumentId(Symbol(f"{symbol}-PERP"), VENUE),
        raw_symbol=Symbol(symbol),
        base_currency=Currency.from_str(base, strict=False),
        quote_currency=USDT,
        settlement_currency=USDT,
        is_inverse=False,
        price_precision=price_precision,
        price_increment=Price.from_str(tick),
        size_precision=size_precision,
        size_increment=Quantity.from_str(step),
        max_quantity=None,
        min_quantity=Quantity.from_str(min_qty),
        max_notional=None,
        min_notional=None if parity else Money(Decimal(min_notional), USDT),
        max_price=None,
        min_price=None,
        margin_init=Decimal("0.05"),
        margin_maint=Decimal("0.025"),
        maker_fee=Decimal(str(MAKER_FEE)),
        taker_fee=Decimal(str(TAKER_FEE)),
        ts_event=0,
        ts_init=0,
    )


def build_instruments(
    closes: dict[str, np.ndarray],
    exchange_info: str | Path | None = None,
    *,
    parity: bool = False,
) -> dict[str, CryptoPerpetual]:
    """Return one instrument per asset, precision covering that asset's closes."""
    specs = load_exchange_info(exchange_info or DEFAULT_EXCHANGE_INFO)
    return {
        sym: make_instrument(
            sym, specs.get(sym), data_price_precision=decimals_needed(px), parity=parity
        )
        for sym, px in closes.items()
    }


def instrument_id(symbol: str) -> InstrumentId:
    """Return the instrument id used for ``symbol``."""
    return InstrumentId(Symbol(f"{symbol}-PERP"), VENUE)
