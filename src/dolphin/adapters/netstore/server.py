"""``StoreServer``: one ``MemoryStore`` served to the mesh's processes over loopback TCP.

The store semantics are the ``MemoryStore``'s own, unchanged: the server only carries calls to
it. How the parts of the port map onto connections and threads, and why:

- One thread reads each connection. Calls that never wait for a key lock (``wire.INLINE_OPS``:
  reads, ``clear``, listener registration) are answered on it at once.
- Key locks are owned per (connection, client thread), exactly as ``MemoryStore`` owns them per
  (handle, thread): every request names its client thread, and the calls that may wait for, take
  or release a lock (``wire.LANE_OPS``) run on a server *lane*, one thread per client thread of
  the connection. A lane thread is the lock owner ``MemoryStore`` sees, so re-entrancy, "a
  writer waits while another thread holds the key" and ``LockNotHeldError`` behave as in one
  process, and one client thread blocked on a lock never stalls the others. A lane that holds no
  lock ends after ``lane_idle_s`` without work.
- A connection that drops (closed, reset, malformed frame) releases every lock its lanes hold and
  removes its listeners; calls still queued for it are discarded.
- Listener events are queued per connection and written by that connection's sender thread, so
  a slow or dead client never delays the store's listener worker. Socket writes are serialised
  by one lock per connection.
- Only loopback addresses are served unless ``allow_remote=True``: the store has no
  authentication.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import logging
import os
import queue
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from dolphin.adapters.netstore import wire
from dolphin.core.errors import BadInputError, ConfigError, DolphinError
from dolphin.core.io import atomic_write_text
from dolphin.store.memory import MemoryMap, MemoryStore
from dolphin.store.ports import EntryEvent

log = logging.getLogger(__name__)

_RELEASE = object()
_STOP = object()
#: Events queued for one connection beyond which it is dropped (a client that stopped reading).
MAX_QUEUED_EVENTS = 100_000


def is_loopback(host: str) -> bool:
    """Return whether ``host`` names the loopback interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Lane:
    """The server thread that runs one client thread's lock-sensitive calls, in order."""

    def __init__(self, conn: _Connection, client_thread: int, idle_s: float) -> None:
        self.conn = conn
        self.client_thread = client_thread
        self.queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.held: dict[tuple[str, str], int] = {}
        self._idle_s = idle_s
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name=f"netstore-lane-{conn.peer}-{client_thread}")

    def _run(self) -> None:
        while True:
            try:
                item = self.queue.get(timeout=self._idle_s)
            except queue.Empty:
                if self.conn.retire(self):
                    return
                continue
            if item is _RELEASE:
                self._release_all()
                return
            if self.conn.alive:
                self.conn.execute(item, self)  # type: ignore[arg-type]

    def track(self, map_name: str, key: str, delta: int) -> None:
        """Count a hold taken (+1) or released (-1) on ``map_name[key]``."""
        slot = (map_name, key)
        count = self.held.get(slot, 0) + delta
        if count > 0:
            self.held[slot] = count
        else:
            self.held.pop(slot, None)

    def _release_all(self) -> None:
        for (map_name, key), count in list(self.held.items()):
            with contextlib.suppress(DolphinError):
                store_map = self.conn.server.store.map(map_name)
                for _ in range(count):
                    store_map.unlock(key)
                log.info("netstore: released lock %s[%r] of dropped client %s", map_name, key,
                         self.conn.peer)
        self.held.clear()


