"""One process per mesh service: ``dolphin mesh service NAME`` wires the service and runs it.

Every service here is a ``Component`` driven by one loop (``ServiceLoop``): start it, call its
work every ``period_s`` through ``Component.run_step`` (errors by type), write its heartbeat
to ``DOLPHIN_HEARTBEAT[NAME]`` every ``heartbeat_s``, and on SIGTERM or SIGINT stop it, write
a last STOPPED beat and exit 0. A store that cannot be reached at start is retried (the
supervisor starts the store first, but a restarted store takes a moment); a heartbeat that
cannot be written is logged and retried on the next beat.

What each service does in the mesh (``plan.SERVICES`` gives the order):

- ``scan``: replays a bars file (``--replay``) at ``--speed`` x real time into the
  ``ScanService``, which publishes ``latest_eigen_scan`` (publish time = wall time, what the
  trader's staleness guard and the watchdog's scan age measure). A new replay starts once the
  trader beats RUNNING (a replayed session's clock is the replay: scans nobody takes would only
  be lost), or after ``replay_wait_s``; the first ``--warmup`` bars go unpaced. A restarted
  scan service feeds the scanner, without publishing, every bar up to the last published
  scan's bar, so its scan numbers continue where they were (the trader drops a scan whose
  number is not newer than its last).
- ``acb``: the ``AcbProcessor`` on the published scans (a store listener) and its daily tick.
- ``obf``: the ``ObfService``; with ``--captures`` it is attached to a market-data client on a
  local exchange (in the process) replaying them; without, it runs with no book and publishes
  nothing, so OB features read as missing (never as a value).
- ``exf``: the ``ExfService``. The vendors cannot be reached from these machines: with no
  ``--exf-base`` URLs the factors are not fetched at all and ``exf_latest`` is never written, so
  the ACB and the watchdog see them as absent.
- ``esof``: the ``EsofService`` (computed locally).
- ``mc``: the MC-Forewarner's status of the current UTC day at the config's max leverage, into
  ``DOLPHIN_FEATURES["mc_status"]`` (every ``period_s``).
- ``watchdog``: the ``WatchdogService``: heartbeats, value ages and the survival controller ->
  ``DOLPHIN_SAFETY``.
- ``trader``: ``adapters.nautilus.mesh_trader`` (its own loop: the Nautilus node).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dolphin.core.clock import LiveClock
from dolphin.core.errors import ConfigError
from dolphin.services.component import ACTIVE, Component, ComponentState
from dolphin.store.errors import StoreUnavailableError
from dolphin.store.features import touch_heartbeat
from dolphin.store.ports import Store

log = logging.getLogger(__name__)

#: How long a service waits for the store at start before giving up (the supervisor restarts it).
STORE_WAIT_S = 30.0


class Stop:
    """Set by SIGTERM/SIGINT (or by a test): the loop ends at its next wake-up."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> Stop:
        """Route SIGTERM and SIGINT here (main thread only)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(ValueError):
                signal.signal(sig, lambda *_: self.event.set())
        return self

    def __call__(self) -> bool:
        return self.event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; return True when stopped."""
        return self.event.wait(max(seconds, 0.0))


def connect_store(url: str, stop: Stop, *, wait_s: float = STORE_WAIT_S) -> Store:
    """Open the store at ``url``, retrying while it is not up yet (``StoreUnavailableError``)."""
    from dolphin.bootstrap import open_store

    deadline = time.monotonic() + wait_s
    while True:
        try:
            return open_store(url)
        except StoreUnavailableError as exc:
            if time.monotonic() > deadline or stop():
                raise
            log.info("store %s not reachable yet (%s); retrying", url, exc)
            stop.wait(0.5)


def beat(store: Store, component: Component, **extra: Any) -> None:
    """Write ``component``'s heartbeat; a store failure is logged (the next beat retries)."""
    hb = component.heartbeat()
    hb.update(extra)
    try:
        touch_heartbeat(store, hb, int(hb["ts_ns"]))
    except StoreUnavailableError as exc:
        log.warning("component=%s heartbeat not written: %s", component.name, exc)


