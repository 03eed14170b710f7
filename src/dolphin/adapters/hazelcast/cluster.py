"""Local Hazelcast members: resolve the jar, start members, wait for health, stop them.

The jar is ``com.hazelcast:hazelcast:5.6.0`` from Maven Central, cached under
``~/.cache/dolphin/hazelcast/`` and checked against the ``.sha1`` Maven Central publishes beside
it (``HAZELCAST_JAR`` points at a jar to use instead). Members run
``com.hazelcast.core.server.HazelcastMemberStarter`` with the member config shipped in
``dolphin/resources/hazelcast/``; each member writes ``member-PORT.pid`` and ``member-PORT.log``
in a state directory, which is what ``stop`` and ``status`` read.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from dolphin.core.errors import ConfigError, DolphinError
from dolphin.core.io import atomic_path, atomic_write_bytes, atomic_write_text, remove_stale_temps
from dolphin.store.errors import StoreUnavailableError

HAZELCAST_VERSION = "5.6.0"
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
MEMBER_MAIN = "com.hazelcast.core.server.HazelcastMemberStarter"
CONFIG_RESOURCE = "resources/hazelcast/dolphin-member.yaml"

# Hazelcast reaches into JDK internals for metrics and fast I/O; the official start script
# opens them, and without these Java 17 prints warnings and some metrics go missing.
JAVA_MODULE_FLAGS = (
    "--add-modules=java.se",
    "--add-exports=java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens=java.base/java.lang=ALL-UNNAMED",
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens=java.management/sun.management=ALL-UNNAMED",
    "--add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED",
)


class ClusterStartError(DolphinError):
    """A member did not start or the cluster did not become healthy in time."""

    exit_code = 5


def _xdg(var: str, fallback: str) -> Path:
    return Path(os.environ.get(var) or Path.home() / fallback)


def default_cache_dir() -> Path:
    """Where the jar is cached: ``$DOLPHIN_CACHE_DIR`` or ``~/.cache/dolphin``, + ``hazelcast``."""
    base = os.environ.get("DOLPHIN_CACHE_DIR")
    return (Path(base) if base else _xdg("XDG_CACHE_HOME", ".cache") / "dolphin") / "hazelcast"


def default_state_dir() -> Path:
    """Where pid files and logs go: ``$DOLPHIN_HZ_STATE_DIR`` or ``~/.local/state/dolphin/hz``."""
    base = os.environ.get("DOLPHIN_HZ_STATE_DIR")
    return Path(base) if base else _xdg("XDG_STATE_HOME", ".local/state") / "dolphin" / "hz"


def sha1_of(path: Path) -> str:
    """Return the hex SHA-1 of a file."""
    digest = hashlib.sha1(usedforsecurity=False)
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _http_get(url: str, timeout_s: float = 120.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        return resp.read()


def jar_url(version: str = HAZELCAST_VERSION) -> str:
    """Return the Maven Central URL of the Hazelcast jar."""
    return f"{MAVEN_CENTRAL}/com/hazelcast/hazelcast/{version}/hazelcast-{version}.jar"


def jar_override(env: str) -> Path | None:
    """Return the jar the environment variable ``env`` names (None when unset); a name that is
    not a file is a ConfigError."""
    override = os.environ.get(env)
    if not override:
        return None
    path = Path(override)
    if not path.is_file():
        raise ConfigError(f"{env}={path} does not name a file")
    return path


def resolve_jar(
    version: str = HAZELCAST_VERSION,
    *,
    cache_dir: Path | None = None,
    fetch: Callable[[str], bytes] = _http_get,
) -> Path:
    """Return a verified Hazelcast jar, downloading it into the cache when missing.

    ``HAZELCAST_JAR`` wins when set. A cached jar is re-checked against its stored ``.sha1``;
    a download is written to a temporary name and renamed only after the checksum matches, so
    a concurrent or interrupted download never leaves a bad jar behind (and the next run removes
    the temporary file a killed download left).
    """
    override = jar_override("HAZELCAST_JAR")
    if override is not None:
        return override
    cache = cache_dir or default_cache_dir()
    jar = cache / f"hazelcast-{version}.jar"
    sha_file = jar.with_name(jar.name + ".sha1")
    if jar.is_file() and sha_file.is_file() and sha1_of(jar) == sha_file.read_text().strip():
        return jar
    return _download_jar(jar_url(version), jar, fetch)


def _download_jar(url: str, jar: Path, fetch: Callable[[str], bytes]) -> Path:
    jar.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(jar.parent, prefix=jar.name)
    try:
        expected = fetch(url + ".sha1").decode().split()[0].strip().lower()
        body = fetch(url)
    except OSError as exc:
        raise StoreUnavailableError(f"cannot download {url}: {exc}") from exc
    actual = hashlib.sha1(body, usedforsecurity=False).hexdigest()
    if actual != expected:
        raise ConfigError(f"checksum mismatch for {url}: got {actual}, expected {expected}")
    # The jar first, then its checksum: a jar without a matching .sha1 is downloaded again.
    with atomic_path(jar) as tmp:
        tmp.write_bytes(body)
    atomic_write_text(jar.with_name(jar.name + ".sha1"), expected + "\n")
    return jar


def member_config_path(state_dir: Path) -> Path:
    """Return a filesystem path of the shipped member config (copied out of a zip if needed)."""
    res = resources.files("dolphin").joinpath(CONFIG_RESOURCE)
    if isinstance(res, Path) and res.is_file():
        return res
    state_dir.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(state_dir / "dolphin-member.yaml", res.read_bytes())


@dataclass(frozen=True, slots=True, kw_only=True)
class ClusterSpec:
    """A local cluster: ``members`` members on consecutive loopback ports from ``base_port``."""

    members: int = 1
    base_port: int = 5701
    cluster_name: str = "dolphin"
    partitions: int = 71
    heap: str = "512m"
    state_dir: Path = field(default_factory=default_state_dir)

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ConfigError(f"partitions must be positive (got {self.partitions})")
        if not 1 <= self.members <= 9:
            raise ConfigError(f"members must be between 1 and 9 (got {self.members})")
        if not 1024 <= self.base_port <= 65535 - self.members:
            raise ConfigError(
                f"base port {self.base_port} out of range 1024..{65535 - self.members}"
            )

    @property
    def ports(self) -> tuple[int, ...]:
        """The member ports."""
        return tuple(range(self.base_port, self.base_port + self.members))

    @property
    def addresses(self) -> tuple[str, ...]:
        """The member addresses, as a client wants them."""
        return tuple(f"127.0.0.1:{p}" for p in self.ports)

    def java_command(
        self, jar: Path, config: Path, port: int, processors: Path | None = None
    ) -> list[str]:
        """Return the command line of the member on ``port`` (``processors``: the entry-processor
        jar, ``processors_jar``, put on the classpath beside Hazelcast's)."""
        classpath = os.pathsep.join(str(p) for p in (jar, processors) if p is not None)
        return [
            shutil.which("java") or "java",
            f"-Xmx{self.heap}",
            # Serial GC: a test member holds little, and the machine's cores are shared.
            "-XX:+UseSerialGC",
            *JAVA_MODULE_FLAGS,
            f"-Dhazelcast.config={config}",
            f"-Ddolphin.hz.cluster={self.cluster_name}",
            f"-Ddolphin.hz.port={port}",
            f"-Ddolphin.hz.members={','.join(self.addresses)}",
            f"-Ddolphin.hz.partitions={self.partitions}",
            "-cp",
            classpath,
            MEMBER_MAIN,
        ]


def pid_file(state_dir: Path, port: int) -> Path:
    """Return the pid file of the member on ``port``."""
    return state_dir / f"member-{port}.pid"


def log_file(state_dir: Path, port: int) -> Path:
    """Return the log file of the member on ``port``."""
    return state_dir / f"member-{port}.log"


def port_open(port: int, timeout_s: float = 0.2) -> bool:
    """Report whether something accepts connections on 127.0.0.1:``port``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # Linux only: ask the kernel to SIGTERM the member when the process that started it dies,
    # so a test run killed hard leaves no Java process behind on a shared machine.
    import ctypes

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def spawn_member(
    spec: ClusterSpec, port: int, jar: Path, *, tied: bool = False, processors: Path | None = None
) -> int:
    """Start the member on ``port`` in the background; write its pid file; return its pid.

    ``tied`` members die with this process (tests and benchmarks); untied ones run in their
    own session and outlive the command that started them (``dolphin hz start``).
    """
    spec.state_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(spec.state_dir)  # pid files / configs of a SIGKILLed earlier start
    config = member_config_path(spec.state_dir)
    with log_file(spec.state_dir, port).open("ab") as log:
        proc = subprocess.Popen(
            spec.java_command(jar, config, port, processors),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=not tied,
            preexec_fn=_die_with_parent if tied and sys.platform == "linux" else None,
        )
    atomic_write_text(pid_file(spec.state_dir, port), f"{proc.pid}\n")
    return proc.pid


def read_pid(state_dir: Path, port: int) -> int | None:
    """Return the pid recorded for ``port`` if that process is still a Hazelcast member."""
    path = pid_file(state_dir, port)
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if is_member_process(pid) else None


def is_member_process(pid: int) -> bool:
    """Report whether ``pid`` is alive and (where /proc exists) runs the member starter."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    _reap(pid)
    if not Path("/proc").is_dir():
        return True  # no /proc to tell a reused pid from ours: trust the pid file
    return _cmdline_names_member(pid)


def _cmdline_names_member(pid: int, settle_s: float = 1.0) -> bool:
    # An unrelated process that reused the pid has another command line. Right after spawn the
    # child may still be inside exec, with an empty command line: wait for it to settle. A
    # zombie also has an empty command line, and is reported dead.
    deadline = time.monotonic() + settle_s
    while True:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        if stat.rpartition(")")[2].split()[0] in ("Z", "X"):
            return False
        if cmdline or time.monotonic() > deadline:
            return MEMBER_MAIN.encode() in cmdline
        time.sleep(0.02)


def _reap(pid: int) -> None:
    # A member started by this process lingers as a zombie after it exits; collect it so
    # liveness checks do not see a dead member as alive.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def recorded_ports(state_dir: Path) -> list[int]:
    """Return the ports that have a pid file in ``state_dir``."""
    ports = []
    for path in state_dir.glob("member-*.pid"):
        try:
            ports.append(int(path.stem.removeprefix("member-")))
        except ValueError:
            continue
    return sorted(ports)


def log_tail(state_dir: Path, port: int, lines: int = 15) -> str:
    """Return the last lines of a member's log (for error messages)."""
    try:
        text = log_file(state_dir, port).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def wait_exit(pid: int, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for ``pid`` to stop being a member; report whether it did."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not is_member_process(pid):
            return True
        time.sleep(0.05)
    return not is_member_process(pid)


def kill_member(state_dir: Path, port: int, sig: int = signal.SIGKILL) -> bool:
    """Send ``sig`` to the member on ``port``; report whether one was running."""
    pid = read_pid(state_dir, port)
    if pid is None:
        return False
    os.kill(pid, sig)
    if sig == signal.SIGKILL:
        wait_exit(pid, 5.0)
    return True


def stop_member(state_dir: Path, port: int, timeout_s: float = 15.0) -> bool:
    """SIGTERM the member on ``port``, SIGKILL it after ``timeout_s``; report if one ran."""
    pid = read_pid(state_dir, port)
    stopped = pid is not None
    if pid is not None:
        try:
            os.kill(pid, signal.SIGTERM)
            if not wait_exit(pid, timeout_s):
                os.kill(pid, signal.SIGKILL)
                wait_exit(pid, 5.0)
        except ProcessLookupError:
            pass
    pid_file(state_dir, port).unlink(missing_ok=True)
    return stopped
