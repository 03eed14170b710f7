"""``/metrics`` for every mesh service (prometheus-client, a private registry per process).

``ServiceMetrics(name)`` turns the service's heartbeat (``Component.heartbeat()`` plus the
extras each runner adds) into Prometheus metrics at scrape time, and holds the explicitly
timed ones (``observe_cycle``, ``observe_scan_latency``, ``observe_order_latency``,
``count_messages``). ``MeshMetrics(store)`` reads what the whole mesh publishes (the posture
cell, the trader's state, every heartbeat) when scraped: the watchdog's process serves it.
``start_metrics_server(registry, port)`` serves a registry on 127.0.0.1 (port 0: a free one)
and returns the port. Every metric is listed in ``docs/operations.md``.

From a heartbeat (``dolphin_`` prefix, label ``service``):

- ``service_up`` (1 when RUNNING), ``service_state{state}`` (1 for the current state),
  ``heartbeat_age_seconds`` (now - the beat's ``ts_ns``), ``heartbeat_beats_total``;
- ``service_value{field}``: every other numeric field as it is (counters stay counters: take
  ``rate()`` of a growing one, e.g. ``scans``, ``books``, ``published`` for message rates);
- ``event_lag_seconds{field}``: now - every ``*_ts_ns`` field (the newest event it handled);
- ``breaker_open`` (1 unless ``breaker`` is CLOSED) and ``breaker_state{state}``;
- ``book_resyncs_total`` (``resyncs``); ``posture_level``/``rm`` from the watchdog's beat;
  ``capital`` from the trader's.

Explicit: ``messages_total{kind}``, ``feature_cycle_seconds``, ``scan_latency_seconds`` and
``order_latency_seconds`` histograms.

From the store (``MeshMetrics``): ``posture_level`` (APEX 0 .. HIBERNATE 3) and
``posture{posture}``, ``rm``, ``r_target``, ``category{category}``, ``sensor{sensor}``
(finite readings), ``services_down``/``services_degraded``, ``override_active``, ``capital``,
``drawdown``, ``peak_capital``, ``open_positions``, ``trades_total`` and, for every heartbeat
in ``DOLPHIN_HEARTBEAT``, ``mesh_heartbeat_age_seconds{service}``.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dolphin.core.enums import Posture
from dolphin.core.errors import ConfigError
from dolphin.risk.sensors import CATEGORY_NAMES
from dolphin.store.errors import MalformedValueError, StoreUnavailableError
from dolphin.store.ports import Store
from dolphin.store.schema import HEARTBEAT, POSTURE_KEY, SAFETY, STATE_BLUE, decode_value

P = "dolphin_"
_NS = 1e9
#: Heartbeat fields turned into metrics of their own (not ``service_value``).
_OWN_FIELDS = frozenset({"ts_ns", "beats", "state", "component", "reason", "breaker",
                         "resyncs", "posture", "rm", "capital"})
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                   5.0, 10.0)


def _number(x: Any) -> float | None:
    if isinstance(x, bool):
        return float(x)
    if isinstance(x, int | float) and math.isfinite(x):
        return float(x)
    return None


def _gauge(name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(P + name, doc, labels=list(labels))


def _counter(name: str, doc: str, labels: Iterable[str] = ()) -> CounterMetricFamily:
    """A counter family read from a running total (``name`` without ``_total``)."""
    return CounterMetricFamily(P + name, doc, labels=list(labels))


class ServiceMetrics(Collector):
    """One service's metrics (module docstring); ``registry`` is its private registry.

    ``observe(beat)`` keeps the newest heartbeat (call it where the beat is written); a
    ``source`` callable may supply it instead, read at each scrape (e.g. the service's own
    ``DOLPHIN_HEARTBEAT`` entry).
    """

    def __init__(self, name: str, *, registry: CollectorRegistry | None = None,
                 source: Callable[[], Mapping[str, Any] | None] | None = None,
                 clock: Callable[[], int] = time.time_ns) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"metrics: service name must be a non-empty string, got {name!r}")
        self.name = name
        self.clock = clock
        self.source = source
        self.registry = registry if registry is not None else CollectorRegistry()
        self._beat: Mapping[str, Any] | None = None
        self._lock = threading.Lock()
        labels = ("service",)
        self.messages = Counter(P + "messages", "Messages handled, by kind",
                                ("service", "kind"), registry=self.registry)
        self.cycle = Histogram(P + "feature_cycle_seconds", "Feature (OBF) cycle time",
                               labels, buckets=LATENCY_BUCKETS, registry=self.registry)
        self.scan_latency = Histogram(P + "scan_latency_seconds",
                                      "Bar close to scan published", labels,
                                      buckets=LATENCY_BUCKETS, registry=self.registry)
        self.order_latency = Histogram(P + "order_latency_seconds",
                                       "Order decided to order acknowledged", labels,
                                       buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(self)

    # ------------------------------------------------------------------ feeding
    def observe(self, beat: Mapping[str, Any]) -> None:
        """Keep ``beat`` (a heartbeat dict) as the service's current one."""
        with self._lock:
            self._beat = dict(beat)

    def count_messages(self, kind: str, n: int = 1) -> None:
        """Count ``n`` messages of ``kind`` (take ``rate()`` for a message rate)."""
        self.messages.labels(self.name, kind).inc(n)

    def observe_cycle(self, seconds: float) -> None:
        """Record one feature cycle's duration."""
        self.cycle.labels(self.name).observe(seconds)

    def observe_scan_latency(self, seconds: float) -> None:
        """Record one scan's latency (bar close to publish)."""
        self.scan_latency.labels(self.name).observe(seconds)

    def observe_order_latency(self, seconds: float) -> None:
        """Record one order's latency (decision to acknowledgement)."""
        self.order_latency.labels(self.name).observe(seconds)

    # ------------------------------------------------------------------ scraping
    def describe(self) -> list[Metric]:
        """Nothing up front: the metrics depend on the beat (an unchecked collector)."""
        return []

    def current(self) -> Mapping[str, Any] | None:
        """The beat to report: the source's when there is one, else the last observed."""
        if self.source is not None:
            try:
                beat = self.source()
            except Exception:  # a scrape must answer even when the store does not
                beat = None
            if beat is not None:
                return beat
        with self._lock:
            return self._beat

    def collect(self) -> Iterable[Metric]:
        """Yield the heartbeat's metrics (module docstring)."""
        beat = self.current()
        if not isinstance(beat, Mapping):
            return
        yield from beat_metrics(self.name, beat, self.clock())