class ServiceLoop:
    """Run a component: ``work()`` every ``period_s``, a heartbeat every ``heartbeat_s``."""

    def __init__(self, store: Store, component: Component, work: Callable[[], object], *,
                 period_s: float, heartbeat_s: float = 1.0, stop: Stop | None = None) -> None:
        if not period_s > 0 or not heartbeat_s > 0:
            raise ConfigError(f"service {component.name}: period and heartbeat must be > 0")
        self.store = store
        self.component = component
        self.work = work
        self.period_s = period_s
        self.heartbeat_s = heartbeat_s
        self.stop = stop or Stop()

    def run(self) -> int:
        """Start, loop until stopped, stop; return the exit code (1 when it faulted)."""
        c = self.component
        c.start()
        next_work = next_beat = time.monotonic()
        while not self.stop():
            now = time.monotonic()
            if now >= next_work:
                if c.state in ACTIVE:
                    c.run_step(self.work)
                next_work = now + self.period_s
            if now >= next_beat:
                beat(self.store, c)
                next_beat = now + self.heartbeat_s
            if c.state is ComponentState.FAULTED:
                log.error("component=%s faulted: %s", c.name, c.reason)
                return 1
            self.stop.wait(min(next_work, next_beat) - time.monotonic())
        if c.state in ACTIVE:
            c.stop()
        beat(self.store, c)
        return 0


