"""Start, check and stop a local Hazelcast cluster (``dolphin hz``, tests, benchmarks).

A cluster is healthy only when a client connects and sees every member: an open port alone
says the JVM is up, not that the member joined the others.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from dolphin.adapters.hazelcast.cluster import (
    ClusterSpec,
    ClusterStartError,
    kill_member,
    log_tail,
    pid_file,
    port_open,
    read_pid,
    recorded_ports,
    resolve_jar,
    spawn_member,
    wait_exit,
)
from dolphin.adapters.hazelcast.processors_jar import resolve_processors_jar
from dolphin.core.errors import ConfigError
from dolphin.store.ports import ClusterView


@dataclass(frozen=True, slots=True)
class MemberStatus:
    """One recorded member: its port, its pid if it still runs, and whether it accepts clients."""

    port: int
    pid: int | None
    listening: bool


def _probe(addresses: tuple[str, ...], name: str, expect: int, timeout_s: float) -> ClusterView:
    # Imported here: only dolphin.adapters.hazelcast.store may import the client, and
    # `hz stop` needs none.
    from dolphin.adapters.hazelcast.store import probe_cluster

    return probe_cluster(addresses, name, expect=expect, timeout_s=timeout_s)


def start_cluster(
    spec: ClusterSpec, *, jar: Path | None = None, timeout_s: float = 120.0, tied: bool = False
) -> ClusterView:
    """Start the members of ``spec`` that are not running yet and wait until healthy.

    Members already recorded and alive are kept (so ``start`` is idempotent). If the cluster
    does not become healthy, the members started by this call are stopped again.
    """
    if shutil.which("java") is None:
        raise ConfigError("java not found on PATH (Hazelcast 5.6 needs Java 17 or newer)")
    jar = jar or resolve_jar()
    processors = resolve_processors_jar()  # the entry processors the member config registers
    started: list[int] = []
    try:
        for port in spec.ports:
            if read_pid(spec.state_dir, port) is not None:
                continue
            if port_open(port):
                raise ConfigError(f"port {port} is in use by a process that is not our member")
            spawn_member(spec, port, jar, tied=tied, processors=processors)
            started.append(port)
        return wait_healthy(spec, timeout_s)
    except BaseException:
        stop_cluster(spec.state_dir, started)
        raise


def wait_healthy(spec: ClusterSpec, timeout_s: float) -> ClusterView:
    """Wait until every member listens and a client sees ``spec.members`` members."""
    deadline = time.monotonic() + timeout_s
    while not all(port_open(p) for p in spec.ports):
        for port in spec.ports:
            if read_pid(spec.state_dir, port) is None:
                raise ClusterStartError(
                    f"member on port {port} exited during start; log tail:\n"
                    + log_tail(spec.state_dir, port)
                )
        if time.monotonic() > deadline:
            raise ClusterStartError(f"members did not open ports {spec.ports} in {timeout_s}s")
        time.sleep(0.2)
    remaining = max(1.0, deadline - time.monotonic())
    view = _probe(spec.addresses, spec.cluster_name, spec.members, remaining)
    if view.member_count < spec.members:
        raise ClusterStartError(
            f"cluster {spec.cluster_name!r} shows {view.member_count}/{spec.members} members"
        )
    return view


def stop_cluster(
    state_dir: Path, ports: list[int] | tuple[int, ...] | None = None, timeout_s: float = 15.0
) -> list[int]:
    """SIGTERM the recorded members (all, or ``ports``), SIGKILL stragglers; return the ports.

    Members get SIGTERM together and are then waited for, so stopping N members takes about
    as long as stopping one.
    """
    targets = recorded_ports(state_dir) if ports is None else list(ports)
    pids: dict[int, int] = {}
    for port in targets:
        pid = read_pid(state_dir, port)
        if pid is not None:
            _signal(pid, signal.SIGTERM)
            pids[port] = pid
    deadline = time.monotonic() + timeout_s
    for pid in pids.values():
        if not wait_exit(pid, max(0.0, deadline - time.monotonic())):
            _signal(pid, signal.SIGKILL)
            wait_exit(pid, 5.0)
    for port in targets:
        pid_file(state_dir, port).unlink(missing_ok=True)
    return sorted(pids)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def cluster_status(
    state_dir: Path, cluster_name: str = "dolphin", timeout_s: float = 5.0
) -> tuple[list[MemberStatus], ClusterView]:
    """Return the recorded members and what a client sees of the cluster they form."""
    members = [
        MemberStatus(port, read_pid(state_dir, port), port_open(port))
        for port in recorded_ports(state_dir)
    ]
    live = tuple(f"127.0.0.1:{m.port}" for m in members if m.pid is not None and m.listening)
    if not live:
        return members, ClusterView(connected=False, member_count=0)
    return members, _probe(live, cluster_name, len(live), timeout_s)


class LocalCluster:
    """A cluster owned by one process (tests, benchmarks): started on enter, always stopped.

    Members are tied to this process, so even a run killed hard leaves no Java behind.
    """

    def __init__(self, spec: ClusterSpec, *, timeout_s: float = 120.0) -> None:
        self.spec = spec
        self.timeout_s = timeout_s
        self.view: ClusterView | None = None

    @property
    def addresses(self) -> tuple[str, ...]:
        """The member addresses."""
        return self.spec.addresses

    def start(self) -> LocalCluster:
        """Start every member and wait until healthy."""
        self.view = start_cluster(self.spec, timeout_s=self.timeout_s, tied=True)
        return self

    def kill(self, port: int) -> bool:
        """SIGKILL one member (failover drills)."""
        return kill_member(self.spec.state_dir, port, signal.SIGKILL)

    def stop(self) -> None:
        """Stop every member of the spec."""
        stop_cluster(self.spec.state_dir, self.spec.ports)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
