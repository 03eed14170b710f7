"""Scans as Nautilus custom data, and per-asset quotes for the matching engine.

Timestamps (FACTS): a scan row carries its bar's OPEN time and is known at the bar's close, so
every Nautilus ``ts_event``/``ts_init`` here is the row timestamp plus one bar. At the same
instant the quotes are added before the scan, so the matching engine already holds the closes
when the strategy acts on the scan: a market order then fills at that bar's close.

Quotes, not bars: the sandbox matches on quote/trade ticks only, and one quote per asset per bar
is a quarter of the events a bar turns into. ``spread_ticks=0`` puts bid = ask = close (the
parity cost model); otherwise the book is ``spread_ticks`` exchange ticks wide around the close.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from nautilus_trader.core.data import Data
from nautilus_trader.model.data import CustomData, DataType, QuoteTick
from nautilus_trader.model.identifiers import ClientId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.persistence.wranglers import QuoteTickDataWrangler

from dolphin.adapters.nautilus.scan_driver import ScanInput, bar_ns, scan_inputs
from dolphin.features.funding import FundingEvents
from dolphin.scanner.schema import validate_scans

SCAN_CLIENT = ClientId("DOLPHINSCANS")
#: Quote size: deep enough that no order of this system walks an L1 book.
QUOTE_SIZE = 1e9


class ScanData(Data):
    """One scan row wrapped for Nautilus (``CustomData(DataType(ScanData), ...)``)."""

    def __init__(self, scan: ScanInput, ts_event: int, ts_init: int) -> None:
        self.scan = scan
        self._ts_event = ts_event
        self._ts_init = ts_init

    @property
    def ts_event(self) -> int:
        """The scan's known-at time (its bar's close), ns."""
        return self._ts_event

    @property
    def ts_init(self) -> int:
        """When the system received it, ns."""
        return self._ts_init


SCAN_DATA_TYPE = DataType(ScanData)


def scan_custom_data(
    scans: pd.DataFrame, source: str = "scans", *, funding: FundingEvents | None = None
) -> list[CustomData]:
    """Return every scan (with its bar's funding events) as ``CustomData`` stamped at its bar's
    close."""
    assets = validate_scans(scans, source)
    step = bar_ns(scans)
    return [
        CustomData(SCAN_DATA_TYPE, ScanData(s, s.bar_ts_ns + step, s.bar_ts_ns + step))
        for s in scan_inputs(scans, assets, funding)
    ]


def quote_frame(closes: np.ndarray, ts_ns: np.ndarray, half_spread: float) -> pd.DataFrame:
    """Return a bid/ask frame for one asset: rows where the close is valid and changed."""
    ok = np.isfinite(closes) & (closes > 0)
    prev = np.r_[np.nan, closes[:-1]]
    keep = ok & (closes != prev)
    return pd.DataFrame(
        {
            "bid_price": closes[keep] - half_spread,
            "ask_price": closes[keep] + half_spread,
            "bid_size": QUOTE_SIZE,
            "ask_size": QUOTE_SIZE,
        },
        index=pd.to_datetime(ts_ns[keep], utc=True),
    )


def scan_quotes(
    scans: pd.DataFrame,
    instruments: dict[str, Instrument],
    *,
    spread_ticks: float = 0.0,
    exchange_ticks: dict[str, float] | None = None,
) -> dict[str, list[QuoteTick]]:
    """Return per-asset quote ticks at each bar's close (ts = open + one bar).

    An asset without one real close in the span (its data ended before it, or starts after)
    gets no ticks: an empty list, never an empty frame for Nautilus's wrangler, which refuses
    one."""
    step = bar_ns(scans)
    ts = scans["timestamp"].to_numpy(dtype="datetime64[ns]").astype(np.int64) + step
    out: dict[str, list[QuoteTick]] = {}
    for sym, inst in instruments.items():
        tick = (exchange_ticks or {}).get(sym, float(inst.price_increment))
        frame = quote_frame(scans[sym].to_numpy(dtype=np.float64), ts, spread_ticks * tick / 2)
        out[sym] = QuoteTickDataWrangler(inst).process(frame) if len(frame) else []
    return out
