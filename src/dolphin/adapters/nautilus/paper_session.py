"""One paper session: build the node, run it for a while, print status, end with a summary.

The stop paths are all the same path: ``--duration`` elapsed, the replay file exhausted, or
Ctrl-C (Nautilus's SIGINT handler stops the node; the driver notices). Before stopping, an open
position is closed through the engine (reason END_OF_DATA) so the summary's PnL is realised.

With ``--ledger DB`` every event is appended to the hash-chained ledger. When DB already holds
a session, the new process resumes it (restart = cold start): the ledger is verified, the
session is rerun from its first bar on the same bars file, unpaced, each row it would write
checked against the ledger's (``ledger.resume``), which rebuilds the engine, the sandbox venue
and the ledger's fold exactly; the venue's positions and balance are then reconciled with the
ledger's and the session goes on appending. A ledger that fails verification, a rerun that
differs from it, or a venue that disagrees is a Cat1 invariant break: the trader refuses to
trade (HIBERNATE) and the session ends with the reason. ``check_only`` (``dolphin
replay-session``) reruns and compares without appending, and stops at the ledger's last row.

With ``ob`` (``dolphin paper --ob FILE``) the engine runs OB-1..OB-5 on recorded order-book
features: a ``backtest.ob_table.RecordedOb`` over the file, aligned to the replayed bars (their
open times from the closes' grid, the bar length its modal step, as the backtest drivers align
the scans), the day protocol taking OB-4's stress from it. The file's SHA-256 is part of the
session's identity (``ob_sha256`` in the CONFIG row; None without a file), so a resume with
another OB file, or without one, is refused naming the field.

The store views (Bible §15) are written from the ledger's fold after every row but decisions:
``DOLPHIN_STATE_BLUE["latest"]`` and ``DOLPHIN_PNL_BLUE[YYYY-MM-DD]``; on start they are
rebuilt from the whole ledger.
"""

from __future__ import annotations

import asyncio
import hashlib
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
from dolphin.backtest.ob_table import recorded_ob
from dolphin.backtest.replay import gate_id
from dolphin.core.clock import SimulatedClock
from dolphin.core.config import DolphinConfig
from dolphin.core.errors import ConfigError, DataError, InvariantBreakError
from dolphin.ledger.chain import Ledger, Row, verify
from dolphin.ledger.recorder import SessionRecorder
from dolphin.ledger.resume import NOT_REGENERATED, RecordedPostures, ResumingLedger
from dolphin.ledger.tradelog import TradeLogger, session_name
from dolphin.ledger.views import LedgerView
from dolphin.risk.acb import AdaptiveCircuitBreaker
from dolphin.store.ports import Store
from dolphin.store.schema import PNL_BLUE, PNL_GREEN, STATE_BLUE, encode_value

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
    log_dir: Path = Path("runs/paper")
    status_every_s: float = 1.0
    log_level: str = "ERROR"
    extra: dict[str, Any] = field(default_factory=dict)
    ledger: Path | None = None  # the hash-chained ledger the session appends to (None: none)
    ob: Path | None = None  # recorded OB features (``backtest.ob_table``) for OB-1..5 (None: off)


def progress_of(bars: int, total_bars: int, elapsed_s: float, duration_s: float) -> float:
    """Return how far the session is, 0..1: the bars replayed or the time used, whichever
    ends it first."""
    by_bars = bars / total_bars if total_bars > 0 else 0.0
    by_time = elapsed_s / duration_s if duration_s > 0 else 0.0
    return min(1.0, max(by_bars, by_time))


def status_line(strategy: DolphinStrategy, client: ReplayDataClient | None,
                progress: float | None = None, total_bars: int = 0) -> str:
    """Return the compact status: progress, day, posture, position, realised PnL, capital,
    trades and bars replayed."""
    core = strategy.core
    pos = ", ".join(f"{t.asset} {'SHORT' if t.direction < 0 else 'LONG'} {t.qty:g}"
                    for t in strategy.trips.open.values()) or "flat"
    bars = client.bars_sent if client is not None else 0
    pnl = sum(t.pnl for t in strategy.trips.done)
    head = f"[{progress:4.0%}] " if progress is not None else ""
    of = f"/{total_bars:,}" if total_bars else ""
    return (f"{head}{core.current_date or 'warm-up'} posture={core.posture} position={pos} "
            f"pnl={pnl:+,.2f} capital={core.engine.capital:,.2f} "
            f"trades={len(strategy.trips.done)} bars={bars:,}{of}")


#: ``status(line, progress, final)``: where the session's status goes (``commands.paper``
#: rewrites one terminal line in place); the default prints every line through ``echo``.
StatusSink = Callable[[str, float, bool], None]


