"""Binance market data into the live scan feed: wire records -> ``BarBuilder`` -> ``ScanService``.

``MarketDataClient(on_record=LiveScans(service).on_record)`` feeds closed ``kline_1m`` bars (the
default) or ``aggTrade``/``trade`` prints to the service's bar builder, converting the wire's
exact fixed-point values to floats at this boundary. The service scans each completed bar set
and publishes it to ``DOLPHIN_FEATURES["latest_eigen_scan"]``.
"""

from __future__ import annotations

from collections.abc import Iterable

from dolphin.adapters.binance.wire import AggTrade, Kline, Record, Trade, to_float
from dolphin.services.bars import BarSource
from dolphin.services.bars import Kline as BarKline
from dolphin.services.scan_service import ScanService


def scan_streams(symbols: Iterable[str], source: BarSource, interval: str = "1m") -> list[str]:
    """Return the stream kinds a scan feed of ``source`` needs (``MarketDataClient(streams=)``)."""
    del symbols  # every symbol takes the same streams
    return [f"kline_{interval}"] if source is BarSource.KLINES else ["aggTrade"]


class LiveScans:
    """Route a client's records to one ``ScanService``; count what it routed."""

    def __init__(self, service: ScanService) -> None:
        self.service = service
        self.klines = 0
        self.trades = 0
        self.scans = 0

    def on_record(self, record: Record) -> None:
        """``MarketDataClient.on_record``: klines or trades to the bar builder."""
        source = self.service.builder.source
        if source is BarSource.KLINES and isinstance(record, Kline):
            self.klines += 1
            self.scans += self.service.on_kline(BarKline(
                record.symbol, record.ts_open, to_float(record.open), to_float(record.high),
                to_float(record.low), to_float(record.close), to_float(record.volume),
                record.closed))
        elif source is BarSource.TRADES and isinstance(record, AggTrade | Trade):
            self.trades += 1
            self.scans += self.service.on_trade(record.symbol, record.ts_trade,
                                                to_float(record.price), to_float(record.qty))
