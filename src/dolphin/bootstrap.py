"""The one composition root: wire a runtime from a config (STYLE.md §10, DESIGN.md layout).

This is the only place that chooses the embedded store or a Hazelcast cluster, the live or the
simulated clock, and what supervises the trader's posture. Commands ask it for a ``Runtime``; the
pure packages never see a URL or an adapter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dolphin.core.clock import Clock, LiveClock, SimulatedClock
from dolphin.core.config import DolphinConfig
from dolphin.core.errors import ConfigError
from dolphin.store.ports import Store

STORE_SCHEMES = ("memory", "hazelcast", "tcp")
#: Where orders go: the Nautilus sandbox (paper), or Binance USDT-M testnet / live.
VENUES = ("paper", "binance-testnet", "binance")


def open_store(url: str = "memory://", **settings: Any) -> Store:
    """Open the store named by ``url``: ``memory://``, ``hazelcast://host:port,...`` or
    ``tcp://127.0.0.1:PORT`` (the embedded store served to the mesh's processes,
    ``adapters.netstore``; settings: ``timeout_s``, ``connect_timeout_s``).

    The Hazelcast client is imported only for a ``hazelcast://`` URL, so the embedded default
    never loads it.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"store URL {url!r} must look like memory://, hazelcast://host:port "
                          "or tcp://127.0.0.1:port")
    if scheme == "memory":
        from dolphin.store.memory import MemoryStore

        return MemoryStore(rest or "memory")
    if scheme == "hazelcast":
        from dolphin.adapters.hazelcast.store import HazelcastStore

        return HazelcastStore.connect(rest, **settings)
    if scheme == "tcp":
        from dolphin.adapters.netstore.client import NetStore

        return NetStore.connect(rest, **settings)
    raise ConfigError(f"store URL {url!r}: unknown scheme (known: {', '.join(STORE_SCHEMES)})")


def posture_source(url: str, store: Store, unsupervised: bool = False,
                   echo: Callable[[str], None] = print):
    """Return the trader's posture source for the store at ``url`` (None: unsupervised).

    The ``DOLPHIN_SAFETY`` cell snapshot, judged by the trader (missing, stale, unknown or
    unreadable -> TURTLE, ``adapters.nautilus.guards``): unknown is never APEX. The embedded
    store lives in this process only, so nothing publishes a posture into it and the session
    reads TURTLE (the risk gate refuses entries) unless the operator chooses ``unsupervised``
    explicitly: then it runs without posture supervision (APEX, as in a backtest) and says so.
    """
    from dolphin.store.features import posture_cell

    if unsupervised:
        if not url.startswith("memory://"):
            raise ConfigError("--unsupervised is for the embedded store only; a shared store "
                              "carries the watchdog's posture")
        echo("posture: unsupervised by request (--unsupervised): APEX, no DOLPHIN_SAFETY read")
        return None
    if url.startswith("memory://"):
        echo("posture: nothing publishes DOLPHIN_SAFETY into the embedded store: it reads "
             "TURTLE (no new entries); pass --unsupervised to trade at APEX without posture "
             "supervision, or --store hazelcast://HOST:PORT with a watchdog")
    return posture_cell(store).read


@dataclass
class Runtime:
    """A wired runtime: config, store, clock, the posture source and the forewarner gate."""

    config: DolphinConfig
    store: Store
    clock: Clock
    posture: Any
    mc_gate: Any
    store_url: str
    venue: str = "paper"
    venue_configs: tuple[Any, Any] | None = None  # Binance (data, exec) client configs

    def close(self) -> None:
        """Close the store (idempotent)."""
        self.store.close()


def bootstrap(
    config: DolphinConfig,
    *,
    store: str = "memory://",
    clock: str = "live",
    forewarner: bool = True,
    unsupervised: bool = False,
    venue: str = "paper",
    echo: Callable[[str], None] = print,
) -> Runtime:
    """Wire a runtime: the store from its URL, the clock (``live`` or ``sim``), the posture
    source, the MC-Forewarner gate (``backtest.gates.load_gate``; None when off) and the venue
    (``paper``: the sandbox; ``binance-testnet``/``binance``: client configs from environment
    keys, ``adapters.binance.config``)."""
    from dolphin.backtest.gates import load_gate

    if clock not in ("live", "sim"):
        raise ConfigError(f"clock must be live or sim, got {clock!r}")
    if venue not in VENUES:
        raise ConfigError(f"venue must be one of {', '.join(VENUES)}, got {venue!r}")
    configs = None
    if venue != "paper":
        from dolphin.adapters.binance.config import binance_client_configs

        configs = binance_client_configs(testnet=venue == "binance-testnet")
    the_store = open_store(store)
    try:
        posture = posture_source(store, the_store, unsupervised, echo)
        gate = load_gate(config) if forewarner else None
    except BaseException:
        the_store.close()
        raise
    the_clock: Clock = LiveClock() if clock == "live" else SimulatedClock(0)
    return Runtime(config, the_store, the_clock, posture, gate, store, venue, configs)
