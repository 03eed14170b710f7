"""The run index: one JSON line per finished command run, read by ``dolphin runs list``.

An append-only JSONL file, ``runs/index.jsonl`` under the working directory (``DOLPHIN_RUNS_INDEX``
names another file). Each line is written whole by one ``write`` on a descriptor opened with
``O_APPEND`` under an exclusive ``flock``, so two commands finishing at once never interleave
their lines; a reader skips a line that does not parse (a torn last line after a power cut)
instead of failing. Recording is best effort: an index that cannot be written costs a warning,
never the run whose results are already saved.

A line: ``id`` (UTC time and 6 random hex digits), ``time`` (ISO 8601 UTC), ``command``,
``argv``, ``config_id`` (None for a multi-config run), ``span`` (first and last day of the data),
``metrics`` (a few key numbers), ``out`` (where the run wrote), ``version``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ENV_INDEX = "DOLPHIN_RUNS_INDEX"
DEFAULT_INDEX = Path("runs") / "index.jsonl"


def index_path() -> Path:
    """Return the index file: ``$DOLPHIN_RUNS_INDEX`` or ``runs/index.jsonl``."""
    return Path(os.environ.get(ENV_INDEX) or DEFAULT_INDEX)


def new_run_id(now: dt.datetime | None = None) -> str:
    """Return a run id: ``YYYYmmddTHHMMSSZ-`` and 6 random hex digits."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):  # numpy scalars
        v = v.item()
    if isinstance(v, float) and v != v:
        return None
    return v


def record_run(
    command: str,
    argv: Sequence[str] | None,
    out: str | os.PathLike[str] | None,
    config_id: str | None,
    span: Sequence[str] | None,
    metrics: Mapping[str, Any] | None,
    *,
    index: str | os.PathLike[str] | None = None,
) -> dict[str, Any] | None:
    """Append one run to the index; return the line written, or None when it could not be."""
    now = dt.datetime.now(dt.UTC)
    entry = {
        "id": new_run_id(now),
        "time": now.isoformat(timespec="seconds"),
        "command": command,
        "argv": list(argv) if argv is not None else None,
        "config_id": config_id,
        "span": [str(s) for s in span] if span else None,
        "metrics": {k: _plain(v) for k, v in (metrics or {}).items()},
        "out": str(out) if out is not None else None,
    }
    from dolphin import __version__

    entry["version"] = __version__
    path = Path(index) if index is not None else index_path()
    line = (json.dumps(entry, sort_keys=False, default=str) + "\n").encode()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
        finally:
            os.close(fd)  # closing releases the lock
    except OSError as exc:
        log.warning("run index %s not written (%s); the run's outputs are saved", path, exc)
        return None
    return entry


def read_runs(index: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Return every run in the index, oldest first; lines that do not parse are skipped."""
    path = Path(index) if index is not None else index_path()
    runs: list[dict[str, Any]] = []
    with contextlib.suppress(FileNotFoundError), path.open(encoding="utf-8") as f:
        for n, text in enumerate(f, 1):
            try:
                entry = json.loads(text)
            except ValueError:
                log.debug("%s:%d: not a JSON line, skipped", path, n)
                continue
            if isinstance(entry, dict) and "id" in entry:
                runs.append(entry)
    return runs