class _Connection:
    """One client connection: its reader thread, its lanes, its listeners, its write lock."""

    def __init__(self, server: StoreServer, sock: socket.socket, peer: str) -> None:
        self.server = server
        self.sock = sock
        self.peer = peer
        self.alive = True
        self._write_lock = threading.Lock()
        self._lanes_lock = threading.Lock()
        self._lanes: dict[int, _Lane] = {}
        self._listeners: dict[str, tuple[MemoryMap, str]] = {}  # client reg id -> (map, our id)
        self._events: queue.SimpleQueue[object] | None = None
        self._queued_events = 0
        self._maps: dict[str, MemoryMap] = {}
        self.reader = threading.Thread(target=self._read_loop, daemon=True,
                                       name=f"netstore-conn-{peer}")

    # -- reading ----------------------------------------------------------------------------

    def _read_loop(self) -> None:
        stream = self.sock.makefile("rb")
        reason = "closed by the client"
        try:
            while self.alive:
                message = wire.read_frame(stream, f"netstore client {self.peer}")
                if message is None:
                    break
                self._route(message)
        except wire.MalformedFrameError as exc:
            reason = f"malformed frame: {exc}"
            log.warning("netstore: dropping connection %s: %s", self.peer, exc)
        except OSError as exc:
            reason = f"connection error: {exc}"
        finally:
            with contextlib.suppress(OSError):
                stream.close()
            self.drop(reason)

    def _route(self, message: list[Any]) -> None:
        if not (len(message) == 5 and isinstance(message[0], int)
                and isinstance(message[1], str) and isinstance(message[2], int)
                and isinstance(message[3], str) and isinstance(message[4], list)):
            raise wire.MalformedFrameError("request must be [id, op, thread, map, args]",
                                           source=f"netstore client {self.peer}",
                                           value=str(message)[:80])
        op = message[1]
        if op not in wire.LANE_OPS:
            self.execute(message, None)
            return
        with self._lanes_lock:
            lane = self._lanes.get(message[2])
            if lane is None:
                lane = self._lanes[message[2]] = _Lane(self, message[2], self.server.lane_idle_s)
                lane.thread.start()
            lane.queue.put(message)

    def retire(self, lane: _Lane) -> bool:
        """Let an idle lane end unless it holds a lock or work arrived; report whether it may."""
        with self._lanes_lock:
            if lane.held or not lane.queue.empty():
                return False
            if self._lanes.get(lane.client_thread) is lane:
                del self._lanes[lane.client_thread]
            return True

    # -- executing --------------------------------------------------------------------------

    def _map(self, name: str) -> MemoryMap:
        found = self._maps.get(name)
        if found is None:
            found = self._maps[name] = self.server.store.map(name)
        return found

    def execute(self, message: list[Any], lane: _Lane | None) -> None:
        """Run one request and send its response (on the reader thread or on ``lane``)."""
        req_id, op, _thread, map_name, args = message
        try:
            handler = _HANDLERS.get(op)
            if handler is None:
                raise BadInputError("unknown operation", field="op", value=op)
            result = handler(self, map_name, args, lane)
            reply = [wire.RESPONSE_OK, req_id, result]
        except DolphinError as exc:
            reply = [wire.RESPONSE_ERROR, req_id, wire.error_type(exc), str(exc)]
        except (TypeError, ValueError, LookupError) as exc:
            reply = [wire.RESPONSE_ERROR, req_id, "BadInputError",
                     f"bad arguments for {op}: {exc!r}"]
        except Exception as exc:
            log.exception("netstore: %s on %s failed", op, map_name)
            reply = [wire.RESPONSE_ERROR, req_id, "ServerError", f"{op} failed: {exc!r}"]
        self.send(reply)

    def send(self, message: list[Any]) -> None:
        """Write one frame; a failed write drops the connection."""
        try:
            frame = wire.pack(message)
        except (msgspec.EncodeError, TypeError) as exc:
            log.error("netstore: cannot encode a reply for %s: %s", self.peer, exc)
            return
        try:
            with self._write_lock:
                self.sock.sendall(frame)
        except OSError as exc:
            self.drop(f"write failed: {exc}")

    # -- listeners --------------------------------------------------------------------------

    def add_listener(self, map_name: str, client_id: str, key: str | None) -> bool:
        """Forward events of ``map_name`` (``key`` only when given) under ``client_id``."""
        store_map = self._map(map_name)

        def forward(event: EntryEvent) -> None:
            self._push_event(client_id, event)

        with self._lanes_lock:
            if not self.alive:
                return False
            if self._events is None:
                self._events = queue.SimpleQueue()
                threading.Thread(target=self._send_events, args=(self._events,), daemon=True,
                                 name=f"netstore-events-{self.peer}").start()
            previous = self._listeners.pop(client_id, None)
            self._listeners[client_id] = (store_map, store_map.add_listener(forward, key=key))
        if previous is not None:
            previous[0].remove_listener(previous[1])
        return True

    def remove_listener(self, client_id: str) -> bool:
        """Stop forwarding ``client_id``'s events; report whether it was registered."""
        with self._lanes_lock:
            found = self._listeners.pop(client_id, None)
        return found is not None and found[0].remove_listener(found[1])

    def _push_event(self, client_id: str, event: EntryEvent) -> None:
        events = self._events
        if events is None or not self.alive:
            return
        self._queued_events += 1
        if self._queued_events > MAX_QUEUED_EVENTS:
            log.warning("netstore: client %s reads no events, dropping it", self.peer)
            self.drop("event backlog")
            return
        events.put([wire.EVENT, client_id, event.map_name, event.kind.value, event.key,
                    event.value, event.old_value])

    def _send_events(self, events: queue.SimpleQueue[object]) -> None:
        while True:
            item = events.get()
            if item is _STOP:
                return
            self._queued_events -= 1
            self.send(item)  # type: ignore[arg-type]

    # -- ending -----------------------------------------------------------------------------

    def drop(self, reason: str) -> None:
        """End the connection: release its locks and listeners, discard its queued calls."""
        with self._lanes_lock:
            if not self.alive:
                return
            self.alive = False
            lanes = list(self._lanes.values())
            self._lanes.clear()
            listeners = list(self._listeners.values())
            self._listeners.clear()
            events = self._events
        for lane in lanes:
            lane.queue.put(_RELEASE)
        for store_map, reg_id in listeners:
            store_map.remove_listener(reg_id)
        if events is not None:
            events.put(_STOP)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self.sock.close()
        self.server._forget(self)
        log.info("netstore: connection %s ended (%s)", self.peer, reason)


