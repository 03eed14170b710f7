"""Output manifests: remove the files an earlier run wrote that this run does not.

A command that writes into a folder records what it wrote in ``<folder>/.dolphin-manifest.json``
under a key (the output's name; a folder-owning command uses ``"."``). At the end of the next run
with the same key, :func:`record_outputs` removes every file the previous entry listed that this
run did not write, so a folder never mixes files of two runs (e.g. the other friction's trades of
an earlier backtest). Safe by construction: only names a manifest of this module listed are ever
removed, only regular files (or symlinks) directly inside or below the folder, never a folder and
never an unknown file. The manifest is replaced atomically after the outputs are written, so a
run that fails midway leaves the earlier run's files and manifest as they were.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dolphin.core.io import atomic_write_text

log = logging.getLogger(__name__)

MANIFEST = ".dolphin-manifest.json"


def _read(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _relative(folder: Path, path: Path) -> str | None:
    """Return ``path`` relative to ``folder`` when it lies inside it, else None."""
    try:
        rel = Path(os.path.abspath(path)).relative_to(os.path.abspath(folder))
    except ValueError:
        return None
    return None if rel == Path(".") or ".." in rel.parts else rel.as_posix()


def record_outputs(
    folder: str | os.PathLike[str], files: Iterable[str | os.PathLike[str]], *, key: str = ".",
    command: str = "",
) -> list[Path]:  # fmt: skip
    """Record ``files`` (this run's outputs in ``folder``) under ``key``; remove the files the
    previous run with that key listed and this one did not write; return what was removed."""
    folder = Path(folder)
    now = {r for f in files if (r := _relative(folder, Path(f))) is not None}
    data = _read(folder)
    entries = data.get("outputs") if isinstance(data.get("outputs"), dict) else {}
    before = entries.get(key, {}).get("files", []) if isinstance(entries.get(key), dict) else []
    removed: list[Path] = []
    for rel in before:
        if not isinstance(rel, str) or rel in now:
            continue
        path = folder / rel
        if _relative(folder, path) != rel or rel == MANIFEST:
            continue  # a hand-edited entry pointing outside the folder: never followed
        if path.is_symlink() or path.is_file():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    entries[key] = {"command": command, "files": sorted(now),
                    "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / MANIFEST, json.dumps({"outputs": entries}, indent=1) + "\n")
    if removed:
        log.info("removed %d file(s) an earlier run wrote and this one did not: %s",
                 len(removed), ", ".join(p.name for p in removed[:5]))  # fmt: skip
    return removed
