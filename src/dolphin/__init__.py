"""DOLPHIN: correlation-structure crypto perpetual-futures trading system."""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

__version__ = "0.1.0"


def _kernel_source_hash() -> str:
    """SHA-256 (16 hex digits) of every package module that holds a numba kernel.

    Numba's on-disk cache keys a function on its own file only, so an edited kernel that another
    file inlines could run stale code. Naming the cache directory by the hash of all kernel
    sources makes any edit start a fresh cache.
    """
    h = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        data = path.read_bytes()
        if b"njit" in data:
            h.update(str(path.relative_to(root)).encode())
            h.update(data)
    return h.hexdigest()[:16]


def _configure_numba_cache() -> None:
    if os.environ.get("NUMBA_CACHE_DIR"):
        return  # the user chose a cache directory: keep it
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    cache = str(base / "dolphin" / "numba" / _kernel_source_hash())
    os.environ["NUMBA_CACHE_DIR"] = cache
    if "numba" in sys.modules:  # numba read its config at import: set it there too
        from numba.core import config

        config.CACHE_DIR = cache


_configure_numba_cache()