def beat_metrics(name: str, beat: Mapping[str, Any], now_ns: int) -> list[Metric]:
    """Return the metric families of one heartbeat at ``now_ns``."""
    svc = [name]
    state = str(beat.get("state") or "UNKNOWN")
    up = _gauge("service_up", "1 while the service beats RUNNING", ["service"])
    up.add_metric(svc, 1.0 if state == "RUNNING" else 0.0)
    st = _gauge("service_state", "The service's component state", ["service", "state"])
    st.add_metric([name, state], 1.0)
    out: list[Metric] = [up, st]
    ts = _number(beat.get("ts_ns"))
    if ts is not None:
        age = _gauge("heartbeat_age_seconds", "Seconds since the last heartbeat", ["service"])
        age.add_metric(svc, (now_ns - ts) / _NS)
        out.append(age)
    beats = _number(beat.get("beats"))
    if beats is not None:
        c = _counter("heartbeat_beats", "Heartbeats written since start", ["service"])
        c.add_metric(svc, beats)
        out.append(c)
    values = _gauge("service_value", "A numeric heartbeat field", ["service", "field"])
    lags = _gauge("event_lag_seconds", "Seconds since a heartbeat's *_ts_ns event",
                  ["service", "field"])
    for key, raw in sorted(beat.items()):
        x = _number(raw)
        if key in _OWN_FIELDS or x is None:
            continue
        if key.endswith("_ts_ns"):
            lags.add_metric([name, key[:-6]], (now_ns - x) / _NS)
        else:
            values.add_metric([name, key], x)
    out += [values, lags]
    out += _special(name, beat)
    return out


def _special(name: str, beat: Mapping[str, Any]) -> list[Metric]:
    svc, out = [name], []
    breaker = beat.get("breaker")
    if isinstance(breaker, str):
        b = _gauge("breaker_open", "1 while the push breaker is not CLOSED", ["service"])
        b.add_metric(svc, 0.0 if breaker == "CLOSED" else 1.0)
        s = _gauge("breaker_state", "The push breaker's state", ["service", "state"])
        s.add_metric([name, breaker], 1.0)
        out += [b, s]
    resyncs = _number(beat.get("resyncs"))
    if resyncs is not None:
        r = _counter("book_resyncs", "Order-book resyncs since start", ["service"])
        r.add_metric(svc, resyncs)
        out.append(r)
    for key, metric, doc in (("rm", "service_rm", "Rm as the service last saw it"),
                             ("capital", "service_capital", "Capital as the service reports")):
        x = _number(beat.get(key))
        if x is not None:
            g = _gauge(metric, doc, ["service"])
            g.add_metric(svc, x)
            out.append(g)
    posture = beat.get("posture")
    if isinstance(posture, str) and posture in Posture.__members__:
        g = _gauge("service_posture_level", "Posture as the service last saw it "
                   "(APEX 0 .. HIBERNATE 3)", ["service"])
        g.add_metric(svc, float(Posture[posture]))
        out.append(g)
    return out


