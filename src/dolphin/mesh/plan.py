"""What ``dolphin mesh up`` starts: the services, their command lines, order and readiness.

Order (Bible §16.7): the store, the ACB processor, OBF, ExF, EsoF, the scan service, the
watchdog, MC, and the trader last, so that every input the trader reads exists before it reads.
(The Bible puts the scanner bridge beside the store; here it starts after the factor services so
its first scans are seen by an ACB processor already listening.)

The embedded store is a store server process (``adapters.netstore``) that every other service
connects to over loopback (``tcp://127.0.0.1:PORT``). One process per service, not one process
with threads: killing or restarting one service (the acceptance's OBF kill and trader SIGKILL)
must not touch the others, and a service's memory is its own. With ``--store
hazelcast://HOST:PORT,...`` the cluster is the store and no store process is started.

Each service is ``python -m dolphin mesh service NAME --run-dir DIR``; its options are the
``options.json`` that ``up`` writes into the run directory (atomically) before starting the
supervisor. A service is ready when its heartbeat in ``DOLPHIN_HEARTBEAT`` is fresh and says
RUNNING or DEGRADED (the trader says STARTING while it reruns its ledger); the store when it
answers a ping.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

from dolphin.core.errors import ConfigError
from dolphin.core.io import atomic_write_text
from dolphin.mesh.supervisor import ServiceSpec

#: Start order (the store only for the embedded store; Prefect only with ``--prefect``).
SERVICES = ("store", "prefect", "flows", "acb", "obf", "exf", "esof", "scan", "watchdog", "mc",
            "trader")
#: Processes that are not Components with a heartbeat of their own.
INFRA = ("store", "prefect", "flows")
#: Services the watchdog watches (every one but the store and itself).
WATCHED = tuple(s for s in SERVICES if s not in (*INFRA, "watchdog"))
OPTIONS = "options.json"
#: The committed sample, replayed when ``--replay`` is not given (run from the repository root).
DEFAULT_REPLAY = Path("data/sample/bars_1m_sample.parquet")
DEFAULT_SPEED = 60.0
#: A heartbeat older than this does not make a service ready.
READY_BEAT_S = 5.0
READY_STATES = frozenset({"RUNNING", "DEGRADED"})


def free_port() -> int:
    """Return a free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _file(opts: dict[str, Any], key: str) -> None:
    """Resolve an optional file option to an absolute path; refuse a missing file."""
    if opts.get(key):
        path = Path(opts[key])
        if not path.is_file():
            raise ConfigError(f"--{key.replace('_', '-')} {path}: file not found")
        opts[key] = str(path.resolve())


def _inputs(opts: dict[str, Any]) -> None:
    """Check and resolve the replay, config, exchangeInfo and captures options."""
    replay = Path(opts.get("replay") or DEFAULT_REPLAY)
    if not replay.is_file():
        raise ConfigError(f"--replay {replay}: bar file not found (run from the repository root "
                          "for the committed sample, or pass --replay BARS)")
    opts["replay"] = str(replay.resolve())
    opts["speed"] = float(opts.get("speed") or DEFAULT_SPEED)
    if not opts["speed"] > 0:
        raise ConfigError(f"--speed must be positive, got {opts['speed']}")
    _file(opts, "config")
    _file(opts, "exchange_info")
    if opts.get("captures"):
        missing = [p for p in opts["captures"] if not Path(p).is_file()]
        if missing:
            raise ConfigError(f"--captures: file not found: {missing[0]}")
        opts["captures"] = [str(Path(p).resolve()) for p in opts["captures"]]
    if opts.get("exchange") == "binance-testnet":
        from dolphin.adapters.binance.config import binance_client_configs

        binance_client_configs(testnet=True)  # keys from the environment, configs validated
        raise ConfigError("--exchange binance-testnet: the client configs are valid, but "
                          "Binance cannot be reached from this machine; use --exchange local")


def _watched(opts: dict[str, Any]) -> list[str]:
    """The services the watchdog watches, and notes on what is not monitored."""
    watched = list(opts.get("watched") or WATCHED)
    notes = list(opts.get("notes") or [])
    if not opts.get("exf_base"):  # nothing to fetch from: not monitored, and said so
        watched = [w for w in watched if w != "exf"]
        notes.append("ExF: no source configured (these machines cannot reach the vendors): "
                     "factors absent, the ACB runs without them, DVOL (Cat4) and the ExF age "
                     "(Cat2) are not monitored")
    if not opts.get("captures"):
        notes.append("OBF: no order-book captures (--captures): OB features absent, Cat3 not "
                     "monitored")
    opts["notes"] = notes
    return watched