def flatten(strategy: DolphinStrategy) -> None:
    """Close an open engine position at its last price and send the matching order."""
    core, scan = strategy.core, strategy._scan
    if scan is None or not core.engine.in_position:
        return
    closed = core.engine.close_open_position(core.total_bars, scan.bar_ts_ns)
    for trade in closed.tolist():
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
                if strategy.halted:
                    return
                if strategy.recorder is not None and not strategy.recorder.order(
                    strategy.event_ns(), "CLOSE",
                    position.instrument_id.symbol.value.removesuffix("-PERP"),
                    1 if position.is_long else -1,
                    position.quantity.as_double() * float(position.avg_px_open), "SESSION_END",
                ):  # fmt: skip
                    return  # the ledger row first, as every order; refused: a rerun differs
                strategy.close_position(position, tags=["reason=SESSION_END"])
                strategy.orders_submitted += 1
        await asyncio.sleep(0.05)


async def _drive(node, strategy: DolphinStrategy, s: PaperSettings,
                 status: StatusSink, until: Callable[[], bool] = lambda: False) -> bool:
    """Run the node for the session; return True when it stopped before the session's end
    (Nautilus stops it on SIGINT/SIGTERM: Ctrl-C), False after a normal end, a halt or
    ``until()``."""
    run = asyncio.ensure_future(node.run_async())
    closes = ReplayDataClientFactory.closes
    total = len(closes) if closes is not None else 0
    t_start = time.monotonic()
    while not node.kernel.trader.is_running and time.monotonic() - t_start < STARTUP_S:
        await asyncio.sleep(0.05)  # connecting the clients takes a moment
    t0 = time.monotonic()

    def report(final: bool = False) -> None:
        client = ReplayDataClientFactory.last
        bars = client.bars_sent if client is not None else 0
        done = progress_of(bars, total, time.monotonic() - t0, s.duration_s)
        status(status_line(strategy, client, done, total), done, final)

    while time.monotonic() - t0 < s.duration_s and node.kernel.trader.is_running:
        client = ReplayDataClientFactory.last
        if (client is not None and client.finished) or strategy.halted or until():
            break
        report()
        await _pause(s.status_every_s, lambda: strategy.halted or until())
    stopped_early = not node.kernel.trader.is_running
    if not stopped_early:
        if not strategy.halted and not until():
            flatten(strategy)
            await settle(strategy)
        await node.stop_async()
    else:  # Nautilus's signal handler stopped the node: let its stop task finish
        await _others_done(run, FLATTEN_WAIT_S)
    report(final=True)
    await await_run_end(run, FLATTEN_WAIT_S)
    return stopped_early


async def await_run_end(run: asyncio.Future, timeout_s: float) -> None:
    """Let ``node.run_async()`` return by itself once the node has stopped.

    Stopping the engines queues a sentinel on each of their queues; ``run_async`` returns when
    the queue tasks have drained them. Cancelling it before that (as this driver once did right
    after ``stop_async``) makes Nautilus's ``run_async`` catch the ``CancelledError`` and log
    ``str(e)``, which is empty: the bare ``[ERROR] DOLPHIN-PAPER.TradingNode:`` line at shutdown.
    Only a run that has not ended within ``timeout_s`` is cancelled.
    """
    await asyncio.wait({run}, timeout=timeout_s)
    if not run.done():
        run.cancel()
    await asyncio.gather(run, return_exceptions=True)


async def _pause(seconds: float, wake: Callable[[], bool]) -> None:
    """Sleep ``seconds``, waking early when ``wake()`` turns true."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds and not wake():
        await asyncio.sleep(min(0.02, seconds))


def file_sha256(path: Path) -> str:
    """Return the SHA-256 of a file's bytes (what a resumed session must replay again)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def prior_rows(path: Path | None) -> list[Row]:
    """Return the rows of an existing ledger after verifying its chain ([] when there is none);
    a ledger that fails verification is an invariant break."""
    if path is None or not path.exists():
        return []
    v = verify(path)
    if not v.ok:
        raise InvariantBreakError(
            f"ledger {path} fails verification at row {v.bad_seq} ({v.reason}); refusing to "
            "trade (Cat1 invariant break: HIBERNATE)"
        )
    with Ledger(path) as led:
        return list(led.rows())


def check_same_session(rows: list[Row], expect: dict[str, Any], path: Path) -> None:
    """Refuse to resume a ledger written by another config or from other data."""
    config = next((r for r in rows if r.kind == "CONFIG"), None)
    if config is None:
        raise DataError("ledger holds rows but no CONFIG row: not a session ledger",
                        source=str(path))
    for key, want in expect.items():
        have = config.body.get(key)
        if have != want:
            raise ConfigError(f"ledger {path} belongs to another session: its {key} is "
                              f"{have!r}, this session's is {want!r}")


