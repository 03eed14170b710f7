"""Where chunks of research work run: the port a cluster adapter implements.

A research driver (the sweep) cuts its work into chunks and saves each result as it arrives. By
default it runs them itself or in a local process pool; given a :class:`ChunkRunner` (e.g.
``adapters.cluster.DaskRunner``) it hands them over. The driver keeps the saving and the resume,
so a chunk computed anywhere is saved the same way, and the result does not depend on where, or
in which order, chunks ran.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class ChunkRunner(Protocol):
    """Runs ``fn(task, shared)`` for every task, in any order, anywhere."""

    @property
    def slots(self) -> int:
        """How many tasks it runs at once (a driver cuts its work into a few per slot)."""
        ...

    def map_unordered(self, fn: Callable[[T, Any], R], tasks: Sequence[T],
                      shared: Any) -> Iterator[R]:
        """Yield each result as its task finishes. ``shared`` (read-only, sent once to each
        place that runs tasks) is the second argument of every call; ``fn`` is a module-level
        function. Closing the iterator early cancels the tasks not yet finished."""
        ...


_SHARED: dict[str, Any] = {}


def _pool_init(shared: Any, parent_pid: int) -> None:
    from dolphin.core.procs import worker_init

    worker_init(parent_pid)  # die with the parent, leave Ctrl-C to it
    _SHARED["value"] = shared


def _pool_call(fn: Callable[[Any, Any], Any], task: Any) -> Any:
    return fn(task, _SHARED["value"])


class PoolRunner:
    """A :class:`ChunkRunner` on ``workers`` local processes (forked: ``shared`` is inherited,
    not sent); ``workers=1`` runs the tasks in this process, in order."""

    def __init__(self, workers: int) -> None:
        from dolphin.core.errors import ConfigError

        if workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {workers}")
        self.workers = int(workers)

    def __repr__(self) -> str:
        return f"PoolRunner({self.workers})"

    @property
    def slots(self) -> int:
        return self.workers

    def map_unordered(self, fn: Callable[[T, Any], R], tasks: Sequence[T],
                      shared: Any) -> Iterator[R]:
        """Yield each result as its task finishes (see ``ChunkRunner``)."""
        import concurrent.futures as cf
        import multiprocessing as mp
        import os

        if self.workers == 1 or len(tasks) < 2:
            for t in tasks:
                yield fn(t, shared)
            return
        pool = cf.ProcessPoolExecutor(min(self.workers, len(tasks)),
                                      mp_context=mp.get_context("fork"), initializer=_pool_init,
                                      initargs=(shared, os.getpid()))
        try:
            futures = [pool.submit(_pool_call, fn, t) for t in tasks]
            for fut in cf.as_completed(futures):
                yield fut.result()
        except BaseException:  # error, Ctrl-C or the consumer closing us: stop the workers now
            _abort(pool)
            raise
        pool.shutdown()


def _abort(pool: Any) -> None:
    """Stop a pool without waiting for running tasks (``shutdown`` alone would wait)."""
    import contextlib

    held = getattr(pool, "_processes", None)  # private: the executor has no public kill
    procs = list(held.values()) if isinstance(held, dict) else []
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.kill()
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.join(5.0)
