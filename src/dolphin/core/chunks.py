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