class StoreViews:
    """Keep the ledger's fold and write it to the store after every row but decisions.

    A SHORT (blue) session writes ``DOLPHIN_PNL_BLUE`` and ``DOLPHIN_STATE_BLUE["latest"]``, a
    LONG (green) one ``DOLPHIN_PNL_GREEN`` and ``DOLPHIN_STATE_BLUE["latest_green"]`` (the
    schema has one state map); with a ``session`` name the state also goes under
    ``run:<session>`` (the Bible's per-run capital record).
    """

    def __init__(self, store: Store | None, view: LedgerView,
                 live: Callable[[], bool] = lambda: True, *, direction: str = "short",
                 session: str | None = None) -> None:
        self.store = store
        self.view = view
        self.live = live  # False while a rerun regenerates rows the store already shows
        self.pnl_map = PNL_GREEN if direction == "long" else PNL_BLUE
        self.state_keys = ["latest_green" if direction == "long" else "latest"]
        if session is not None:
            self.state_keys.append(f"run:{session}")
        self.writes = 0

    def on_row(self, row: Row) -> None:
        """Fold ``row``; publish the state (and the day it changed) unless rerunning (decisions
        and journalled scans change nothing the store shows)."""
        day = self.view.apply(row)
        if row.kind not in ("DECISION", "SCAN") and self.live():
            self.publish(day)

    def publish(self, day: str | None = None) -> None:
        """Write the state and, when given, the day's PnL."""
        if self.store is None:
            return
        now = time.time_ns()
        state = encode_value(self.view.state(), now)
        self.store.map(STATE_BLUE).put_all(dict.fromkeys(self.state_keys, state))
        if day is not None:
            self.store.map(self.pnl_map).put(day, encode_value(self.view.day(day), now))
        self.writes += 1

    def publish_all(self) -> None:
        """Write the state and every day's PnL (a start over an existing ledger)."""
        for day in sorted(self.view.days):
            self.publish(day)
        self.publish()


