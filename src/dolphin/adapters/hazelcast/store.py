"""``HazelcastStore``: the store port on a real Hazelcast 5.x cluster (hazelcast-python-client).

This is the only module of DOLPHIN that imports the Hazelcast client. Choices, and why:

- Near cache on the hot maps (``schema.HOT_MAPS``), OBJECT format so that a hit returns the
  cached string without deserialising, ``invalidate_on_change`` so that a write anywhere evicts
  it here. The member side must send invalidations one by one
  (``hazelcast.map.invalidation.batch.enabled=false`` in the shipped member config), otherwise
  they are batched and a reader can see an old value for seconds.
- Reconnect mode ASYNC: while the cluster is unreachable every call fails at once with
  ``StoreUnavailableError`` (a reader treats that as a missing value) instead of blocking for
  the invocation timeout; the client keeps reconnecting in the background with exponential
  backoff and jitter, and gives up after ``cluster_connect_timeout_s`` (then the service is
  restarted by its supervisor, which is the cold-start path).
- Entry events arrive on the client's I/O thread; they are handed to the store's listener
  worker at once, so a callback may call the store without deadlocking the client.
- No CP subsystem (Enterprise-only since 5.5): locks are ``IMap`` key locks, compare-and-set is
  ``replace_if_same`` / ``put_if_absent``.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import hazelcast
from hazelcast.config import EvictionPolicy, InMemoryFormat, ReconnectMode
from hazelcast.errors import HazelcastError, IllegalMonitorStateError, TargetDisconnectedError
from hazelcast.lifecycle import LifecycleState
from hazelcast.serialization.api import IdentifiedDataSerializable

from dolphin.store.errors import LockNotHeldError, StoreUnavailableError, require_str
from dolphin.store.events import ListenerDispatcher
from dolphin.store.ports import ClusterView, EntryCallback, EntryEvent, EntryEventKind
from dolphin.store.processors import FACTORY_ID, Outcome, Processor
from dolphin.store.schema import HOT_MAPS

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_CLUSTER_NAME = "dolphin"
#: Sends of an entry processor whose member disconnected before answering (failover).
_EXECUTE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True, kw_only=True)
class HazelcastSettings:
    """How to reach and use a cluster. Times are in seconds."""

    addresses: tuple[str, ...] = ("127.0.0.1:5701",)
    cluster_name: str = DEFAULT_CLUSTER_NAME
    near_cache_maps: tuple[str, ...] = HOT_MAPS
    near_cache_ttl_s: float = 300.0  # §15.3
    near_cache_max_size: int = 5000  # §15.3, per map
    connection_timeout_s: float = 5.0
    cluster_connect_timeout_s: float = 120.0  # -1: retry forever
    invocation_timeout_s: float = 10.0
    invocation_retry_pause_s: float = 0.25
    retry_initial_backoff_s: float = 0.2
    retry_max_backoff_s: float = 5.0
    retry_multiplier: float = 2.0
    retry_jitter: float = 0.2
    heartbeat_interval_s: float = 2.0
    heartbeat_timeout_s: float = 15.0
    probe_timeout_s: float = 5.0  # fail fast at open when no address accepts a connection

    def client_config(self) -> dict[str, Any]:
        """Return the keyword arguments of ``hazelcast.HazelcastClient``."""
        near = {
            name: {
                "invalidate_on_change": True,
                "in_memory_format": InMemoryFormat.OBJECT,
                "time_to_live": self.near_cache_ttl_s,
                "eviction_policy": EvictionPolicy.LRU,
                "eviction_max_size": self.near_cache_max_size,
            }
            for name in self.near_cache_maps
        }
        return {
            "cluster_name": self.cluster_name,
            "cluster_members": list(self.addresses),
            "near_caches": near,
            "connection_timeout": self.connection_timeout_s,
            "cluster_connect_timeout": self.cluster_connect_timeout_s,
            "invocation_timeout": self.invocation_timeout_s,
            "invocation_retry_pause": self.invocation_retry_pause_s,
            "retry_initial_backoff": self.retry_initial_backoff_s,
            "retry_max_backoff": self.retry_max_backoff_s,
            "retry_multiplier": self.retry_multiplier,
            "retry_jitter": self.retry_jitter,
            "reconnect_mode": ReconnectMode.ASYNC,
            "heartbeat_interval": self.heartbeat_interval_s,
            "heartbeat_timeout": self.heartbeat_timeout_s,
            "statistics_enabled": False,
        }


def parse_addresses(spec: str) -> tuple[str, ...]:
    """Parse ``host:port[,host:port...]`` (the part after ``hazelcast://``)."""
    parts = tuple(p.strip() for p in spec.split(",") if p.strip())
    return parts or ("127.0.0.1:5701",)


def _reachable(addresses: Iterable[str], timeout_s: float) -> bool:
    for address in addresses:
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False


def _address(member: Any) -> str:
    return f"{member.address.host}:{member.address.port}"


class _ProcessorStub(IdentifiedDataSerializable):
    """The client side of an entry processor: its ids and fields, written as Java reads them."""

    _WRITERS: ClassVar[dict[str, str]] = {"string": "write_string", "double": "write_double"}

    def __init__(self, processor: Processor) -> None:
        self.processor = processor

    def write_data(self, object_data_output: Any) -> None:
        """Write the fields in the Java ``writeData`` order."""
        for kind, value in self.processor.fields():
            getattr(object_data_output, self._WRITERS[kind])(value)

    def read_data(self, object_data_input: Any) -> None:
        """Never called: processors travel one way, to the member."""
        raise NotImplementedError("entry processors are not read back by the client")

    def get_factory_id(self) -> int:
        """The Java ``ProcessorFactory.FACTORY_ID``."""
        return FACTORY_ID

    def get_class_id(self) -> int:
        """The processor's class id in that factory."""
        return self.processor.CLASS_ID


def _call(what: str, fn: Callable[..., T], *args: Any) -> T:
    """Run a client call and translate its failures into the DOLPHIN error hierarchy."""
    try:
        return fn(*args)
    except IllegalMonitorStateError as exc:
        raise LockNotHeldError(f"{what}: {exc}") from exc
    except (HazelcastError, OSError) as exc:
        raise StoreUnavailableError(f"{what}: {type(exc).__name__}: {exc}") from exc


class HazelcastStore:
    """The store port on a Hazelcast cluster; implements ``dolphin.store.ports.Store``."""

    def __init__(self, settings: HazelcastSettings | None = None) -> None:
        self.settings = settings or HazelcastSettings()
        if not _reachable(self.settings.addresses, self.settings.probe_timeout_s):
            raise StoreUnavailableError(
                f"no Hazelcast member reachable at {','.join(self.settings.addresses)}"
            )
        self._connected = threading.Event()
        self._closed = False
        self._maps: dict[str, HazelcastMap] = {}
        self._maps_lock = threading.Lock()
        self.dispatcher = ListenerDispatcher("hazelcast")
        config = self.settings.client_config()
        self._client = _call("connect", lambda: hazelcast.HazelcastClient(**config))
        self._client.lifecycle_service.add_listener(self._on_lifecycle)
        self._client.cluster_service.add_listener(
            member_added=lambda m: log.info("hazelcast member added %s", m.address),
            member_removed=lambda m: log.warning("hazelcast member removed %s", m.address),
        )
        self._connected.set()

    @classmethod
    def connect(cls, spec: str, **overrides: Any) -> HazelcastStore:
        """Open a store from ``host:port[,host:port]`` with optional setting overrides."""
        return cls(HazelcastSettings(addresses=parse_addresses(spec), **overrides))

    def _on_lifecycle(self, state: str) -> None:
        # Runs on a client thread: only flip a flag and log.
        if state == LifecycleState.CONNECTED:
            self._connected.set()
            log.info("hazelcast client connected")
        elif state in (LifecycleState.DISCONNECTED, LifecycleState.SHUTDOWN):
            self._connected.clear()
            # Our own close() is routine; losing the cluster is what an operator must see.
            level = logging.INFO if self._closed else logging.WARNING
            log.log(level, "hazelcast client %s", state.lower())

    def map(self, name: str) -> HazelcastMap:
        """Return the map called ``name``."""
        with self._maps_lock:
            found = self._maps.get(name)
            if found is None:
                proxy = _call(f"get_map {name}", self._client.get_map, name)
                near = name in self.settings.near_cache_maps
                found = self._maps[name] = HazelcastMap(self, name, proxy, near_cached=near)
            return found

    def cluster_view(self) -> ClusterView:
        """Return connectivity and the members the client currently sees."""
        if self._closed or not self._connected.is_set():
            return ClusterView(connected=False, member_count=0)
        members = tuple(_address(m) for m in self._client.cluster_service.get_members())
        return ClusterView(connected=True, member_count=len(members), members=members)

    def close(self) -> None:
        """Shut the client down and stop the listener worker. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._client.shutdown()
        finally:
            self.dispatcher.close()

    def __enter__(self) -> HazelcastStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HazelcastMap:
    """One ``IMap`` seen through the port; implements ``dolphin.store.ports.StoreMap``."""

    def __init__(
        self, store: HazelcastStore, name: str, proxy: Any, *, near_cached: bool = False
    ) -> None:
        self._store = store
        self._name = name
        self._async = proxy
        self._map = proxy.blocking()
        self._near_cached = near_cached
        self._listeners: dict[str, str] = {}  # our registration id -> the cluster's

    @property
    def name(self) -> str:
        """The map's name."""
        return self._name

    def get(self, key: str) -> str | None:
        """Return the value of ``key`` or None (a near-cache hit never leaves the process)."""
        return _call(f"get {self._name}", self._map.get, require_str("key", key))

    def get_all(self, keys: Iterable[str]) -> dict[str, str]:
        """Return the present entries among ``keys``."""
        wanted = [require_str("key", k) for k in keys]
        if not wanted:
            return {}
        if self._near_cached:
            return _call(f"get_all {self._name}", self._get_all_pipelined, wanted)
        return _call(f"get_all {self._name}", self._map.get_all, wanted)

    def _get_all_pipelined(self, keys: list[str]) -> dict[str, str]:
        # The client's get_all breaks on a near-cached map as soon as one key is a near-cache
        # hit (hazelcast-python-client issue #701, still in 5.7.0). Per-key async gets are
        # served from the near cache where possible and pipelined otherwise: one round trip.
        futures = [(key, self._async.get(key)) for key in keys]
        out = {}
        for key, future in futures:
            value = future.result()
            if value is not None:
                out[key] = value
        return out

    def put(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``."""
        require_str("key", key)
        require_str("value", value)
        _call(f"put {self._name}", self._map.put, key, value)

    def put_all(self, entries: Mapping[str, str]) -> None:
        """Store every entry (grouped by partition by the client)."""
        for key, value in entries.items():
            require_str("key", key)
            require_str("value", value)
        if entries:
            _call(f"put_all {self._name}", self._map.put_all, dict(entries))

    def delete(self, key: str) -> None:
        """Remove ``key`` if present.

        ``IMap.remove`` rather than ``delete``: only ``remove`` puts the removed value into the
        REMOVED event (as ``old_value``), which the contract promises. Deletes are rare here.
        """
        _call(f"delete {self._name}", self._map.remove, require_str("key", key))

    def keys(self) -> list[str]:
        """Return a snapshot of the keys."""
        return list(_call(f"keys {self._name}", self._map.key_set))

    def clear(self) -> None:
        """Remove every entry (one CLEAR_ALL event, no per-entry events)."""
        _call(f"clear {self._name}", self._map.clear)

    def put_if_absent(self, key: str, value: str) -> str | None:
        """Store ``value`` only when ``key`` is absent; return the existing value, else None."""
        require_str("key", key)
        require_str("value", value)
        return _call(f"put_if_absent {self._name}", self._map.put_if_absent, key, value)

    def replace_if_same(self, key: str, expected: str, new: str) -> bool:
        """Replace the value by ``new`` only when it is exactly ``expected``."""
        require_str("key", key)
        require_str("value", new)
        return bool(
            _call(f"replace_if_same {self._name}", self._map.replace_if_same, key, expected, new)
        )

    def execute(self, key: str, processor: Processor) -> Outcome:
        """Run ``processor`` on the member owning ``key`` (an entry processor; the Java class
        of ``resources/hazelcast/processors`` with the same factory and class ids)."""
        require_str("key", key)
        require_str("value", processor.value)
        what = f"execute {type(processor).__name__} {self._name}"
        stub = _ProcessorStub(processor)
        retried = False
        for attempt in range(_EXECUTE_ATTEMPTS):
            try:
                answer = self._map.execute_on_key(key, stub)
                break
            except TargetDisconnectedError as exc:
                # The member running it went away (a failover). The client does not redo a
                # non-idempotent call by itself; every processor here is guarded (a repeat of
                # an applied update is refused as not newer), so sending it again is safe.
                if attempt + 1 == _EXECUTE_ATTEMPTS:
                    raise StoreUnavailableError(f"{what}: {type(exc).__name__}: {exc}") from exc
                retried = True
                time.sleep(self._store.settings.invocation_retry_pause_s)
            except IllegalMonitorStateError as exc:
                raise LockNotHeldError(f"{what}: {exc}") from exc
            except (HazelcastError, OSError) as exc:
                raise StoreUnavailableError(f"{what}: {type(exc).__name__}: {exc}") from exc
        if not isinstance(answer, str):
            raise StoreUnavailableError(
                f"execute {type(processor).__name__} {self._name}: the member answered "
                f"{type(answer).__name__}, not the processor's JSON (is the processors jar on "
                f"its classpath?)")
        outcome = Outcome.from_json(answer)
        if retried and not outcome.applied and outcome.value == processor.value:
            # The first attempt was applied before its member went: the stored value is ours.
            return Outcome(True, "", outcome.value)
        return outcome

    def lock(self, key: str) -> None:
        """Acquire the key lock for this thread (re-entrant), waiting as long as needed."""
        _call(f"lock {self._name}", self._map.lock, require_str("key", key))

    def try_lock(self, key: str, timeout_s: float = 0.0) -> bool:
        """Acquire the key lock within ``timeout_s``; report success."""
        require_str("key", key)
        return bool(
            _call(f"try_lock {self._name}", lambda: self._map.try_lock(key, timeout=timeout_s))
        )

    def unlock(self, key: str) -> None:
        """Release one hold of this thread on the key lock."""
        _call(f"unlock {self._name}", self._map.unlock, require_str("key", key))

    def is_locked(self, key: str) -> bool:
        """Report whether any thread of any client holds the key lock."""
        return bool(_call(f"is_locked {self._name}", self._map.is_locked, require_str("key", key)))

    def near_cache_stats(self) -> dict[str, Any] | None:
        """Return the client near cache's hit/miss/eviction counters, or None without one.

        Diagnostics only (benchmarks, tests): the client exposes no public accessor, so this
        reads its near-cache object and tolerates its absence.
        """
        near = getattr(getattr(self._map, "_wrapped", None), "_near_cache", None)
        return None if near is None else dict(near.get_statistics())

    def add_listener(self, callback: EntryCallback, *, key: str | None = None) -> str:
        """Deliver changes (of ``key``) to ``callback`` on the store's worker thread."""
        dispatcher = self._store.dispatcher
        reg_id = dispatcher.register(self._name, callback, key)

        def relay(kind: EntryEventKind) -> Callable[[Any], None]:
            def on_event(ev: Any) -> None:
                # Client I/O thread: build the event and hand it over, nothing else.
                event = EntryEvent(self._name, kind, ev.key, ev.value, ev.old_value)
                dispatcher.deliver(reg_id, event)

            return on_event

        try:
            hz_id = _call(
                f"add_listener {self._name}",
                lambda: self._map.add_entry_listener(
                    include_value=True,
                    key=key,
                    added_func=relay(EntryEventKind.ADDED),
                    updated_func=relay(EntryEventKind.UPDATED),
                    removed_func=relay(EntryEventKind.REMOVED),
                ),
            )
        except StoreUnavailableError:
            dispatcher.unregister(reg_id)
            raise
        self._listeners[reg_id] = hz_id
        return reg_id

    def remove_listener(self, registration_id: str) -> bool:
        """Stop a listener; report whether it was registered."""
        known = self._store.dispatcher.unregister(registration_id)
        hz_id = self._listeners.pop(registration_id, None)
        if hz_id is not None:
            _call(f"remove_listener {self._name}", self._map.remove_entry_listener, hz_id)
        return known


def probe_cluster(
    addresses: tuple[str, ...], cluster_name: str, *, expect: int = 1, timeout_s: float = 30.0
) -> ClusterView:
    """Connect a short-lived client and wait until it sees ``expect`` members.

    Returns the last view seen (``connected=False`` when no connection could be made in time).
    Used by ``dolphin hz start/status`` to call a cluster healthy only once a client can use it.
    """
    deadline = time.monotonic() + timeout_s
    try:
        client = hazelcast.HazelcastClient(
            cluster_name=cluster_name,
            cluster_members=list(addresses),
            cluster_connect_timeout=max(1.0, timeout_s),
            statistics_enabled=False,
        )
    except (HazelcastError, OSError):
        return ClusterView(connected=False, member_count=0)
    try:
        while True:
            members = tuple(_address(m) for m in client.cluster_service.get_members())
            if len(members) >= expect or time.monotonic() >= deadline:
                return ClusterView(connected=True, member_count=len(members), members=members)
            time.sleep(0.1)
    finally:
        client.shutdown()