class MeshMetrics(Collector):
    """The mesh's posture, risk, capital and heartbeat ages, read from the store at scrape."""

    def __init__(self, store: Store, *, clock: Callable[[], int] = time.time_ns,
                 state_key: str = "latest") -> None:
        self.store = store
        self.clock = clock
        self.state_key = state_key

    def describe(self) -> list[Metric]:
        """Nothing up front (an unchecked collector)."""
        return []

    def collect(self) -> Iterable[Metric]:
        """Yield the store's metrics (module docstring); a store that fails yields
        ``dolphin_store_up 0`` only."""
        up = _gauge("store_up", "1 when the store answered this scrape")
        try:
            posture = _data(self.store.map(SAFETY).get(POSTURE_KEY))
            state = _data(self.store.map(STATE_BLUE).get(self.state_key))
            hb = self.store.map(HEARTBEAT)
            beats = hb.get_all(hb.keys())
        except StoreUnavailableError:
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        now = self.clock()
        yield from _posture_metrics(posture)
        yield from _state_metrics(state)
        ages = _gauge("mesh_heartbeat_age_seconds", "Seconds since each service's last beat",
                      ["service"])
        for name, text in sorted(beats.items()):
            try:
                ts = decode_value(text).ts_ns
            except MalformedValueError:
                continue
            ages.add_metric([name], (now - ts) / _NS)
        yield ages


def _data(text: str | None) -> Mapping[str, Any]:
    if text is None:
        return {}
    try:
        data = decode_value(text).data
    except MalformedValueError:
        return {}
    return data if isinstance(data, Mapping) else {}


def _posture_metrics(p: Mapping[str, Any]) -> list[Metric]:
    if not p:
        return []
    out: list[Metric] = []
    posture = p.get("posture")
    if isinstance(posture, str) and posture in Posture.__members__:
        lvl = _gauge("posture_level", "Published posture: APEX 0, STALKER 1, TURTLE 2, "
                     "HIBERNATE 3")
        lvl.add_metric([], float(Posture[posture]))
        one = _gauge("posture", "1 for the published posture", ["posture"])
        for name in Posture.__members__:
            one.add_metric([name], 1.0 if name == posture else 0.0)
        out += [lvl, one]
    for key, doc in (("rm", "Survival Rm (0..1)"), ("r_target", "Rm target before recovery")):
        x = _number(p.get(key))
        if x is not None:
            g = _gauge(key, doc)
            g.add_metric([], x)
            out.append(g)
    cats = _gauge("category", "The five survival categories", ["category"])
    for name in CATEGORY_NAMES:
        x = _number((p.get("categories") or {}).get(name))
        if x is not None:
            cats.add_metric([name], x)
    sensors = _gauge("sensor", "Each survival sensor's reading (finite ones)", ["sensor"])
    for name, raw in sorted((p.get("sensors") or {}).items()):
        x = _number(raw)
        if x is not None:
            sensors.add_metric([name], x)
    services = p.get("services") or {}
    down = _gauge("services_down", "Services the watchdog judges down")
    down.add_metric([], float(len(services.get("down") or ())))
    deg = _gauge("services_degraded", "Services the watchdog judges degraded")
    deg.add_metric([], float(len(services.get("degraded") or ())))
    ov = _gauge("override_active", "1 while an operator override (pause) is published")
    ov.add_metric([], 1.0 if p.get("override") else 0.0)
    return [*out, cats, sensors, down, deg, ov]


def _state_metrics(s: Mapping[str, Any]) -> list[Metric]:
    out: list[Metric] = []
    for key, metric, doc in (("capital", "capital", "Trader capital"),
                             ("drawdown", "drawdown", "Drawdown from the peak (fraction)"),
                             ("peak", "peak_capital", "Peak capital")):
        x = _number(s.get(key))
        if x is not None:
            g = _gauge(metric, doc)
            g.add_metric([], x)
            out.append(g)
    trades = _number(s.get("trades"))
    if trades is not None:
        c = _counter("trades", "Round trips closed by the trader")
        c.add_metric([], trades)
        out.append(c)
    if isinstance(s.get("positions"), Mapping):
        g = _gauge("open_positions", "Open positions")
        g.add_metric([], float(sum(1 for v in s["positions"].values()
                                   if isinstance(v, Mapping) and v.get("qty"))))
        out.append(g)
    return out


def heartbeat_source(store: Store, name: str) -> Callable[[], Mapping[str, Any] | None]:
    """Return a ``ServiceMetrics`` source reading ``DOLPHIN_HEARTBEAT[name]`` at each scrape
    (None when missing or unreadable): metrics without touching the service's beat code."""

    def read() -> Mapping[str, Any] | None:
        data = _data(store.map(HEARTBEAT).get(name))
        return data or None

    return read


def start_metrics_server(registry: CollectorRegistry | ServiceMetrics, port: int = 0,
                         host: str = "127.0.0.1") -> tuple[int, Callable[[], None]]:
    """Serve ``registry`` at ``http://host:port/metrics`` on a daemon thread; return the
    bound port (a free one for ``port=0``) and a function that stops the server."""
    if isinstance(registry, ServiceMetrics):
        registry = registry.registry
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ConfigError(f"metrics: port must be an int in [0, 65535], got {port!r}")
    server, thread = start_http_server(port, addr=host, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5.0)

    return int(server.server_port), stop