# -- operations: (connection, map name, args, lane) -> JSON-able result -----------------------


def _op_ping(c: _Connection, m: str, a: list[Any], lane: _Lane | None) -> Any:
    return "pong"


def _op_cluster_view(c: _Connection, m: str, a: list[Any], lane: _Lane | None) -> Any:
    view = c.server.store.cluster_view()
    return [view.connected, view.member_count, list(view.members)]


def _op_get(c: _Connection, m: str, a: list[Any], lane: _Lane | None) -> Any:
    return c._map(m).get(a[0])


def _op_get_all(c: _Connection, m: str, a: list[Any], lane: _Lane | None) -> Any:
    return c._map(m).get_all(a[0])


def _op_keys(c: _Connection, m: str, a: list[Any], lane: _Lane | None) -> Any:
    return c._map(m).keys()


def _op_clear(c: _Connection, m: str, a: list[Any], lane: _Lane | None) -> Any:
    c._map(m).clear()


def _op_is_locked(c: _Connection, m: str, a: list[Any], lane: _Lane | None) -> Any:
    return c._map(m).is_locked(a[0])


def _op_add_listener(c: _Connection, m: str, a: list[Any], lane: _Lane | None) -> Any:
    return c.add_listener(m, a[0], a[1])


def _op_remove_listener(c: _Connection, m: str, a: list[Any], lane: _Lane | None) -> Any:
    return c.remove_listener(a[0])


def _op_put(c: _Connection, m: str, a: list[Any], lane: _Lane | None) -> Any:
    c._map(m).put(a[0], a[1])


def _op_put_all(c: _Connection, m: str, a: list[Any], lane: _Lane | None) -> Any:
    c._map(m).put_all(a[0])


def _op_delete(c: _Connection, m: str, a: list[Any], lane: _Lane | None) -> Any:
    c._map(m).delete(a[0])


def _op_put_if_absent(c: _Connection, m: str, a: list[Any], lane: _Lane | None) -> Any:
    return c._map(m).put_if_absent(a[0], a[1])


def _op_replace_if_same(c: _Connection, m: str, a: list[Any], lane: _Lane | None) -> Any:
    return c._map(m).replace_if_same(a[0], a[1], a[2])


def _op_execute(c: _Connection, m: str, a: list[Any], lane: _Lane | None) -> Any:
    out = c._map(m).execute(a[0], wire.processor_from_wire(a[1]))
    return [out.applied, out.reason, out.value]


def _op_lock(c: _Connection, m: str, a: list[Any], lane: _Lane | None) -> Any:
    c._map(m).lock(a[0])
    assert lane is not None
    lane.track(m, a[0], +1)


def _op_try_lock(c: _Connection, m: str, a: list[Any], lane: _Lane | None) -> Any:
    got = c._map(m).try_lock(a[0], float(a[1]))
    if got:
        assert lane is not None
        lane.track(m, a[0], +1)
    return got


