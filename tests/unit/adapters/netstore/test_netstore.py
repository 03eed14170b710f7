"""The store server and its client: recovery after a restart, locks of dropped clients,
malformed frames, an absent server, timeouts, and the foreground ``serve`` entry point."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dolphin.adapters.netstore import wire
from dolphin.adapters.netstore.client import NetStore, parse_address
from dolphin.adapters.netstore.server import StoreServer
from dolphin.bootstrap import open_store
from dolphin.core.errors import BadInputError, ConfigError
from dolphin.store.errors import LockNotHeldError, StoreUnavailableError
from dolphin.store.ports import EntryEvent, EntryEventKind, Store
from dolphin.store.processors import AcbApply, HeartbeatTouch, PostureSet
from dolphin.store.schema import encode_value
from tests.kit.procs import wait_for

MAP = "DOLPHIN_STATE_BLUE"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def server() -> Iterator[StoreServer]:
    srv = StoreServer("127.0.0.1", 0, lane_idle_s=0.2).start()
    try:
        yield srv
    finally:
        srv.close()


@pytest.fixture
def client(server: StoreServer) -> Iterator[NetStore]:
    with NetStore.connect(server.address, timeout_s=5.0) as net:
        yield net


def test_open_store_speaks_tcp_and_repr_shows_the_address(server: StoreServer) -> None:
    with open_store(f"tcp://{server.address}") as store:
        assert isinstance(store, NetStore) and isinstance(store, Store)
        assert repr(store) == f"NetStore('{server.address}')"
        store.map(MAP).put("k", "v")
        assert store.map(MAP).get("k") == "v"
        view = store.cluster_view()
        assert view.connected and view.members == (f"netstore:{server.address}",)


def test_nothing_listening_raises_store_unavailable_naming_the_address() -> None:
    port = _free_port()
    with pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{port}"):
        NetStore.connect(f"127.0.0.1:{port}", connect_timeout_s=1.0)
    with pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{port}"):
        open_store(f"tcp://127.0.0.1:{port}")


def test_bad_addresses_and_remote_binds_are_refused() -> None:
    for bad in ("127.0.0.1", "127.0.0.1:x", ":80", "127.0.0.1:70000"):
        with pytest.raises(ConfigError):
            parse_address(bad)
    with pytest.raises(ConfigError, match="loopback"):
        StoreServer("0.0.0.0", 0)
    assert parse_address("localhost:5") == ("localhost", 5)


def test_server_restart_the_client_recovers_and_its_listeners_fire_again(
    server: StoreServer, client: NetStore
) -> None:
    events: list[EntryEvent] = []
    client.map(MAP).add_listener(events.append, key="k")
    client.map(MAP).put("k", "1")
    assert wait_for(lambda: len(events) == 1, 15)
    port = server.port
    server.close()
    assert wait_for(lambda: not client.ping(), 15)
    with pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{port}"):
        client.map(MAP).get("k")
    with StoreServer("127.0.0.1", port).start() as restarted:
        # The listener is registered again without any call from this handle (the reconnect
        # backs off up to 2 s: a loaded machine gets 15 s).
        assert wait_for(lambda: restarted.connection_count == 1, 15)
        with NetStore.connect(restarted.address) as other:
            other.map(MAP).put("k", "2")
        assert wait_for(lambda: len(events) == 2, 15)
        assert (events[1].kind, events[1].value, events[1].old_value) == (
            EntryEventKind.ADDED, "2", None)  # a fresh store: nothing survives a restart
        assert client.map(MAP).get("k") == "2"


def test_a_dropped_clients_locks_are_released(server: StoreServer, client: NetStore) -> None:
    holder = NetStore.connect(server.address)
    holder.map(MAP).lock("k")
    holder.map(MAP).lock("k")  # re-entrant: two holds, both released with the connection
    assert client.map(MAP).is_locked("k")
    assert client.map(MAP).try_lock("k", 0.05) is False
    waiter = threading.Thread(target=lambda: client.map(MAP).put("k", "after"))
    waiter.start()
    holder._conn.sock.shutdown(socket.SHUT_RDWR)  # the process died: no unlock
    waiter.join(5)
    assert not waiter.is_alive()
    assert client.map(MAP).get("k") == "after"
    assert wait_for(lambda: not client.map(MAP).is_locked("k"))
    with pytest.raises(LockNotHeldError):
        holder.map(MAP).unlock("k")  # reconnected: the old holds are gone
    holder.close()


def test_locks_belong_to_the_calling_thread_of_one_handle(client: NetStore) -> None:
    m = client.map(MAP)
    m.lock("k")
    other: list[object] = []
    t = threading.Thread(target=lambda: other.append(m.try_lock("k", 0.05)))
    t.start()
    t.join(5)
    assert other == [False]
    m.unlock("k")
    with pytest.raises(LockNotHeldError):
        m.unlock("k")


def test_an_idle_lane_ends_but_one_holding_a_lock_stays(server: StoreServer,
                                                        client: NetStore) -> None:
    m = client.map(MAP)
    m.lock("held")
    t = threading.Thread(target=lambda: m.put("x", "1"))
    t.start()
    t.join(5)
    conn = next(iter(server._conns))
    assert wait_for(lambda: len(conn._lanes) == 1, 3.0)  # the writer's lane retired
    m.put("held", "v")  # the holder's lane is still the lock owner
    m.unlock("held")


def test_a_malformed_frame_drops_only_that_connection(
    server: StoreServer, client: NetStore, caplog: pytest.LogCaptureFixture
) -> None:
    client.map(MAP).put("k", "v")
    caplog.set_level(logging.WARNING, logger="dolphin.adapters.netstore.server")
    for garbage in (struct.pack(">I", 5) + b"{nope", struct.pack(">I", 2) + b"{}",
                    wire.pack([1, "get", 1, MAP]), struct.pack(">I", 2**31)):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
            raw.sendall(garbage)
            assert raw.recv(100) == b""  # closed by the server
    assert sum("dropping connection" in r.getMessage() for r in caplog.records) == 4
    assert client.map(MAP).get("k") == "v"
    assert wait_for(lambda: server.connection_count == 1)


def test_an_unknown_op_or_bad_processor_is_a_typed_error_not_a_drop(client: NetStore) -> None:
    with pytest.raises(BadInputError, match="unknown operation"):
        client.call("explode", MAP, [])
    with pytest.raises(BadInputError, match="class id"):
        client.call("execute", MAP, ["k", [99, [["string", "x"]]]])
    with pytest.raises(BadInputError):
        client.call("get", MAP, [])
    assert client.ping()


def test_processors_cross_the_wire_intact() -> None:
    for proc in (PostureSet("a"), HeartbeatTouch("b"), AcbApply("c", 1.1, 1.9, 0.3, 1.2)):
        assert wire.processor_from_wire(wire.processor_to_wire(proc)) == proc


def test_processor_runs_on_the_server(client: NetStore) -> None:
    beat = encode_value({"component": "obf"}, 10)
    out = client.map("DOLPHIN_HEARTBEAT").execute("obf", HeartbeatTouch(beat))
    assert out.applied and out.value == beat
    assert not client.map("DOLPHIN_HEARTBEAT").execute("obf", HeartbeatTouch(beat)).applied


def test_no_answer_within_the_timeout_raises_store_unavailable() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        with (NetStore.connect(address, timeout_s=0.2) as net,
              pytest.raises(StoreUnavailableError, match=f"{address}.*within")):
            net.map(MAP).get("k")


def test_close_is_idempotent_and_fails_calls(client: NetStore) -> None:
    m = client.map(MAP)
    client.close()
    client.close()
    with pytest.raises(StoreUnavailableError):
        m.put("k", "v")
    assert client.cluster_view().connected is False


def test_serve_writes_the_ready_file_and_exits_zero_on_sigterm(tmp_path: Path) -> None:
    ready = tmp_path / "store.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "dolphin.adapters.netstore.server",
                             "--ready-file", str(ready)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(ready.exists, 30.0)
        info = json.loads(ready.read_text())
        assert info["pid"] == proc.pid
        with NetStore.connect(f"127.0.0.1:{info['port']}") as net:
            net.map(MAP).put("k", "v")
            assert net.map(MAP).get("k") == "v"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(10) == 0
            assert wait_for(lambda: not net.ping())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
