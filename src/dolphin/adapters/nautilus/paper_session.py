"""One paper session: build the node, run it for a while, print status, end with a summary.

The stop paths are all the same path: ``--duration`` elapsed, the replay file exhausted, or
Ctrl-C (Nautilus's SIGINT handler stops the node; the driver notices). Before stopping, an open
position is closed through the engine (reason END_OF_DATA) so the summary's PnL is realised.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dolphin.adapters.nautilus.instruments import build_instruments
from dolphin.adapters.nautilus.paper import (
    ReplayDataClient,
    ReplayDataClientConfig,
    ReplayDataClientFactory,
    load_closes,
    sandbox_node,
)
from dolphin.adapters.nautilus.parity_fills import venue_config
from dolphin.adapters.nautilus.scan_driver import DolphinCore, PostureSource
from dolphin.adapters.nautilus.strategy import DolphinStrategy, DolphinStrategyConfig
from dolphin.alpha.engine import NDAlphaEngine
from dolphin.backtest.replay import gate_id
from dolphin.core.config import DolphinConfig
from dolphin.ledger.chain import Ledger
from dolphin.ledger.recorder import SessionRecorder
from dolphin.ledger.tradelog import TradeLogger
from dolphin.risk.acb import AdaptiveCircuitBreaker
from dolphin.store.ports import Store

#: Longest wait for the node to connect its clients and start the trader.
STARTUP_S = 15.0
FLATTEN_WAIT_S = 10.0


@dataclass
class PaperSettings:
    """What a paper session needs besides the engine config."""

    replay: Path
    speed: float = 60.0
    duration_s: float = 60.0
    warmup: int = 900
    log_dir: Path = Path("logs/paper_trading")
    status_every_s: float = 1.0
    log_level: str = "ERROR"
    extra: dict[str, Any] = field(default_factory=dict)
    ledger: Path | None = None  # the hash-chained ledger the session appends to (None: none)


def status_line(strategy: DolphinStrategy, client: ReplayDataClient | None) -> str:
    """Return the live status: posture, position, capital, trades, bars replayed."""
    core = strategy.core
    pos = ", ".join(f"{t.asset} {'SHORT' if t.direction < 0 else 'LONG'} {t.qty:g}"
                    for t in strategy.trips.open.values()) or "flat"
    bars = client.bars_sent if client is not None else 0
    return (f"[{core.current_date}] posture={core.posture} position={pos} "
            f"capital={core.engine.capital:,.2f} trades={len(strategy.trips.done)} "
            f"orders={strategy.orders_submitted} bars={bars}")


def flatten(strategy: DolphinStrategy) -> None:
    """Close an open engine position at its last price and send the matching order."""
    core, scan = strategy.core, strategy._scan
    if scan is None or not core.engine.in_position:
        return
    closed = core.engine.close_open_position(core.total_bars, scan.bar_ts_ns)
    for trade in closed:
        strategy.execute(core._close_intent(trade), scan)


async def settle(strategy: DolphinStrategy) -> None:
    """Wait until no order is in flight and no position is open, closing any position whose
    entry filled after the flatten; give up after ``FLATTEN_WAIT_S``.

    On a busy machine a fixed pause can stop the node with the last round trip half-booked.
    """
    cache, sid = strategy.cache, strategy.id
    t0 = time.monotonic()
    while time.monotonic() - t0 < FLATTEN_WAIT_S:
        if not cache.orders_open_count(strategy_id=sid) and not cache.orders_inflight_count(
            strategy_id=sid
        ):
            positions = cache.positions_open(strategy_id=sid)
            if not positions and not strategy.trips.open:
                return
            for position in positions:
                if strategy.recorder is not None:  # the ledger row first, as every order
                    strategy.recorder.order(
                        strategy.clock.timestamp_ns(), "CLOSE",
                        position.instrument_id.symbol.value.removesuffix("-PERP"),
                        1 if position.is_long else -1,
                        position.quantity.as_double() * float(position.avg_px_open), "SESSION_END",
                    )  # fmt: skip
                strategy.close_position(position, tags=["reason=SESSION_END"])
                strategy.orders_submitted += 1
        await asyncio.sleep(0.05)


async def _drive(node, strategy: DolphinStrategy, s: PaperSettings,
                 echo: Callable[[str], None]) -> bool:
    """Run the node for the session; return True when it stopped before the session's end
    (Nautilus stops it on SIGINT/SIGTERM: Ctrl-C), False after a normal end."""
    run = asyncio.ensure_future(node.run_async())
    t_start = time.monotonic()
    while not node.kernel.trader.is_running and time.monotonic() - t_start < STARTUP_S:
        await asyncio.sleep(0.05)  # connecting the clients takes a moment
    t0 = time.monotonic()
    while time.monotonic() - t0 < s.duration_s and node.kernel.trader.is_running:
        client = ReplayDataClientFactory.last
        if client is not None and client.finished:
            break
        echo(status_line(strategy, client))
        await asyncio.sleep(s.status_every_s)
    stopped_early = not node.kernel.trader.is_running
    if not stopped_early:
        flatten(strategy)
        await settle(strategy)
        await node.stop_async()
    else:  # Nautilus's signal handler stopped the node: let its stop task finish
        await _others_done(run, FLATTEN_WAIT_S)
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)
    return stopped_early


async def _others_done(run: asyncio.Future, timeout_s: float) -> None:
    # Only the node's stop task(s): other Nautilus tasks are cancelled by the stop itself.
    stopping = [t for t in asyncio.all_tasks() if t is not run
                and getattr(t.get_coro(), "__qualname__", "").endswith("stop_async")]
    if stopping:
        await asyncio.wait(stopping, timeout=timeout_s)


def run_paper_session(
    config: DolphinConfig,
    s: PaperSettings,
    *,
    store: Store | None = None,
    posture_source: PostureSource | None = None,
    echo: Callable[[str], None] = print,
    mc_gate: Any = None,
) -> dict[str, Any]:
    """Run one paper session on the sandbox venue; return the session summary.

    ``mc_gate`` is the MC-Forewarner day gate (``backtest.gates.load_gate``); None runs open and
    the summary says ``forewarner: off``.
    """
    closes = load_closes(s.replay)
    ReplayDataClientFactory.closes = closes
    assets = list(closes.columns)
    cfg = venue_config(config, parity=False)
    instruments = build_instruments({a: closes[a].to_numpy(dtype=float) for a in assets})
    core = DolphinCore(NDAlphaEngine(cfg, assets, mc_gate=mc_gate), posture_source=posture_source,
                       acb=AdaptiveCircuitBreaker(cfg.acb), live_mode=True)
    settings = {"config_id": config.id, "venue_config_id": cfg.id, "config": cfg.to_dict(),
                "replay": str(s.replay), "speed": s.speed, "warmup": s.warmup,
                "assets": assets, **s.extra}
    tlog = TradeLogger(s.log_dir, settings)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    replay = ReplayDataClientConfig(path=str(s.replay), speed=s.speed, warmup=s.warmup)
    node = sandbox_node(replay, initial=cfg.alpha.initial_capital, log_level=s.log_level,
                        loop=loop)
    node.build()
    for inst in instruments.values():
        node.kernel.cache.add_instrument(inst)
    ledger = Ledger(s.ledger) if s.ledger is not None else None
    recorder = SessionRecorder(ledger) if ledger is not None else None
    if recorder is not None:
        recorder.config(time.time_ns(), config.id, cfg.id, assets)
    strategy = DolphinStrategy(
        DolphinStrategyConfig(strategy_id="DOLPHIN-PAPER-001", subscribe_quotes=True,
                              record_equity=False),
        core, store=store, trade_logger=tlog, recorder=recorder,
    )
    node.trader.add_strategy(strategy)
    t0 = time.monotonic()
    try:
        stopped_early = loop.run_until_complete(_drive(node, strategy, s, echo))
    finally:
        node.dispose()
        loop.close()
        if ledger is not None:
            ledger.close()
    client = ReplayDataClientFactory.last
    return {
        "config_id": config.id,
        "wall_s": round(time.monotonic() - t0, 2),
        "stopped_early": stopped_early,
        "bars": client.bars_sent if client is not None else 0,
        "orders": strategy.orders_submitted,
        "denials": strategy.denials,
        "trades": len(strategy.trips.done),
        "open_positions": len(strategy.trips.open),
        "pnl": sum(t.pnl for t in strategy.trips.done),
        "capital": core.engine.capital,
        "posture": core.posture,
        "forewarner": gate_id(mc_gate),
        "mc_status": core.engine.mc_status,
        "stale_scans": core.stale_scans,
        "stale_state_events": core.stale_state_events,
        "settings_file": str(tlog.settings_path),
        "trades_file": str(tlog.trades_path),
        "ledger": str(s.ledger) if s.ledger is not None else None,
    }
