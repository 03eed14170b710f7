"""Atomic file writers: a reader sees the old file or the complete new one, never half of it;
and the one parquet reader (``read_parquet``).

Every writer goes through :func:`atomic_path`: it hands out a temporary path in the SAME
directory as the target (so the final ``os.replace`` is a rename within one file system and
therefore atomic), flushes it to disk, then renames it over the target. On any error the
temporary file is removed and the target is left untouched (DESIGN.md, "Failure behaviour").

A process killed hard (SIGKILL, power loss) cannot remove its temporary file. Temporary names
carry the writer's pid (``.<target>.<pid>-<random>.tmp``), so :func:`remove_stale_temps` can tell
a leftover of a dead writer from a file another live process is still writing, and removes only
names of that shape: never anything this module did not create.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

TEMP_SUFFIX = ".tmp"
#: ``.<target>.<pid>-<12 hex>.tmp``; the older ``.<target>.<12 hex>.tmp`` (no pid) is matched too.
_TEMP_RE = re.compile(r"^\.(?P<target>.+)\.(?:(?P<pid>\d+)-)?[0-9a-f]{12}\.tmp$")
#: A pid-less (older) temporary file is only removed once it is this old: its writer is unknown.
LEGACY_TEMP_AGE_S = 3600.0


def _temp_name(target: Path) -> Path:
    # Hidden and suffixed so globbing for "*.parquet" never picks up a file being written; the
    # pid makes names unique across processes and lets a later run spot a dead writer's file.
    return target.with_name(
        f".{target.name}.{os.getpid()}-{secrets.token_hex(6)}{TEMP_SUFFIX}"
    )


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _is_stale_temp(path: Path, prefix: str, now: float) -> bool:
    m = _TEMP_RE.match(path.name)
    if m is None or not m["target"].startswith(prefix):
        return False
    if m["pid"] is not None:
        return not _pid_alive(int(m["pid"]))
    try:
        return now - path.stat().st_mtime > LEGACY_TEMP_AGE_S
    except OSError:
        return False


def _dirs(root: Path, depth: int) -> Iterator[Path]:
    yield root
    if depth > 0:
        for child in sorted(root.iterdir()):
            if child.is_dir() and not child.is_symlink():
                yield from _dirs(child, depth - 1)


def remove_stale_temps(
    directory: str | os.PathLike[str], *, prefix: str = "", depth: int = 0
) -> list[Path]:
    """Remove this module's temporary files left in ``directory`` by writers that died.

    Only names of the :func:`atomic_path` shape whose target starts with ``prefix`` are
    considered, in ``directory`` and its sub-folders down to ``depth`` levels; a file whose
    writer is still alive is kept. Returns the removed paths (none when ``directory`` does not
    exist).
    """
    root = Path(directory)
    if not root.is_dir():
        return []
    now, removed = time.time(), []
    for folder in _dirs(root, depth):
        for path in folder.glob(f".*{TEMP_SUFFIX}"):
            if path.is_file() and _is_stale_temp(path, prefix, now):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                    removed.append(path)
    return removed


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
        df.to_parquet(tmp, compression=compression, index=index, filesystem=_local_fs(),
                      **kwargs)
    return Path(path)


def _local_fs() -> Any:
    import pyarrow.fs

    return pyarrow.fs.LocalFileSystem()


def read_parquet(path: str | os.PathLike[str], **kwargs: Any) -> pd.DataFrame:
    """``pd.read_parquet`` of a local file or folder, opened by Arrow itself.

    Given a path, pandas opens the file with Python's ``open`` and hands Arrow that file object;
    Arrow's thread pool may drop its last reference to it later, which takes the GIL. When that
    happens while the interpreter is exiting, the pool thread is torn down inside a C++
    destructor and the process aborts ("terminate called without an active exception", exit
    134) after its work is done. A file Arrow opens itself needs no GIL to close.
    """
    import pandas as pd

    try:
        return pd.read_parquet(path, filesystem=_local_fs(), **kwargs)
    except FileNotFoundError:  # Arrow's message is the bare path: say what is wrong, as open() does
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path)) from None
