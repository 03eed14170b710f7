"""Jar resolution, member configuration and pid bookkeeping, without starting Java."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from dolphin.adapters.hazelcast.cluster import (
    MEMBER_MAIN,
    ClusterSpec,
    jar_url,
    member_config_path,
    pid_file,
    read_pid,
    recorded_ports,
    resolve_jar,
)
from dolphin.adapters.hazelcast.control import cluster_status, stop_cluster
from dolphin.cli import build_parser
from dolphin.core.errors import ConfigError

JAR_BYTES = b"PK\x03\x04 not really a jar"
JAR_SHA1 = hashlib.sha1(JAR_BYTES, usedforsecurity=False).hexdigest()


class FakeCentral:
    """Serves one jar and its .sha1 like Maven Central; counts requests."""

    def __init__(self, body: bytes = JAR_BYTES, sha1: str = JAR_SHA1) -> None:
        self.body, self.sha1, self.requests = body, sha1, []

    def __call__(self, url: str) -> bytes:
        self.requests.append(url)
        return (
            (self.sha1 + "  hazelcast-5.6.0.jar\n").encode() if url.endswith(".sha1") else self.body
        )


@pytest.fixture(autouse=True)
def _no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HAZELCAST_JAR", raising=False)


def test_jar_is_downloaded_verified_and_then_served_from_the_cache(tmp_path: Path) -> None:
    central = FakeCentral()
    jar = resolve_jar(cache_dir=tmp_path, fetch=central)
    assert jar == tmp_path / "hazelcast-5.6.0.jar" and jar.read_bytes() == JAR_BYTES
    assert central.requests == [jar_url() + ".sha1", jar_url()]
    assert resolve_jar(cache_dir=tmp_path, fetch=central) == jar
    assert len(central.requests) == 2
    assert not list(tmp_path.glob("*.tmp"))


def test_a_checksum_mismatch_leaves_no_jar_behind(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="checksum"):
        resolve_jar(cache_dir=tmp_path, fetch=FakeCentral(sha1="0" * 40))
    assert list(tmp_path.iterdir()) == []


def test_a_corrupted_cached_jar_is_fetched_again(tmp_path: Path) -> None:
    central = FakeCentral()
    jar = resolve_jar(cache_dir=tmp_path, fetch=central)
    jar.write_bytes(b"truncated")
    assert resolve_jar(cache_dir=tmp_path, fetch=central).read_bytes() == JAR_BYTES
    assert len(central.requests) == 4


def test_hazelcast_jar_overrides_the_cache(tmp_path: Path, monkeypatch) -> None:
    own = tmp_path / "own.jar"
    own.write_bytes(b"x")
    monkeypatch.setenv("HAZELCAST_JAR", str(own))
    assert resolve_jar(cache_dir=tmp_path / "c", fetch=FakeCentral()) == own
    monkeypatch.setenv("HAZELCAST_JAR", str(tmp_path / "missing.jar"))
    with pytest.raises(ConfigError, match="HAZELCAST_JAR"):
        resolve_jar(cache_dir=tmp_path / "c")


def test_the_shipped_member_config_has_the_required_settings(tmp_path: Path) -> None:
    config = yaml.safe_load(member_config_path(tmp_path).read_text())["hazelcast"]
    props = config["properties"]
    assert props["hazelcast.phone.home.enabled"] is False
    assert props["hazelcast.map.invalidation.batch.enabled"] is False
    assert props["hazelcast.socket.bind.any"] is False
    join = config["network"]["join"]
    assert join["multicast"]["enabled"] is False and join["tcp-ip"]["enabled"] is True
    assert config["network"]["interfaces"]["interfaces"] == ["127.0.0.1"]
    assert config["map"]["default"]["backup-count"] == 1
    assert config["cluster-name"] == "${dolphin.hz.cluster}"


def test_member_command_line_fills_the_config_variables(tmp_path: Path) -> None:
    spec = ClusterSpec(members=2, base_port=5801, state_dir=tmp_path)
    cmd = spec.java_command(Path("/j.jar"), Path("/c.yaml"), 5802)
    assert "-Xmx512m" in cmd and cmd[-1] == MEMBER_MAIN
    assert "-Dhazelcast.config=/c.yaml" in cmd and "-Ddolphin.hz.port=5802" in cmd
    assert "-Ddolphin.hz.members=127.0.0.1:5801,127.0.0.1:5802" in cmd
    assert "-Ddolphin.hz.cluster=dolphin" in cmd
    assert spec.addresses == ("127.0.0.1:5801", "127.0.0.1:5802")


@pytest.mark.parametrize(
    "kwargs", [{"members": 0}, {"members": 10}, {"base_port": 80}, {"partitions": 0}]
)
def test_cluster_spec_rejects_nonsense(kwargs: dict, tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        ClusterSpec(state_dir=tmp_path, **kwargs)


def test_a_pid_file_of_a_process_that_is_not_a_member_is_ignored(tmp_path: Path) -> None:
    pid_file(tmp_path, 5801).write_text(f"{os.getpid()}\n")  # alive, but not Hazelcast
    pid_file(tmp_path, 5802).write_text("not a pid\n")
    assert recorded_ports(tmp_path) == [5801, 5802]
    assert read_pid(tmp_path, 5801) is None and read_pid(tmp_path, 5802) is None
    members, view = cluster_status(tmp_path)
    assert [m.pid for m in members] == [None, None] and view.connected is False
    assert stop_cluster(tmp_path) == []
    assert recorded_ports(tmp_path) == []


def test_stop_sends_sigterm_to_a_recorded_member(tmp_path: Path) -> None:
    # A stand-in process whose command line names the member starter, as a real member's does.
    code = "import time; time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code, MEMBER_MAIN])
    try:
        pid_file(tmp_path, 5801).write_text(f"{proc.pid}\n")
        assert read_pid(tmp_path, 5801) == proc.pid
        started = time.monotonic()
        assert stop_cluster(tmp_path, timeout_s=5) == [5801]
        assert time.monotonic() - started < 4  # went on SIGTERM, no SIGKILL needed
        # stop_cluster reaps its children, so Popen no longer sees the signal in the status.
        proc.wait(5)
        assert not pid_file(tmp_path, 5801).exists()
    finally:
        proc.kill()


def test_hz_command_parses_start_stop_status() -> None:
    parser = build_parser()
    args = parser.parse_args(["hz", "start", "--members", "2", "--base-port", "5801"])
    assert (args.members, args.base_port, args.cluster_name) == (2, 5801, "dolphin")
    assert callable(args.func)
    assert callable(parser.parse_args(["hz", "stop"]).func)
    assert callable(parser.parse_args(["hz", "status"]).func)


def _dead_pid() -> int:
    out = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                         capture_output=True, text=True, check=True)
    return int(out.stdout)


def test_a_download_killed_mid_write_leaves_a_temp_the_next_download_removes(tmp_path) -> None:
    stale = tmp_path / f".hazelcast-5.6.0.jar.{_dead_pid()}-0123456789ab.tmp"
    stale.write_bytes(b"half a jar")
    jar = resolve_jar(cache_dir=tmp_path, fetch=FakeCentral())
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [jar.name, jar.name + ".sha1"]
    assert (tmp_path / (jar.name + ".sha1")).read_text() == JAR_SHA1 + "\n"


def test_pid_files_are_written_through_the_atomic_writer(tmp_path, monkeypatch) -> None:
    from dolphin.adapters.hazelcast import cluster
    from dolphin.core import io as core_io

    class FakeProc:
        pid = 424242

    written: list[Path] = []
    real = core_io.atomic_path

    def spy(path, **kw):
        written.append(Path(path))
        return real(path, **kw)

    stale = tmp_path / f".member-5701.pid.{_dead_pid()}-0123456789ab.tmp"
    stale.write_text("1\n")
    monkeypatch.setattr(cluster.subprocess, "Popen", lambda *a, **k: FakeProc())
    monkeypatch.setattr(core_io, "atomic_path", spy)
    spec = ClusterSpec(state_dir=tmp_path)
    assert cluster.spawn_member(spec, 5701, tmp_path / "x.jar") == 424242
    assert pid_file(tmp_path, 5701).read_text() == "424242\n"
    assert pid_file(tmp_path, 5701) in written
    assert not stale.exists() and not list(tmp_path.glob(".*.tmp"))
