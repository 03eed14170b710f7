"""Atomic writers leave the old file or the whole new one, and never a temporary file."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from dolphin.core.io import (
    atomic_path,
    atomic_write_bytes,
    atomic_write_parquet,
    atomic_write_text,
)


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
