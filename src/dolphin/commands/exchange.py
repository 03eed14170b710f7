"""`dolphin exchange serve`: the local Binance USDT-M exchange (``adapters.binance``).

Serves REST and WebSocket market data on 127.0.0.1 from real captures (as recorded) and from
bar files (as kline/aggTrade/markPrice streams at a chosen speed), with injected faults. Runs
until the tape ends (``--exit-at-end``) or until interrupted; prints one JSON line with the URLs
first and one with the counters at the end.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``exchange serve``."""
    p = sub.add_parser("exchange", help="a local exchange speaking Binance USDT-M's protocol")
    esub = p.add_subparsers(dest="exchange_command", metavar="ACTION", required=True)
    s = esub.add_parser("serve", help="serve captures and bars on 127.0.0.1")
    s.add_argument("--capture", type=Path, nargs="*", default=[],
                   help="capture files, played in order (a continuation follows its file)")
    s.add_argument("--bars", type=Path, default=None, help="bars parquet played as klines")
    s.add_argument("--bar", default="1m", help="bar interval of --bars (default 1m)")
    s.add_argument("--speed", type=float, default=1.0, help="x recorded time (default 1)")
    s.add_argument("--port", type=int, default=0, help="port (default: any free one)")
    s.add_argument("--faults", default="", help="e.g. drop@500,stall@80:2,gap@40,rest429@1")
    s.add_argument("--exchange-info", type=Path, default=None,
                   help="exchangeInfo JSON (or a cryptofeed REST line file)")
    s.add_argument("--max-connection-s", type=float, default=24 * 3600.0,
                   help="close each connection after this long (Binance: 24 h)")
    s.add_argument("--slow-client", choices=("drop", "wait"), default="drop",
                   help="a client 10,000 messages behind: disconnect it, as Binance does "
                   "(drop, default), or pause the tape until it catches up (wait)")
    s.add_argument("--start", action="store_true", help="start the tape now, not at the "
                   "first WebSocket connection")
    s.add_argument("--exit-at-end", action="store_true", help="stop when the tape has played")
    s.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    import asyncio

    from dolphin.adapters.binance.local_exchange import Faults, LocalExchange
    from dolphin.core.errors import ConfigError

    if not args.capture and args.bars is None:
        raise ConfigError("give --capture FILE... and/or --bars FILE")

    async def main() -> dict:
        ex = LocalExchange(captures=args.capture, bars=args.bars, bar=args.bar,
                           speed=args.speed, faults=Faults.parse(args.faults),
                           exchange_info=args.exchange_info,
                           max_connection_s=args.max_connection_s,
                           slow_client=args.slow_client)
        await ex.start(port=args.port)
        print("exchange " + json.dumps({**ex.urls, "messages": len(ex.messages),
                                        "port": ex.port}), flush=True)
        if args.start:
            ex.start_tape()
        try:
            if args.exit_at_end:
                await ex.finished.wait()
            else:
                await asyncio.Event().wait()
        finally:
            await ex.stop()
        return {"played": ex.played, "rest_requests": ex.rest_requests, **ex.counters}

    counters = asyncio.run(main())
    print("exchange-end " + json.dumps(counters, sort_keys=True))
    return 0