def write_options(run_dir: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Fill in the store URL (a free port for the embedded store), check the inputs and write
    ``options.json``."""
    opts = dict(options)
    store = str(opts.get("store") or "memory")
    if store in ("memory", "memory://"):
        port = int(opts.get("store_port") or free_port())
        opts.update(store_port=port, store_url=f"tcp://127.0.0.1:{port}", embedded=True)
    elif store.startswith(("hazelcast://", "tcp://")):
        opts.update(store_url=store, embedded=False)
    else:
        raise ConfigError(f"--store {store!r}: expected memory or hazelcast://HOST:PORT,...")
    _inputs(opts)
    opts["watched"] = _watched(opts)
    if opts.get("prefect"):
        opts.setdefault("prefect_port", free_port())
        opts["prefect_api_url"] = f"http://127.0.0.1:{opts['prefect_port']}/api"
    if opts.get("metrics", True):  # one /metrics port per service (docs/operations.md)
        ports = dict(opts.get("metrics_ports") or {})
        for name in SERVICES:
            if name not in INFRA:
                ports.setdefault(name, free_port())
        opts["metrics_ports"] = ports
    opts["run_dir"] = str(run_dir.resolve())
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / OPTIONS, json.dumps(opts, indent=2, sort_keys=True, default=str))
    return opts


def read_options(run_dir: Path) -> dict[str, Any]:
    """Return the run directory's ``options.json``."""
    path = Path(run_dir) / OPTIONS
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no mesh options here (was `dolphin mesh up` run with this "
                          "--run-dir?)") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable mesh options ({exc})") from None


class HeartbeatProbe:
    """Readiness checks against the mesh's store, one lazily opened connection."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._store = None

    def store(self):
        """Return the connection (opened on first use)."""
        if self._store is None:
            from dolphin.bootstrap import open_store

            self._store = open_store(self.url)
        return self._store

    def beat(self, name: str) -> dict[str, Any] | None:
        """Return the decoded heartbeat of ``name`` (None: none or unreadable)."""
        from dolphin.store.schema import HEARTBEAT, decode_value

        text = self.store().map(HEARTBEAT).get(name)
        if text is None:
            return None
        data = decode_value(text).data
        return data if isinstance(data, dict) else None

    def ready(self, name: str) -> bool:
        """True when ``name`` beats freshly in a ready state."""
        hb = self.beat(name)
        if hb is None:
            return False
        age = (time.time_ns() - int(hb.get("ts_ns", 0))) / 1e9
        return age < READY_BEAT_S and hb.get("state") in READY_STATES

    def ping(self) -> bool:
        """True when the store answers."""
        self.store().map("DOLPHIN_HEARTBEAT").get("__ping__")
        return True

    def close(self) -> None:
        """Close the connection (idempotent)."""
        if self._store is not None:
            self._store.close()
            self._store = None


def prefect_env(run_dir: Path, opts: dict[str, Any]) -> dict[str, str]:
    """The environment of the Prefect server and of the flows serving against it."""
    return {"PREFECT_API_URL": opts["prefect_api_url"],
            "PREFECT_HOME": str(Path(run_dir) / "prefect-client"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}


def prefect_healthy(api_url: str) -> bool:
    """True when the Prefect server at ``api_url`` answers its health check."""
    import urllib.request

    with urllib.request.urlopen(f"{api_url}/health", timeout=1.0) as r:
        return r.status == 200


def _argv(name: str, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "dolphin", "mesh", "service", name, "--run-dir", str(run_dir)]


def build_plan(options: dict[str, Any], run_dir: Path) -> list[ServiceSpec]:
    """Return the supervised services for the options ``up`` wrote (``read_options``)."""
    run_dir = Path(run_dir)
    opts = options if "store_url" in options else write_options(run_dir, options)
    probe = HeartbeatProbe(opts["store_url"])
    specs = []
    for name in SERVICES:
        if name == "store":
            if not opts.get("embedded"):
                continue
            specs.append(ServiceSpec(name, _argv(name, run_dir), ready=probe.ping,
                                     ready_timeout_s=30.0))
            continue
        if name in ("prefect", "flows"):
            if not opts.get("prefect"):
                continue
            ready = (lambda: prefect_healthy(opts["prefect_api_url"])) if name == "prefect" \
                else None  # the flows server: alive (it has no heartbeat of its own)
            specs.append(ServiceSpec(name, _argv(name, run_dir), env=prefect_env(run_dir, opts),
                                     ready=ready, ready_timeout_s=90.0))
            continue
        timeout = 120.0 if name == "trader" else 60.0
        specs.append(ServiceSpec(name, _argv(name, run_dir),
                                 ready=lambda n=name: probe.ready(n), ready_timeout_s=timeout,
                                 critical=name in ("scan", "watchdog", "trader", "acb")))
    return specs


def status_extras(run_dir: Path) -> dict[str, Any]:
    """Heartbeat ages, posture and Rm from the mesh's store (for ``mesh status``)."""
    from dolphin.store.features import posture_cell

    opts = read_options(run_dir)
    probe = HeartbeatProbe(opts["store_url"])
    try:
        now = time.time_ns()
        ages: dict[str, float | None] = {}
        states: dict[str, str | None] = {}
        for name in SERVICES:
            if name in INFRA:
                continue
            try:
                hb = probe.beat(name)
            except ConfigError:
                raise
            except Exception:
                hb = None
            ages[name] = None if hb is None else round((now - int(hb.get("ts_ns", 0))) / 1e9, 1)
            states[name] = None if hb is None else str(hb.get("state"))
        snap = posture_cell(probe.store()).read()
        data = snap.data if snap is not None else {}
        return {"heartbeats": ages, "beat_states": states,
                "posture": data.get("posture") if isinstance(data, dict) else None,
                "rm": data.get("rm") if isinstance(data, dict) else None}
    finally:
        probe.close()