def _op_unlock(c: _Connection, m: str, a: list[Any], lane: _Lane | None) -> Any:
    c._map(m).unlock(a[0])
    assert lane is not None
    lane.track(m, a[0], -1)


_Handler = Callable[[_Connection, str, list[Any], "_Lane | None"], Any]
_HANDLERS: dict[str, _Handler] = {
    name.removeprefix("_op_"): fn for name, fn in globals().items() if name.startswith("_op_")
}
assert set(_HANDLERS) == wire.INLINE_OPS | wire.LANE_OPS


class StoreServer:
    """One ``MemoryStore`` served on ``host:port`` (``port=0``: any free port, see ``.port``)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, allow_remote: bool = False,
                 lane_idle_s: float = 30.0, store: MemoryStore | None = None) -> None:
        if not allow_remote and not is_loopback(host):
            raise ConfigError(f"store server host {host!r} is not a loopback address; the "
                              "store has no authentication (pass allow_remote=True to insist)")
        self.host = host
        self.port = port
        self.lane_idle_s = lane_idle_s
        self.store = store if store is not None else MemoryStore("netstore")
        self._sock: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._conns: set[_Connection] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def __repr__(self) -> str:
        return f"StoreServer({self.host}:{self.port})"

    @property
    def address(self) -> str:
        """``host:port`` as clients dial it."""
        return f"{self.host}:{self.port}"

    def start(self) -> StoreServer:
        """Bind, listen and accept connections on a background thread; return self."""
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET,
                             socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise ConfigError(f"store server cannot bind {self.host}:{self.port}: {exc}") from exc
        sock.listen(128)
        sock.settimeout(0.5)  # the accept loop notices close() even if shutdown() does not wake it
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._accept_thread = threading.Thread(target=self._accept_loop, daemon=True,
                                               name=f"netstore-accept-{self.port}")
        self._accept_thread.start()
        log.info("netstore: serving on %s:%d", self.host, self.port)
        return self

    def _accept_loop(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stopped.is_set():
            try:
                client, addr = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stopped.is_set():
                    return
                continue
            client.settimeout(None)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(self, client, f"{addr[0]}:{addr[1]}")
            with self._lock:
                if self._stopped.is_set():
                    client.close()
                    return
                self._conns.add(conn)
            conn.reader.start()

    def _forget(self, conn: _Connection) -> None:
        with self._lock:
            self._conns.discard(conn)

    @property
    def connection_count(self) -> int:
        """How many clients are connected now."""
        with self._lock:
            return len(self._conns)

    def serve_forever(self) -> None:
        """Block until ``close()`` or SIGTERM/SIGINT (handled when called on the main thread)."""
        self.handle_signals()
        if self._sock is None:
            self.start()
        while not self._stopped.wait(0.5):
            pass
        self.close()

    def handle_signals(self) -> None:
        """Make SIGTERM/SIGINT end ``serve_forever`` (only possible on the main thread)."""
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self._stopped.set())

    def close(self) -> None:
        """Stop accepting, drop every connection and close the store. Idempotent."""
        self._stopped.set()
        with self._lock:
            sock, self._sock = self._sock, None
            conns = list(self._conns)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for conn in conns:
            conn.drop("server closing")
        self.store.close()
        thread = self._accept_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(2.0)

    def __enter__(self) -> StoreServer:
        return self.start() if self._sock is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(host: str = "127.0.0.1", port: int = 0, *, ready_file: Path | None = None,
          allow_remote: bool = False) -> int:
    """Run a store server in the foreground until SIGTERM/SIGINT; return the exit code 0.

    Once listening, ``ready_file`` (when given) is written atomically with
    ``{"port": P, "pid": PID}``, so a supervisor knows both the port and that it may connect.
    """
    server = StoreServer(host, port, allow_remote=allow_remote)
    server.handle_signals()  # before binding: a SIGTERM right after the ready file still exits 0
    server.start()
    try:
        if ready_file is not None:
            atomic_write_text(ready_file, msgspec.json.encode(
                {"port": server.port, "pid": os.getpid(), "host": host}).decode())
        server.serve_forever()
    finally:
        server.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m dolphin.adapters.netstore.server [--host H] [--port P] [--ready-file F]``."""
    parser = argparse.ArgumentParser(description="Serve the embedded DOLPHIN store over TCP.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return serve(args.host, args.port, ready_file=args.ready_file)


if __name__ == "__main__":
    sys.exit(main())
