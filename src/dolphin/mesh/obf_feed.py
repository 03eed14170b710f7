"""The mesh's OBF service on a live feed: a local exchange replaying captures, a market-data
client keeping the books, the ``ObfService`` attached to it.

The exchange runs in the service's own process (these machines cannot reach Binance; the
client is the real one and speaks Binance's protocol to it). The service cycles every
``cycle_s`` of wall time on its live clock and pushes its features through its background
pusher; its heartbeat goes to ``DOLPHIN_HEARTBEAT["obf"]`` every second. When the tape ends the
books stop moving and the service's own guards (dark streak, stall watchdog) say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from dolphin.core.clock import LiveClock
from dolphin.store.ports import Store

log = logging.getLogger(__name__)


def _streams(messages) -> tuple[str, str]:
    """The depth and trade stream kinds the tape holds (e.g. ``depth@0ms``, ``aggTrade``)."""
    kinds = {m.stream.split("@", 1)[1] for m in messages if "@" in m.stream}
    depth = next((k for k in sorted(kinds) if k.startswith("depth")), "depth@100ms")
    trade = "trade" if "trade" in kinds else "aggTrade"
    return depth, trade


async def _run(store: Store, opts: dict[str, Any], stop, captures: list[Path]) -> int:
    from dolphin.adapters.binance.client import MarketDataClient
    from dolphin.adapters.binance.local_exchange import LocalExchange
    from dolphin.mesh.runners import beat, observe
    from dolphin.services.obf_service import ObfService, ObfServiceConfig

    info = opts.get("exchange_info")
    ex = LocalExchange(captures=captures, speed=float(opts.get("ob_speed", 1.0)),
                       exchange_info=Path(info) if info else None)
    await ex.start()
    symbols = sorted({m.stream.split("@")[0].upper() for m in ex.messages})
    depth, trade = _streams(ex.messages)
    client = MarketDataClient(ex.urls["http"], ex.urls["ws"], symbols,
                              streams=(depth, "bookTicker", trade), data_timeout_s=10.0)
    svc = ObfService(store, clock=LiveClock(), name="obf",
                     config=ObfServiceConfig(warmup_s=float(opts.get("ob_warmup_s", 60.0))))
    svc.attach(client)
    svc.start()
    log.info("obf: %d symbols from %d capture files (%s, %s)", len(symbols), len(captures),
             depth, trade)
    task = asyncio.get_running_loop().create_task(client.run())
    cycle_s = float(opts.get("ob_cycle_s", 0.5))
    next_beat = 0.0
    try:
        while not stop() and not task.done():
            t0 = time.perf_counter()
            svc.cycle()
            observe("cycle", time.perf_counter() - t0)
            now = time.monotonic()
            if now >= next_beat:
                c = client.counters
                beat(store, svc, tape_finished=ex.finished.is_set(),
                     resyncs=max(0, c.snapshots - len(symbols)), reconnects=c.reconnects,
                     snapshot_failures=c.snapshot_failures)
                next_beat = now + 1.0
            await asyncio.sleep(cycle_s)
    finally:
        client.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, timeout=10)
        await ex.stop()
        svc.stop()
        beat(store, svc)
    if task.done() and not task.cancelled() and task.exception() is not None:
        log.error("obf: market-data client ended: %r", task.exception())
        return 1
    return 0


def run_obf_feed(store: Store, opts: dict[str, Any], stop, captures: list[Path]) -> int:
    """Run the OBF service on ``captures`` until ``stop()``; return the exit code."""
    return asyncio.run(_run(store, opts, stop, captures))