class SessionLedger:
    """The session's side of the ledger: the appender (a ``ResumingLedger`` over ``prior``
    rows when resuming), the recorder, and the store views kept from the ledger's fold."""

    def __init__(self, path: Path | None, prior: list[Row], store: Store | None,
                 now_ns: Callable[[], int], check_only: bool = False, *,
                 direction: str = "short", session: str | None = None) -> None:
        self.prior = prior
        self.now_ns = now_ns
        self.check_only = check_only
        self.ledger = Ledger(path) if path is not None and not check_only else None
        self.resuming = ResumingLedger(prior, self.ledger) if prior else None
        appender = self.resuming if self.resuming is not None else self.ledger
        self.views = StoreViews(store, LedgerView(), live=lambda: not self.rerunning,
                                direction=direction, session=session)
        self.recorder = (SessionRecorder(appender, on_row=self.views.on_row)
                         if appender is not None else None)
        if prior:
            StoreViews(store, LedgerView.rebuild(prior), direction=direction,
                       session=session).publish_all()  # the store, rebuilt from the ledger
            for row in prior:  # what a rerun does not regenerate: the CONFIG row, restarts
                if row.kind in NOT_REGENERATED:
                    self.views.view.apply(row)

    @property
    def rerunning(self) -> bool:
        """True while the rerun is behind the ledger's last row."""
        return self.resuming is not None and not self.resuming.caught_up

    def done(self) -> bool:
        """A check-only rerun is done at the ledger's last row or at its first mismatch."""
        r = self.resuming
        return self.check_only and r is not None and (r.caught_up or not r.ok)

    def start(self, session: str, core: DolphinCore, **config_row: Any) -> None:
        """Write the CONFIG row (a new session) and this start's SESSION row; a supervised
        rerun trades under the postures the ledger recorded."""
        if self.prior and core.posture_source is not None:
            recorded, live = RecordedPostures(self.prior, self.now_ns), core.posture_source
            core.posture_source = lambda: recorded() if self.rerunning else live()
        if self.recorder is not None and not self.prior:
            self.recorder.config(self.now_ns(), **config_row)
        if self.ledger is not None:
            body = {"session": session, "resumed_rows": len(self.prior)}
            self.views.on_row(self.ledger.append("SESSION", body, self.now_ns()))

    def close(self) -> None:
        """Close the database (idempotent)."""
        if self.ledger is not None:
            self.ledger.close()


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
    check_only: bool = False,
    status: StatusSink | None = None,
) -> dict[str, Any]:
    """Run one paper session on the sandbox venue; return the session summary.

    ``mc_gate`` is the MC-Forewarner day gate (``backtest.gates.load_gate``); None runs open and
    the summary says ``forewarner: off``. ``s.ob`` attaches recorded OB features (module doc;
    the summary says ``ob: FILE`` or ``ob: off``). An existing ``s.ledger`` is resumed (module
    doc); ``check_only`` reruns it without appending and stops at its last row. ``status``
    receives the periodic status line (default: ``echo`` it).
    """
    closes = load_closes(s.replay)
    ReplayDataClientFactory.closes = closes
    assets = list(closes.columns)
    cfg = venue_config(config, parity=False)
    instruments = build_instruments({a: closes[a].to_numpy(dtype=float) for a in assets})
    # the OB table is read (and validated) before anything else runs; bars open on the grid
    ob_engine = recorded_ob(s.ob, closes.index.as_unit("ns").asi8)
    ob_label = str(s.ob) if s.ob is not None else "off"
    identity = {"config_id": config.id, "venue_config_id": cfg.id, "assets": assets,
                "replay_sha256": file_sha256(s.replay), "forewarner": gate_id(mc_gate),
                "supervised": posture_source is not None,
                "ob_sha256": file_sha256(s.ob) if s.ob is not None else None}
    prior = prior_rows(s.ledger)
    if prior:
        check_same_session(prior, identity, s.ledger)
        echo(f"ledger {s.ledger}: {len(prior):,} rows verified; rerunning the session to "
             + ("check it" if check_only else "resume it"))
    elif check_only:
        raise DataError("nothing to replay: the ledger is missing or empty", source=str(s.ledger))
    echo(f"ob: {ob_label}")
    event_clock = SimulatedClock(int(closes.index[0].value))
    core = DolphinCore(NDAlphaEngine(cfg, assets, mc_gate=mc_gate, ob_engine=ob_engine),
                       posture_source=posture_source, acb=AdaptiveCircuitBreaker(cfg.acb),
                       live_mode=True)
    session = session_name()
    settings = {"config_id": config.id, "venue_config_id": cfg.id, "config": cfg.to_dict(),
                "replay": str(s.replay), "speed": s.speed, "warmup": s.warmup,
                "assets": assets, "session": session, "resumed_rows": len(prior),
                "ob": str(s.ob) if s.ob is not None else None,
                "ob_sha256": identity["ob_sha256"], **s.extra}
    tlog = TradeLogger(s.log_dir, settings, session=session)
    # what the replay client reads when the node builds it (``strategy`` is bound below)
    ReplayDataClientFactory.event_clock = event_clock
    ReplayDataClientFactory.scans_done = lambda: strategy.scans_done
    ReplayDataClientFactory.ready = lambda: strategy.is_running
    ReplayDataClientFactory.unpaced = lambda i: sl.rerunning
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    replay = ReplayDataClientConfig(path=str(s.replay), speed=s.speed, warmup=s.warmup)
    node = sandbox_node(replay, initial=cfg.alpha.initial_capital, log_level=s.log_level,
                        loop=loop)
    node.build()
    for inst in instruments.values():
        node.kernel.cache.add_instrument(inst)
    sl = SessionLedger(s.ledger, prior, store, event_clock.now_ns, check_only,
                       direction=cfg.alpha.direction, session=session)
    sl.start(session, core, config=config.to_dict(), initial_capital=cfg.alpha.initial_capital,
             replay=str(s.replay), warmup=s.warmup,
             ob=str(s.ob) if s.ob is not None else None, **identity)
    strategy = DolphinStrategy(
        DolphinStrategyConfig(strategy_id="DOLPHIN-PAPER-001", subscribe_quotes=True,
                              record_equity=False),
        core, store=store, trade_logger=tlog, recorder=sl.recorder,
        event_clock=event_clock.now_ns, view=sl.views.view if sl.recorder is not None else None,
    )
    node.trader.add_strategy(strategy)
    t0 = time.monotonic()
    try:
        sink = status or (lambda line, _progress, _final: echo(line))
        stopped_early = loop.run_until_complete(_drive(node, strategy, s, sink, sl.done))
    finally:
        node.dispose()
        loop.close()
        sl.close()
        for attr in ("event_clock", "scans_done", "ready", "unpaced"):
            setattr(ReplayDataClientFactory, attr, None)
    client = ReplayDataClientFactory.last
    resuming = sl.resuming
    mismatch = resuming.finish() if resuming is not None else None
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
        "ob": ob_label,
        "mc_status": core.engine.mc_status,
        "stale_scans": core.stale_scans,
        "stale_state_events": core.stale_state_events,
        "settings_file": str(tlog.settings_path),
        "trades_file": str(tlog.trades_path),
        "ledger": str(s.ledger) if s.ledger is not None else None,
        "session": session,
        "resumed_rows": len(prior),
        "rerun_matched": resuming.matched if resuming is not None else 0,
        "rerun_mismatch": mismatch.describe() if mismatch is not None else None,
        "halted": strategy.halt_reason or None,
        "settle_timeouts": client.settle_timeouts if client is not None else 0,
        "state": sl.views.view.state() if sl.recorder is not None else None,
    }