# ------------------------------------------------------------------------------ services
class _Replay:
    """A bars file as real closes per bar: ``closes(i)`` is ``{symbol: close}`` of bar ``i``."""

    def __init__(self, path: Path) -> None:
        import numpy as np

        from dolphin.data.wide import load_real_closes

        real = load_real_closes(path)
        self.ts = real["timestamp"].to_numpy(dtype="datetime64[ns]").view(np.int64)
        real = real.drop(columns=["timestamp"])
        self.names = [str(c) for c in real.columns]
        self.values = real.to_numpy(dtype=np.float64)
        self.bar_s = max(int((self.ts[1] - self.ts[0]) // 1_000_000_000), 1)
        self._finite = np.isfinite(self.values)
        del real
        _release_unused_memory()

    def __len__(self) -> int:
        return len(self.ts)

    def closes(self, i: int) -> dict[str, float]:
        """The real closes of bar ``i`` (no entry: no real bar)."""
        row, ok = self.values[i], self._finite[i]
        return {s: float(v) for s, v, k in zip(self.names, row, ok, strict=True) if k}


def _release_unused_memory() -> None:
    """Return what Arrow's allocator kept after a bar file's load to the OS (it keeps freed
    blocks: the 43-day 50-asset 1m set leaves ~650 MB resident after ``load_real_closes``,
    ~290 MB after this)."""
    with contextlib.suppress(ImportError):
        import pyarrow

        pyarrow.default_memory_pool().release_unused()


def _last_published_ts(store: Store) -> int | None:
    """The bar time of the scan in the store, None when there is none (or it is unreadable)."""
    from dolphin.store.schema import FEATURES, LATEST_EIGEN_SCAN, decode_value

    with contextlib.suppress(Exception):
        text = store.map(FEATURES).get(LATEST_EIGEN_SCAN)
        if text is not None:
            return int(decode_value(text).data["timestamp_ns"])
    return None


def run_scan(store: Store, opts: dict[str, Any], stop: Stop) -> int:
    """The scan service on a replayed bars file (module docstring)."""
    import pandas as pd

    from dolphin.services.bars import BarBuilder, BarSet, BarSource
    from dolphin.services.scan_service import ScanService

    bars = _Replay(Path(opts["replay"]))
    svc = ScanService(store, BarBuilder(sorted(bars.names), source=BarSource.KLINES,
                                        interval_s=bars.bar_s), clock=LiveClock(), name="scan")
    speed, warmup = float(opts.get("speed", 60.0)), int(opts.get("warmup", 0))
    heartbeat_s = float(opts.get("heartbeat_s", 1.0))
    last_ts, i = _last_published_ts(store), 0
    if last_ts is not None:  # a restart: rebuild the scanner's windows, publish nothing
        while i < len(bars) and bars.ts[i] <= last_ts:
            svc.scanner.update(pd.Timestamp(int(bars.ts[i]), tz="UTC"), bars.closes(i))
            i += 1
        log.info("scan: resumed after bar %d (%s)", i, pd.Timestamp(last_ts, tz="UTC"))
    svc.start()
    if last_ts is None:  # a new replay starts once the trader takes scans (module docstring)
        _wait_for_beat(store, svc, str(opts.get("replay_waits_for", "trader")), stop,
                       float(opts.get("replay_wait_s", 180.0)))
    next_beat = 0.0
    while not stop():
        if i < len(bars):
            closes = bars.closes(i)
            t0 = time.perf_counter()
            svc.on_bar_set(BarSet(int(bars.ts[i]), closes, dict.fromkeys(closes, False), {}))
            observe("scan_latency", time.perf_counter() - t0)  # bar handed -> scan published
            i += 1
        if time.monotonic() >= next_beat:
            beat(store, svc, bar=i, bars=len(bars), done=i >= len(bars))
            next_beat = time.monotonic() + heartbeat_s
        stop.wait(0.2 if i >= len(bars) else 0.0 if i < warmup else bars.bar_s / speed)
    svc.stop()
    beat(store, svc, bar=i, bars=len(bars), done=i >= len(bars))
    return 0


def _wait_for_beat(store: Store, svc: Component, name: str, stop: Stop, wait_s: float) -> None:
    """Beat while waiting until ``name`` beats RUNNING (or ``wait_s`` passes)."""
    from dolphin.store.schema import HEARTBEAT, decode_value

    deadline = time.monotonic() + wait_s
    while not stop() and time.monotonic() < deadline:
        beat(store, svc, waiting_for=name)
        try:
            text = store.map(HEARTBEAT).get(name)
            if text is not None and decode_value(text).data.get("state") == "RUNNING":
                return
        except Exception as exc:
            log.debug("waiting for %s: %s", name, exc)
        stop.wait(0.5)


def run_acb(store: Store, opts: dict[str, Any], stop: Stop) -> int:
    """The ACB processor: scans in through a listener, the verdict on its tick."""
    from dolphin.core.config import load_config
    from dolphin.services.acb_processor import AcbProcessor
    from dolphin.store.schema import FEATURES, LATEST_EIGEN_SCAN, decode_value

    cfg = load_config(opts.get("config"))
    acb = AcbProcessor(store, cfg.acb, clock=LiveClock(), name="acb")

    def on_scan(event) -> None:
        if event.value is not None:
            with contextlib.suppress(Exception):
                acb.on_scan(decode_value(event.value).data)

    store.map(FEATURES).add_listener(on_scan, key=LATEST_EIGEN_SCAN)
    return ServiceLoop(store, acb, acb.tick, period_s=float(opts.get("period_s", 5.0)),
                       stop=stop).run()


def run_esof(store: Store, opts: dict[str, Any], stop: Stop) -> int:
    """The EsoF service."""
    from dolphin.services.esof_service import EsofService

    svc = EsofService(store, clock=LiveClock(), name="esof",
                      period_s=float(opts.get("esof_period_s", 60.0)))
    return ServiceLoop(store, svc, svc.tick, period_s=1.0, stop=stop).run()


class _Idle(Component):
    """A service with nothing to fetch (no source configured): it runs, beats and says why."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(name, clock=LiveClock())
        self.why = why

    def heartbeat(self) -> dict[str, Any]:
        """The base beat plus why it publishes nothing."""
        hb = super().heartbeat()
        hb["idle"] = self.why
        return hb


def run_exf(store: Store, opts: dict[str, Any], stop: Stop) -> int:
    """The ExF service against ``--exf-base`` URLs, else idle (module docstring)."""
    bases = opts.get("exf_base") or {}
    if not bases:
        idle = _Idle("exf", "no ExF source configured: exf_latest is not written (absent)")
        return ServiceLoop(store, idle, lambda: None, period_s=10.0, stop=stop).run()
    from dolphin.adapters.exf.clients import BinanceExfClient, DeribitDvolClient, FearGreedClient
    from dolphin.adapters.exf.fetchers import factor_specs
    from dolphin.services.exf_service import ExfService

    specs = factor_specs(BinanceExfClient(bases["binance"]), DeribitDvolClient(bases["deribit"]),
                         FearGreedClient(bases["fng"]))
    svc = ExfService(store, specs, clock=LiveClock(), name="exf")
    return ServiceLoop(store, svc, svc.tick, period_s=1.0, stop=stop).run()


def run_obf(store: Store, opts: dict[str, Any], stop: Stop) -> int:
    """The OBF service; idle without captures (module docstring)."""
    captures = [Path(p) for p in opts.get("captures") or []]
    if not captures:
        idle = _Idle("obf", "no order-book stream configured: OB features are absent")
        return ServiceLoop(store, idle, lambda: None, period_s=10.0, stop=stop).run()
    from dolphin.mesh.obf_feed import run_obf_feed

    return run_obf_feed(store, opts, stop, captures)


class _Mc(Component):
    """Publish the MC-Forewarner status of the current UTC day."""

    def __init__(self, store: Store, opts: dict[str, Any]) -> None:
        super().__init__("mc", clock=LiveClock())
        from dolphin.backtest.gates import load_gate
        from dolphin.core.config import load_config

        self.store = store
        self.config = load_config(opts.get("config"))
        self.gate = load_gate(self.config)
        self.last: str | None = None

    def tick(self) -> None:
        """Assess today at the config's max leverage; write ``mc_status``."""
        from dolphin.alpha.session import utc_date
        from dolphin.store.schema import FEATURES, MC_STATUS, encode_value

        now = self.clock.now_ns()
        date = utc_date(now)
        status = "UNKNOWN"
        if self.gate is not None:
            status = self.gate.assess(date, self.config.alpha.max_leverage).status
        self.last = status
        self.store.map(FEATURES).put(MC_STATUS, encode_value(
            {"date": date, "status": status, "max_leverage": self.config.alpha.max_leverage},
            now))

    def heartbeat(self) -> dict[str, Any]:
        """The base beat plus the last status."""
        hb = super().heartbeat()
        hb["status"] = self.last
        return hb


def run_mc(store: Store, opts: dict[str, Any], stop: Stop) -> int:
    """The MC-Forewarner status service."""
    mc = _Mc(store, opts)
    return ServiceLoop(store, mc, mc.tick, period_s=float(opts.get("mc_period_s", 60.0)),
                       stop=stop).run()


def run_watchdog(store: Store, opts: dict[str, Any], stop: Stop) -> int:
    """The watchdog: survival controller over heartbeats and ages -> DOLPHIN_SAFETY."""
    from dolphin.core.config import load_config
    from dolphin.services.watchdog import WatchdogService

    cfg = load_config(opts.get("config"))
    services = [s for s in opts.get("watched", ()) if s not in ("store", "watchdog")]
    ob = None
    if opts.get("captures") and "obf" in services:  # Cat3 from the OB features it publishes
        from dolphin.services.ob_provider import ObProvider

        ob = ObProvider(store, clock=LiveClock(), bar_s=float(opts.get("ob_bar_s", 5.0)))
    from dolphin.ui.alerts import alert_hook

    wd = WatchdogService(store, cfg.survival, clock=LiveClock(), services=services,
                         period_s=float(opts.get("watchdog_period_s", 10.0)), ob=ob,
                         alert=alert_hook(opts))
    return ServiceLoop(store, wd, wd.tick, period_s=wd.period_s, stop=stop).run()


def run_trader(store: Store, opts: dict[str, Any], stop: Stop) -> int:
    """The trader (``adapters.nautilus.mesh_trader``)."""
    from dolphin.adapters.nautilus.mesh_trader import TraderSettings, run_mesh_trader
    from dolphin.backtest.gates import load_gate
    from dolphin.core.config import load_config, require_champion
    from dolphin.store.features import posture_cell

    config = load_config(opts.get("config"))
    if opts.get("production"):
        require_champion(config, entry_point="dolphin mesh up --production")
    run_dir = Path(opts["run_dir"])
    settings = TraderSettings(bars=Path(opts["replay"]), ledger=run_dir / "ledger.sqlite",
                              log_dir=run_dir / "trader")
    summary = run_mesh_trader(config, settings, store=store,
                              posture_source=posture_cell(store).read, mc_gate=load_gate(config),
                              echo=lambda line: log.warning(line), stop=stop,
                              on_order_latency=lambda sec: observe("order_latency", sec))
    log.warning("trader: %s", summary)
    return 1 if summary.get("halted") or summary.get("rerun_mismatch") else 0


#: Deployments a mesh does not serve: its trader is the paper session (a daily paper flow would
#: write the same DOLPHIN_STATE_BLUE/PNL keys the trader's ledger views write) and its ``mc``
#: service publishes ``mc_status`` continuously.
MESH_OWN_FLOWS = ("dolphin-paper-blue", "dolphin-paper-green", "dolphin-mc-forewarner")

RUNNERS: dict[str, Callable[[Store, dict[str, Any], Stop], int]] = {
    "scan": run_scan, "acb": run_acb, "obf": run_obf, "exf": run_exf, "esof": run_esof,
    "mc": run_mc, "watchdog": run_watchdog, "trader": run_trader,
}


def run_service(name: str, store_url: str, opts: dict[str, Any]) -> int:
    """Run service ``name`` on the store at ``store_url`` until SIGTERM; return its exit code."""
    if name not in RUNNERS:
        raise ConfigError(f"unknown mesh service {name!r} (known: {', '.join(RUNNERS)})")
    stop = Stop().install()
    store = connect_store(store_url, stop)
    stop_metrics = _metrics(name, store, opts)
    try:
        return RUNNERS[name](store, opts, stop)
    finally:
        stop_metrics()
        store.close()


#: This process's metrics (``_metrics``), for the runners that time their work.
_PROCESS_METRICS: list[Any] = []


def observe(kind: str, seconds: float) -> None:
    """Record a timing in this service's metrics (``cycle``, ``scan_latency``,
    ``order_latency``); nothing when the service serves no metrics."""
    for m in _PROCESS_METRICS:
        getattr(m, f"observe_{kind}")(seconds)


def _metrics(name: str, store: Store, opts: dict[str, Any]) -> Callable[[], None]:
    """Serve the service's ``/metrics`` on its port from ``metrics_ports`` (none: nothing).

    The service's own heartbeat is read at each scrape; the watchdog's endpoint also carries
    the mesh's posture, Rm, capital, drawdown and every heartbeat age (``ui.metrics``).
    """
    port = (opts.get("metrics_ports") or {}).get(name)
    if port is None:
        return lambda: None
    from dolphin.ui.metrics import (
        MeshMetrics,
        ServiceMetrics,
        heartbeat_source,
        start_metrics_server,
    )

    metrics = ServiceMetrics(name, source=heartbeat_source(store, name))
    if name == "watchdog":
        metrics.registry.register(MeshMetrics(store))
    _PROCESS_METRICS.append(metrics)
    bound, stop = start_metrics_server(metrics, int(port))
    log.info("%s: metrics on http://127.0.0.1:%d/metrics", name, bound)
    return stop


def service_main(name: str, run_dir: Path) -> int:
    """``dolphin mesh service NAME --run-dir DIR``: run one service with the run's options."""
    from dolphin.mesh.plan import read_options

    logging.basicConfig(level=logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("hazelcast").setLevel(logging.WARNING)
    opts = read_options(run_dir)
    if name == "store":
        if not opts.get("embedded"):
            raise ConfigError("the mesh uses an external store: there is no store service")
        from dolphin.adapters.netstore.server import serve

        return serve("127.0.0.1", int(opts["store_port"]),
                     ready_file=Path(run_dir) / "store.json") or 0
    if name == "prefect":
        from dolphin.adapters.prefect.server import serve_forever

        return serve_forever(Path(run_dir) / "prefect", int(opts["prefect_port"]),
                             Path(run_dir) / "prefect.json")
    if name == "flows":
        from dolphin.flows.deployments import serve_deployments

        stop = Stop()  # Prefect's runner handles SIGTERM itself
        connect_store(str(opts["store_url"]), stop).close()  # the store is up first
        serve_deployments(str(opts["store_url"]), replay=opts.get("replay"),
                          work_dir=Path(run_dir) / "flows", exf_urls=opts.get("exf_base"),
                          interval_overrides=opts.get("flow_intervals"),
                          exclude=MESH_OWN_FLOWS)
        return 0
    return run_service(name, str(opts["store_url"]), opts)
