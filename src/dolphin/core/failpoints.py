"""Failpoints: kill this process at a named point, for crash-recovery tests (``kill -9``).

``DOLPHIN_FAILPOINTS="ledger.after_commit.ORDER=2,ledger.before_commit=40"`` makes the process
SIGKILL itself at the 2nd ORDER row just committed and inside the 40th append's open
transaction. The variable is read once, at the first ``hit``; without it ``hit`` is one dict
lookup. Names in use: ``ledger.before_commit``, ``ledger.after_commit`` and
``ledger.after_commit.<KIND>`` (``ledger.chain.Ledger.append``).
"""

from __future__ import annotations

import os
import signal

from dolphin.core.errors import ConfigError

ENV = "DOLPHIN_FAILPOINTS"

_armed: dict[str, int] | None = None
_hits: dict[str, int] = {}


def parse(spec: str) -> dict[str, int]:
    """Return ``{name: nth hit}`` from ``"name=N,name2=M"``; a bad entry is a ConfigError."""
    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, sep, n = part.partition("=")
        if not sep or not name or not n.isdigit() or int(n) < 1:
            raise ConfigError(f"{ENV}: bad failpoint {part!r} (expected name=N, N >= 1)")
        out[name] = int(n)
    return out


def hit(name: str) -> None:
    """Count a pass through failpoint ``name``; SIGKILL this process at its armed count."""
    global _armed
    if _armed is None:
        _armed = parse(os.environ.get(ENV, ""))
    if name not in _armed:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == _armed[name]:
        os.kill(os.getpid(), signal.SIGKILL)
