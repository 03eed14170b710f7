"""``NetStore``: the store port on a ``StoreServer`` (``tcp://127.0.0.1:PORT``).

Behaviour, and why:

- One TCP connection per handle. Calls from any number of threads share it: each request has an
  id, a reader thread hands every response to the thread waiting for it, so calls never queue
  behind a slow one (a writer waiting for a key lock does not stall a reader).
- Key locks belong to (this handle, the calling thread), as with ``MemoryStore`` and Hazelcast:
  every request names its thread and the server runs lock-sensitive calls on a lane of that
  thread (``server`` module). When the connection drops, the server releases the handle's
  locks: a holder learns it from ``LockNotHeldError`` at ``unlock``.
- Listener callbacks run on this handle's own worker thread (``ListenerDispatcher``), never on
  the reader, so a callback may call the store.
- Unreachable server, lost connection or no answer within ``timeout_s``: the call raises
  ``StoreUnavailableError`` naming the address (a reader treats the value as missing). The next
  call reconnects by itself and registers the listeners again, so a restarted server is picked
  up; while listeners are registered a background thread also reconnects with backoff, so a
  handle that only listens recovers too. Events written while disconnected are not replayed.
- ``lock`` waits as long as needed (unless the connection drops); ``try_lock`` waits its own
  timeout plus ``timeout_s``. A call that timed out may still complete on the server.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

from dolphin.adapters.netstore import wire
from dolphin.core.errors import BadInputError, ConfigError
from dolphin.store.errors import StoreUnavailableError, require_str
from dolphin.store.events import ListenerDispatcher
from dolphin.store.ports import ClusterView, EntryCallback, EntryEvent, EntryEventKind
from dolphin.store.processors import Outcome, Processor

log = logging.getLogger(__name__)

_KINDS = {kind.value: kind for kind in EntryEventKind}


def parse_address(spec: str) -> tuple[str, int]:
    """Parse ``host:port`` (the part after ``tcp://``); ConfigError when it is not one."""
    host, sep, port = spec.strip().rstrip("/").rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not sep or not host or not 0 < number < 65536:
        raise ConfigError(f"store address {spec!r} must look like 127.0.0.1:PORT")
    return host.strip("[]"), number


class _Pending:
    """One call waiting for its response."""

    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Lock()
        self.done.acquire()
        self.result: Any = None
        self.error: Exception | None = None


class _Connection:
    """One live TCP connection: the socket, its reader thread and the calls in flight."""

    def __init__(self, store: NetStore, sock: socket.socket) -> None:
        self._store = store
        self.sock = sock
        self.alive = True
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self.reader = threading.Thread(target=self._read_loop, daemon=True,
                                       name=f"netstore-client-{store.address}")

    def request(self, req_id: int, op: str, map_name: str, args: list[Any],
                timeout_s: float | None) -> Any:
        """Send one request and wait for its result (raises what the server reported)."""
        address = self._store.address
        try:
            frame = wire.pack([req_id, op, threading.get_ident(), map_name, args])
        except TypeError as exc:
            raise BadInputError(f"{op} arguments cannot be sent: {exc}", field="args") from exc
        pending = _Pending()
        with self._lock:
            if not self.alive:
                raise StoreUnavailableError(f"netstore {address}: connection lost")
            self._pending[req_id] = pending
        try:
            with self._write_lock:
                self.sock.sendall(frame)
        except OSError as exc:
            self.fail(f"send failed: {exc}")
        got = pending.done.acquire(timeout=-1 if timeout_s is None else timeout_s)
        if not got:
            with self._lock:
                self._pending.pop(req_id, None)
            raise StoreUnavailableError(
                f"netstore {address}: no answer to {op} within {timeout_s} s")
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _read_loop(self) -> None:
        reason = "closed by the server"
        address = self._store.address
        stream = self.sock.makefile("rb")
        try:
            while True:
                message = wire.read_frame(stream, f"netstore server {address}")
                if message is None:
                    break
                self._handle(message)
        except (OSError, ValueError, TypeError, LookupError) as exc:  # incl. MalformedFrame
            reason = str(exc) or type(exc).__name__
        finally:
            with contextlib.suppress(OSError):
                stream.close()
            self.fail(reason)

    def _handle(self, message: list[Any]) -> None:
        tag = message[0]
        if tag == wire.EVENT:
            _, reg_id, map_name, kind, key, value, old = message
            self._store._dispatcher.deliver(
                reg_id, EntryEvent(map_name, _KINDS[kind], key, value, old))
            return
        with self._lock:
            pending = self._pending.pop(message[1], None)
        if pending is None:
            return  # the caller gave up (timeout)
        if tag == wire.RESPONSE_OK:
            pending.result = message[2]
        else:
            pending.error = wire.error_from_wire(message[2], message[3], self._store.address)
        pending.done.release()

    def fail(self, reason: str) -> None:
        """Mark the connection lost: fail every call in flight and close the socket."""
        with self._lock:
            if not self.alive:
                return
            self.alive = False
            pending = list(self._pending.values())
            self._pending.clear()
        for waiter in pending:
            waiter.error = StoreUnavailableError(
                f"netstore {self._store.address}: connection lost ({reason})")
            waiter.done.release()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()
        self._store._lost(self, reason)


class NetStore:
    """A handle on a ``StoreServer``; implements ``dolphin.store.ports.Store``."""

    def __init__(self, address: str, *, timeout_s: float = 10.0,
                 connect_timeout_s: float = 2.0, name: str | None = None) -> None:
        self._host, self._port = parse_address(address)
        self.address = f"{self._host}:{self._port}"
        self.timeout_s = timeout_s
        self.connect_timeout_s = connect_timeout_s
        self._lock = threading.RLock()
        self._conn: _Connection | None = None
        self._closed = False
        self._ids = itertools.count(1)
        self._maps: dict[str, NetMap] = {}
        self._listeners: dict[str, tuple[str, str | None]] = {}  # reg id -> (map, key)
        self._dispatcher = ListenerDispatcher(name or f"net-{self.address}")
        self._reconnector: threading.Thread | None = None

    @classmethod
    def connect(cls, address: str, *, timeout_s: float = 10.0,
                connect_timeout_s: float = 2.0) -> NetStore:
        """Connect to the server at ``host:port``; StoreUnavailableError if it does not answer."""
        store = cls(address, timeout_s=timeout_s, connect_timeout_s=connect_timeout_s)
        try:
            store._ensure()
        except BaseException:
            store.close()
            raise
        return store

    def __repr__(self) -> str:
        return f"NetStore({self.address!r})"

    # -- connection -------------------------------------------------------------------------

    def _ensure(self) -> _Connection:
        conn = self._conn
        if conn is not None and conn.alive:
            return conn
        with self._lock:
            if self._closed:
                raise StoreUnavailableError(f"netstore {self.address}: store handle is closed")
            conn = self._conn
            if conn is not None and conn.alive:
                return conn
            try:
                sock = socket.create_connection((self._host, self._port),
                                                timeout=self.connect_timeout_s)
            except OSError as exc:
                raise StoreUnavailableError(
                    f"netstore {self.address}: cannot connect: {exc}") from exc
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(self, sock)
            conn.reader.start()
            try:
                for reg_id, (map_name, key) in list(self._listeners.items()):
                    conn.request(next(self._ids), "add_listener", map_name, [reg_id, key],
                                 self.timeout_s)
            except StoreUnavailableError:
                conn.fail("listener registration failed")
                raise
            self._conn = conn
            return conn

    def _lost(self, conn: _Connection, reason: str) -> None:
        """Called by a connection that ended: reconnect in the background if anyone listens."""
        if self._closed:
            return
        log.warning("netstore %s: connection lost (%s)", self.address, reason)
        with self._lock:
            if not self._listeners or self._closed:
                return
            if self._reconnector is not None and self._reconnector.is_alive():
                return
            self._reconnector = threading.Thread(target=self._reconnect_loop, daemon=True,
                                                 name=f"netstore-reconnect-{self.address}")
            self._reconnector.start()

    def _reconnect_loop(self) -> None:
        delay = 0.05
        while not self._closed and self._listeners:
            conn = self._conn
            if conn is not None and conn.alive:
                return
            try:
                self._ensure()
                log.info("netstore %s: reconnected", self.address)
                return
            except StoreUnavailableError:
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def call(self, op: str, map_name: str, args: list[Any],
             timeout_s: float | None = -1.0) -> Any:
        """Run ``op`` on the server (``timeout_s`` -1: the handle's; None: no limit)."""
        if self._closed:
            raise StoreUnavailableError(f"netstore {self.address}: store handle is closed")
        conn = self._ensure()
        limit = self.timeout_s if timeout_s == -1.0 else timeout_s
        return conn.request(next(self._ids), op, map_name, args, limit)

    # -- the Store port ---------------------------------------------------------------------

    def map(self, name: str) -> NetMap:
        """Return the map called ``name`` (no round trip: the server creates it on first use)."""
        if self._closed:
            raise StoreUnavailableError(f"netstore {self.address}: store handle is closed")
        found = self._maps.get(name)
        if found is None:
            found = self._maps.setdefault(name, NetMap(self, require_str("map name", name)))
        return found

    def cluster_view(self) -> ClusterView:
        """The server's view while it answers; disconnected (no members) otherwise."""
        if self._closed:
            return ClusterView(connected=False, member_count=0)
        try:
            connected, count, _members = self.call("cluster_view", "", [])
        except StoreUnavailableError:
            return ClusterView(connected=False, member_count=0)
        members = (f"netstore:{self.address}",) if connected and count else ()
        return ClusterView(connected=bool(members), member_count=len(members), members=members)

    def ping(self) -> bool:
        """Report whether the server answers now."""
        try:
            return self.call("ping", "", []) == "pong"
        except StoreUnavailableError:
            return False

    def close(self) -> None:
        """Close the connection and stop the listener worker. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.fail("closed by this handle")
        self._dispatcher.close()

    def __enter__(self) -> NetStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- listeners (used by NetMap) ---------------------------------------------------------

    def _add_listener(self, map_name: str, callback: EntryCallback, key: str | None) -> str:
        reg_id = self._dispatcher.register(map_name, callback, key)
        with self._lock:
            self._listeners[reg_id] = (map_name, key)
        try:
            self.call("add_listener", map_name, [reg_id, key])
        except BaseException:
            with self._lock:
                self._listeners.pop(reg_id, None)
            self._dispatcher.unregister(reg_id)
            raise
        return reg_id

    def _remove_listener(self, reg_id: str) -> bool:
        with self._lock:
            found = self._listeners.pop(reg_id, None)
        self._dispatcher.unregister(reg_id)
        if found is None:
            return False
        conn = self._conn
        if conn is not None and conn.alive:
            with contextlib.suppress(StoreUnavailableError):
                self.call("remove_listener", found[0], [reg_id])
        return True


class NetMap:
    """One map of a ``NetStore``; implements ``dolphin.store.ports.StoreMap``."""

    def __init__(self, store: NetStore, name: str) -> None:
        self._store = store
        self._name = name

    @property
    def name(self) -> str:
        """The map's name."""
        return self._name

    def __repr__(self) -> str:
        return f"NetMap({self._store.address!r}, {self._name!r})"

    def _call(self, op: str, *args: Any, timeout_s: float | None = -1.0) -> Any:
        return self._store.call(op, self._name, list(args), timeout_s)

    def get(self, key: str) -> str | None:
        """Return the value of ``key`` or None."""
        return self._call("get", require_str("key", key))

    def get_all(self, keys: Iterable[str]) -> dict[str, str]:
        """Return the present entries among ``keys``."""
        wanted = [require_str("key", k) for k in keys]
        return self._call("get_all", wanted) if wanted else {}

    def put(self, key: str, value: str) -> None:
        """Store ``value`` under ``key``."""
        self._call("put", require_str("key", key), require_str("value", value))

    def put_all(self, entries: Mapping[str, str]) -> None:
        """Store every entry (one round trip; each entry is atomic, the whole is not)."""
        checked = {require_str("key", k): require_str("value", v) for k, v in entries.items()}
        if checked:
            self._call("put_all", checked)

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        self._call("delete", require_str("key", key))

    def keys(self) -> list[str]:
        """Return a snapshot of the keys."""
        return self._call("keys")

    def clear(self) -> None:
        """Remove every entry without per-entry events."""
        self._call("clear")

    def put_if_absent(self, key: str, value: str) -> str | None:
        """Store ``value`` only when ``key`` is absent; return the existing value, else None."""
        return self._call("put_if_absent", require_str("key", key), require_str("value", value))

    def replace_if_same(self, key: str, expected: str, new: str) -> bool:
        """Replace the value by ``new`` only when it is exactly ``expected``."""
        return self._call("replace_if_same", require_str("key", key), expected,
                          require_str("value", new))

    def execute(self, key: str, processor: Processor) -> Outcome:
        """Run ``processor`` on ``key`` on the server, atomically (``store.processors``)."""
        require_str("key", key)
        require_str("value", processor.value)
        applied, reason, value = self._call("execute", key, wire.processor_to_wire(processor))
        return Outcome(bool(applied), reason, value)

    def lock(self, key: str) -> None:
        """Acquire the key lock for this thread (re-entrant), waiting as long as needed."""
        self._call("lock", require_str("key", key), timeout_s=None)

    def try_lock(self, key: str, timeout_s: float = 0.0) -> bool:
        """Acquire the key lock within ``timeout_s``; report success."""
        wait = max(0.0, float(timeout_s))
        return self._call("try_lock", require_str("key", key), wait,
                          timeout_s=wait + self._store.timeout_s)

    def unlock(self, key: str) -> None:
        """Release one hold of this thread on the key lock."""
        self._call("unlock", require_str("key", key))

    def is_locked(self, key: str) -> bool:
        """Report whether any thread (of any client) holds the key lock."""
        return self._call("is_locked", require_str("key", key))

    def add_listener(self, callback: EntryCallback, *, key: str | None = None) -> str:
        """Deliver changes (of ``key``) to ``callback`` on this handle's worker thread."""
        if key is not None:
            require_str("key", key)
        return self._store._add_listener(self._name, callback, key)

    def remove_listener(self, registration_id: str) -> bool:
        """Stop a listener; report whether it was registered."""
        return self._store._remove_listener(registration_id)
