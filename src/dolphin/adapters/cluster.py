"""Research chunks on a Dask cluster: ``--cluster local:N`` or ``--cluster tcp://host:port``.

``local:N`` starts a ``distributed.LocalCluster`` of N single-threaded worker processes on
127.0.0.1 (no dashboard) for the run and closes it after; ``tcp://host:port`` connects to a
scheduler already running (``dask scheduler`` on one machine, ``dask worker tcp://host:port``
on each of the others; see docs/research.md).

Each chunk is one Dask task. The shared input (the scans) is sent to every worker once. A task
whose worker dies is run again on another (Dask reschedules it; after
``ALLOWED_FAILURES`` lost workers for one task the run stops with a :class:`ClusterError`).
Results come back as tasks finish; the caller saves them, so a resume after a crash of the
whole run skips the saved chunks exactly as without a cluster.

Local workers die with this process even when it is SIGKILLed: ``distributed`` gives each
worker a pipe from its parent and exits the worker when the pipe closes.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from dolphin.core.errors import ConfigError, DolphinError

#: Workers a single task may lose (each death while running it) before the run stops.
ALLOWED_FAILURES = 3
#: Seconds to wait for a remote scheduler to answer.
CONNECT_TIMEOUT_S = 20.0

_LOCAL = re.compile(r"^local:(\d+)$")
_REMOTE = re.compile(r"^tcp://[^\s:/]+:\d{1,5}$")


class ClusterError(DolphinError):
    """The cluster could not be reached, or lost too many workers on one task."""


@dataclass(frozen=True)
class ClusterSpec:
    """``local:N`` (``workers`` = N, ``address`` None) or ``tcp://host:port``."""

    workers: int | None = None
    address: str | None = None

    @classmethod
    def parse(cls, text: str) -> ClusterSpec:
        """Parse ``--cluster``; a ConfigError names the value when it is neither form."""
        m = _LOCAL.match(text.strip())
        if m:
            n = int(m.group(1))
            if n < 1:
                raise ConfigError(f"--cluster local:N needs N >= 1, got {text!r}")
            return cls(workers=n)
        if _REMOTE.match(text.strip()):
            return cls(address=text.strip())
        raise ConfigError(f"--cluster must be local:N or tcp://host:port, got {text!r}")

    def __str__(self) -> str:
        return f"local:{self.workers}" if self.address is None else self.address


class DaskRunner:
    """A :class:`dolphin.core.chunks.ChunkRunner` on Dask distributed (use as a context)."""

    def __init__(self, spec: ClusterSpec | str) -> None:
        self.spec = spec if isinstance(spec, ClusterSpec) else ClusterSpec.parse(spec)
        self.client: Any = None
        self._cluster: Any = None

    def __repr__(self) -> str:
        return f"DaskRunner({self.spec})"

    def __enter__(self) -> DaskRunner:
        import dask
        from distributed import Client, LocalCluster

        dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_FAILURES})
        try:
            if self.spec.address is None:
                self._cluster = LocalCluster(
                    n_workers=self.spec.workers, threads_per_worker=1, processes=True,
                    host="127.0.0.1", scheduler_port=0, dashboard_address=None,
                    worker_dashboard_address=None, silence_logs=logging.ERROR)
                self.client = Client(self._cluster)
            else:
                self.client = Client(self.spec.address, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError) as exc:
            self.__exit__(None, None, None)
            raise ClusterError(f"--cluster {self.spec}: cannot start or reach it ({exc})") \
                from exc
        return self

    def __exit__(self, *exc: object) -> None:
        for part in (self.client, self._cluster):
            if part is not None:
                try:
                    part.close()
                except Exception as err:  # closing must not hide the run's own error
                    logging.getLogger(__name__).warning("closing %s: %s", part, err)
        self.client = self._cluster = None

    @property
    def slots(self) -> int:
        """Worker threads in the cluster now (at least 1)."""
        return max(1, sum(self.client.nthreads().values()))

    def worker_pids(self) -> dict[str, int]:
        """Worker address -> pid (tests kill one)."""
        import os

        return self.client.run(os.getpid)

    def map_unordered(self, fn: Callable[[Any, Any], Any], tasks: Sequence[Any],
                      shared: Any) -> Iterator[Any]:
        """Submit every task; yield results as they finish (see ``ChunkRunner``)."""
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        if not tasks:
            return
        if self.client is None:
            raise RuntimeError("DaskRunner is used as a context: with DaskRunner(spec) as r")
        run = uuid.uuid4().hex[:8]
        shared_f = self.client.scatter(shared, broadcast=True, hash=False)
        futures = [self.client.submit(fn, t, shared_f, pure=False, key=f"chunk-{run}-{i}")
                   for i, t in enumerate(tasks)]
        try:
            for fut in as_completed(futures):
                try:
                    yield fut.result()
                except KilledWorker as exc:
                    raise ClusterError(
                        f"--cluster {self.spec}: a chunk lost {ALLOWED_FAILURES} workers "
                        f"({exc}); the chunks saved so far are kept, re-run to resume") from exc
        finally:
            self.client.cancel([f for f in futures if not f.done()])
