"""Atomic writers leave the old file or the whole new one, and never a temporary file."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pytest

from dolphin.core.io import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_parquet,
    atomic_write_text,
    read_parquet,
)

SRC = Path(__file__).resolve().parents[3] / "src" / "dolphin"


def test_write_text_creates_the_file_and_no_temp(tmp_path):
    path = atomic_write_text(tmp_path / "a.txt", "héllo\n")
    assert path.read_text(encoding="utf-8") == "héllo\n"
    assert os.listdir(tmp_path) == ["a.txt"]


def test_write_bytes_replaces_an_existing_file(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"old")
    atomic_write_bytes(tmp_path / "a.bin", b"new")
    assert (tmp_path / "a.bin").read_bytes() == b"new"


def test_write_parquet_round_trips_without_index(tmp_path):
    df = pd.DataFrame({"timestamp": pd.date_range("2024", periods=3, tz="UTC"), "x": [1.0, 2, 3]})
    atomic_write_parquet(df, tmp_path / "f.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "f.parquet"), df)


def test_failure_keeps_the_old_file_and_removes_the_temp(tmp_path):
    target = tmp_path / "f.parquet"
    target.write_bytes(b"old")
    bad = pd.DataFrame({"x": [object()]})  # pyarrow cannot store a bare object
    with pytest.raises(Exception):  # noqa: B017 - whatever pyarrow raises must propagate
        atomic_write_parquet(bad, target)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.parquet"]


def test_failure_without_old_file_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.bin") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash mid-write")
    assert os.listdir(tmp_path) == []


def test_missing_directory_is_an_error_and_writes_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_write_text(tmp_path / "nope" / "a.txt", "x")
    assert os.listdir(tmp_path) == []


def test_new_file_gets_default_permissions_not_private(tmp_path):
    umask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


# ------------------------------------------------------------------ temp names and cleanup
def _dead_pid() -> int:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                         capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_temp_names_carry_the_pid_and_a_random_suffix(tmp_path):
    with atomic_path(tmp_path / "f.bin") as a, atomic_path(tmp_path / "g.bin") as b:
        assert a.name.startswith(f".f.bin.{os.getpid()}-") and a.name.endswith(".tmp")
        assert b.name.startswith(f".g.bin.{os.getpid()}-")
        a.write_bytes(b"a")
        b.write_bytes(b"b")
    with atomic_path(tmp_path / "f.bin") as c:
        assert c.name != a.name  # random part: two writers never collide
        c.write_bytes(b"c")


def test_stale_temps_of_dead_writers_are_removed_and_nothing_else(tmp_path):
    from dolphin.core.io import remove_stale_temps

    dead = _dead_pid()
    stale = tmp_path / f".out.parquet.{dead}-0123456789ab.tmp"
    live = tmp_path / f".out.parquet.{os.getpid()}-0123456789ab.tmp"
    foreign = [tmp_path / "notes.tmp", tmp_path / ".editor.swp.tmp", tmp_path / "out.parquet"]
    for p in (stale, live, *foreign):
        p.write_bytes(b"x")
    assert remove_stale_temps(tmp_path) == [stale]
    assert live.exists() and all(p.exists() for p in foreign)


def test_stale_temp_cleanup_honours_prefix_and_depth(tmp_path):
    from dolphin.core.io import remove_stale_temps

    dead = _dead_pid()
    (tmp_path / "sub" / "deeper").mkdir(parents=True)
    a = tmp_path / f".sweep.html.{dead}-0123456789ab.tmp"
    b = tmp_path / f".other.html.{dead}-0123456789ab.tmp"
    c = tmp_path / "sub" / f".x.parquet.{dead}-0123456789ab.tmp"
    d = tmp_path / "sub" / "deeper" / f".y.parquet.{dead}-0123456789ab.tmp"
    for p in (a, b, c, d):
        p.write_bytes(b"x")
    assert remove_stale_temps(tmp_path, prefix="sweep") == [a]
    assert remove_stale_temps(tmp_path, depth=1) == [b, c]
    assert d.exists() and remove_stale_temps(tmp_path / "missing") == []


def test_old_pidless_temps_are_removed_only_once_old(tmp_path):
    from dolphin.core.io import LEGACY_TEMP_AGE_S, remove_stale_temps

    old = tmp_path / ".a.parquet.0123456789ab.tmp"
    new = tmp_path / ".b.parquet.0123456789ab.tmp"
    old.write_bytes(b"x")
    new.write_bytes(b"x")
    past = os.path.getmtime(old) - LEGACY_TEMP_AGE_S - 10
    os.utime(old, (past, past))
    assert remove_stale_temps(tmp_path) == [old]
    assert new.exists()


def test_read_parquet_reads_what_pandas_reads_with_the_same_errors(tmp_path):
    df = pd.DataFrame({"timestamp": pd.date_range("2024", periods=4, tz="UTC"),
                       "symbol": list("abab"), "x": [1.0, 2, 3, 4]})
    atomic_write_parquet(df, tmp_path / "f.parquet")
    for path in (tmp_path / "f.parquet", str(tmp_path / "f.parquet")):
        pd.testing.assert_frame_equal(read_parquet(path), pd.read_parquet(path))
    pd.testing.assert_frame_equal(read_parquet(tmp_path / "f.parquet", columns=["x"]), df[["x"]])
    with pytest.raises(FileNotFoundError, match=r"No such file or directory.*missing\.parquet"):
        read_parquet(tmp_path / "missing.parquet")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(Exception, match="Parquet magic bytes"):
        read_parquet(tmp_path / "bad.parquet")


def test_no_module_hands_arrow_a_python_file_object():
    # pandas opens a parquet path with Python's open() and gives Arrow the file object, whose
    # late release in Arrow's thread pool can abort the process at exit: every parquet read
    # and write goes through core.io, which lets Arrow open the file itself
    calls = re.compile(r"\bpd\.read_parquet\(|\.to_parquet\(")
    offenders = [f"{p.relative_to(SRC)}:{i}" for p in SRC.rglob("*.py")
                 if p != SRC / "core" / "io.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1) if calls.search(line)]
    assert offenders == []
