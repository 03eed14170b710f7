"""Atomic file writers: a reader sees the old file or the complete new one, never half of it.

Every writer goes through :func:`atomic_path`: it hands out a temporary path in the SAME
directory as the target (so the final ``os.replace`` is a rename within one file system and
therefore atomic), flushes it to disk, then renames it over the target. On any error the
temporary file is removed and the target is left untouched (DESIGN.md, "Failure behaviour").
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

TEMP_SUFFIX = ".tmp"


def _temp_name(target: Path) -> Path:
    # Hidden and suffixed so globbing for "*.parquet" never picks up a file being written.
    return target.with_name(f".{target.name}.{secrets.token_hex(6)}{TEMP_SUFFIX}")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    # Makes the rename itself durable; not every platform/file system supports it.
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success rename it over ``path``.

    The caller writes the complete file at the yielded path (with any library). When the block
    exits normally the file is fsynced and atomically renamed to ``path``; when it raises, the
    temporary file is deleted, ``path`` is unchanged and the exception propagates. The parent
    directory must exist.
    """
    target = Path(path)
    if not target.parent.is_dir():
        raise FileNotFoundError(f"directory does not exist: {target.parent}")
    tmp = _temp_name(target)
    # Reserve the name with the default permissions (0o666 minus umask), unlike mkstemp's 0o600.
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        if fsync:
            _fsync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    if fsync:
        _fsync_dir(target.parent)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, fsync: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(
    path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8", fsync: bool = True
) -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    return atomic_write_bytes(path, text.encode(encoding), fsync=fsync)


def atomic_write_parquet(
    df: pd.DataFrame,
    path: str | os.PathLike[str],
    *,
    compression: str = "zstd",
    index: bool = False,
    fsync: bool = True,
    **kwargs: Any,
) -> Path:
    """Write ``df`` as parquet at ``path`` atomically and return the path.

    The index is dropped by default: DOLPHIN frames carry their keys (``timestamp``, ``symbol``)
    as columns. Extra keyword arguments go to ``DataFrame.to_parquet``.
    """
    with atomic_path(path, fsync=fsync) as tmp:
        df.to_parquet(tmp, compression=compression, index=index, **kwargs)
    return Path(path)
