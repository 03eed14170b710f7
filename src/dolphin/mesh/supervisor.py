"""Start, supervise and stop a list of services as OS processes (``dolphin mesh``).

Generic: a service is a command line, an environment and a readiness check; what it does is
not this module's business (``dolphin.mesh.plan`` builds the list). The supervisor:

- starts the services in the given order, each only once the previous one is ready
  (``ready()`` true, or alive for ``READY_ALIVE_S`` when there is no check);
- appends each service's stdout and stderr to ``RUN_DIR/logs/NAME.log`` and keeps its pid in
  ``RUN_DIR/pids/NAME.pid``;
- ties every child to itself with ``PR_SET_PDEATHSIG=SIGKILL``, so even a SIGKILLed
  supervisor leaves no orphan (Linux; the child's own children are the child's business);
- restarts a child that exits, after an exponential backoff that is reset once the child has
  been up ``stable_after_s``, counting restarts and keeping the last exit code and the last line
  the child logged;
- writes ``RUN_DIR/mesh.json`` atomically after every change (the file ``dolphin mesh status``
  reads) and stops the services in reverse order (SIGTERM, then SIGKILL after ``stop_timeout_s``).

Each service is a tiny state machine (STYLE.md §7); every transition is one row of
``TRANSITIONS``::

    STOPPED -spawn-> STARTING -ready-> READY -stable-> RUNNING
    STARTING, READY, RUNNING -exit-> RESTARTING -spawn-> STARTING
    STOPPED, STARTING, RESTARTING -fail-> FAILED          (could not start at all)
    STARTING, READY, RUNNING, RESTARTING -stop-> STOPPED

Time comes from an injected ``Clock`` (monotonic for ages and deadlines, wall time for the
stamps in the state file) and processes from an injected ``launch``, so the unit tests drive
the whole table with a simulated clock and fake processes.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import IO, Any, Protocol

from dolphin.core.clock import NS_PER_SECOND, Clock, LiveClock
from dolphin.core.errors import ConfigError, DolphinError
from dolphin.core.io import atomic_write_text

_log = logging.getLogger(__name__)

STATE_FILE = "mesh.json"
#: A service without a readiness check is ready once it has stayed alive this long.
READY_ALIVE_S = 1.0
#: How often the supervisor looks at its children.
TICK_S = 0.1
#: Seconds a service gets to exit after SIGTERM before it is SIGKILLed.
STOP_TIMEOUT_S = 10.0
#: Exit status of a child whose supervisor died before the child was tied to it.
ORPHAN_EXIT = 70
PR_SET_PDEATHSIG = 1
_ERROR_MAX_CHARS = 300
_LOG_TAIL_BYTES = 16384


class ServiceState(Enum):
    """Where one supervised service is; ``mesh.json`` carries the value."""

    STARTING = "starting"
    READY = "ready"
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPED = "stopped"
    FAILED = "failed"


class ServiceEvent(Enum):
    """What moves a service: a spawn, its readiness, its stability, its exit, give-up, stop."""

    SPAWN = "spawn"
    READY = "ready"
    STABLE = "stable"
    EXIT = "exit"
    FAIL = "fail"
    STOP = "stop"


class MeshPhase(Enum):
    """Where the whole mesh is."""

    STARTING = "starting"
    UP = "up"
    FAILED = "failed"
    STOPPING = "stopping"
    DOWN = "down"


_S, _E, _P = ServiceState, ServiceEvent, MeshPhase
#: (state, event) -> next state. A pair that is not here is refused.
TRANSITIONS: dict[tuple[ServiceState, ServiceEvent], ServiceState] = {
    (_S.STOPPED, _E.SPAWN): _S.STARTING,
    (_S.RESTARTING, _E.SPAWN): _S.STARTING,
    (_S.STARTING, _E.READY): _S.READY,
    (_S.READY, _E.STABLE): _S.RUNNING,
    (_S.STARTING, _E.EXIT): _S.RESTARTING,
    (_S.READY, _E.EXIT): _S.RESTARTING,
    (_S.RUNNING, _E.EXIT): _S.RESTARTING,
    (_S.STOPPED, _E.FAIL): _S.FAILED,
    (_S.STARTING, _E.FAIL): _S.FAILED,
    (_S.RESTARTING, _E.FAIL): _S.FAILED,
    (_S.STARTING, _E.STOP): _S.STOPPED,
    (_S.READY, _E.STOP): _S.STOPPED,
    (_S.RUNNING, _E.STOP): _S.STOPPED,
    (_S.RESTARTING, _E.STOP): _S.STOPPED,
}
#: phase -> the phases it may move to.
PHASES: dict[MeshPhase, frozenset[MeshPhase]] = {
    _P.DOWN: frozenset({_P.STARTING}),
    _P.STARTING: frozenset({_P.UP, _P.STOPPING}),
    _P.UP: frozenset({_P.STOPPING}),
    _P.STOPPING: frozenset({_P.DOWN, _P.FAILED}),
    _P.FAILED: frozenset(),
}
#: States with a process that should be alive.
LIVE = frozenset({_S.STARTING, _S.READY, _S.RUNNING})


class SupervisorError(DolphinError, RuntimeError):
    """A transition the supervisor's tables refuse (a bug, never an operator's mistake)."""


class ServiceStartError(DolphinError, RuntimeError):
    """A critical service did not become ready at start-up; the mesh was stopped again."""

    def __init__(self, service: str, reason: str, log: Path) -> None:
        self.service = service
        self.reason = reason
        self.log = log
        super().__init__(f"service {service!r} did not start: {reason} (log: {log})")


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One service: its command line, extra environment and readiness check.

    ``env`` is added to the supervisor's environment. ``ready`` is called from the supervisor's
    loop while the service is starting and must return quickly; it may raise (counted as "not
    ready"). A non-``critical`` service that is not ready in time does not fail the start-up:
    the mesh goes on without it and it stays supervised.
    """

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    ready: Callable[[], bool] | None = None
    ready_timeout_s: float = 60.0
    critical: bool = True

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ConfigError(f"service name must be a plain file name, got {self.name!r}")
        if not self.argv:
            raise ConfigError(f"service {self.name!r}: argv must not be empty")
        if not self.ready_timeout_s > 0:
            raise ConfigError(
                f"service {self.name!r}: ready_timeout_s must be > 0, got {self.ready_timeout_s}"
            )


class Process(Protocol):
    """What the supervisor needs of a child (``subprocess.Popen`` has it)."""

    pid: int

    def poll(self) -> int | None:
        """Return the exit code once the child has exited (reaping it), else None."""
        ...

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the child."""
        ...


#: ``launch(spec, log)`` starts ``spec`` with stdout and stderr going to the open ``log``.
Launch = Callable[[ServiceSpec, IO[bytes]], Process]


@functools.cache
def _libc() -> Any:
    # Loaded in the supervisor, before any fork: the child only calls into it.
    return ctypes.CDLL(None, use_errno=True)


def _tie_to(parent_pid: int) -> None:  # pragma: no cover - runs in the child before exec
    _libc().prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:  # the supervisor died before the prctl took effect
        os._exit(ORPHAN_EXIT)


def launch_process(spec: ServiceSpec, log: IO[bytes]) -> subprocess.Popen:
    """Start ``spec`` as a child tied to this process (the default ``launch``).

    The child gets its own process group, so a Ctrl-C at the terminal of a foreground
    supervisor reaches the supervisor alone, which then stops the children in order.
    """
    linux = sys.platform.startswith("linux")
    if linux:
        _libc()
    return subprocess.Popen(
        spec.argv,
        env={**os.environ, **spec.env},
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        process_group=0,
        preexec_fn=functools.partial(_tie_to, os.getpid()) if linux else None,
    )


def backoff_delay(failures: int, initial_s: float, max_s: float) -> float:
    """Return the wait before restart number ``failures`` (1, 2, ...): doubling, capped."""
    if failures < 1:
        return 0.0
    return min(initial_s * 2.0 ** (failures - 1), max_s)


@dataclass
class _Service:
    spec: ServiceSpec
    log_path: Path
    pid_path: Path
    state: ServiceState = ServiceState.STOPPED
    proc: Process | None = None
    restarts: int = 0
    failures: int = 0  # consecutive exits without a stable run in between: drives the backoff
    last_exit: int | None = None
    last_error: str | None = None
    started_at_ns: int | None = None
    first_spawn_ns: int | None = None  # monotonic
    spawned_ns: int = 0  # monotonic
    ready_ns: int = 0  # monotonic
    restart_at_ns: int = 0  # monotonic
    log_offset: int = 0
    kill_reason: str | None = None

    def record(self) -> dict[str, Any]:
        return {
            "pid": self.proc.pid if self.proc is not None else None,
            "state": self.state.value,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "last_error": self.last_error,
            "started_at": self.started_at_ns,
            "log": str(self.log_path),
        }


class Supervisor:
    """Run ``specs`` as supervised children; state in ``run_dir/mesh.json``.

    Drive it with ``start()`` (blocking until every service is ready), then ``poll()`` once per
    tick, then ``stop()``; ``run_supervisor`` does exactly that under signal handlers. Every
    call must come from one thread, the one that stays alive for the supervisor's whole life
    (``PR_SET_PDEATHSIG`` fires when the forking *thread* exits).
    """

    def __init__(
        self,
        specs: Sequence[ServiceSpec],
        run_dir: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        launch: Launch = launch_process,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        stable_after_s: float = 30.0,
        stop_timeout_s: float = STOP_TIMEOUT_S,
        tick_s: float = TICK_S,
    ) -> None:
        names = [s.name for s in specs]
        if len(set(names)) != len(names):
            raise ConfigError(f"service names must be unique, got {names}")
        if not 0 < backoff_initial_s <= backoff_max_s:
            raise ConfigError(
                f"need 0 < backoff_initial_s <= backoff_max_s, got "
                f"{backoff_initial_s} and {backoff_max_s}"
            )
        self.run_dir = Path(run_dir)
        self.clock = clock or LiveClock()
        self.tick_s = tick_s
        self._launch = launch
        self._backoff = (backoff_initial_s, backoff_max_s)
        self._stable_ns = round(stable_after_s * NS_PER_SECOND)
        self._stop_timeout_s = stop_timeout_s
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        (self.run_dir / "pids").mkdir(parents=True, exist_ok=True)
        self._services = {
            s.name: _Service(s, self.run_dir / "logs" / f"{s.name}.log",
                             self.run_dir / "pids" / f"{s.name}.pid")
            for s in specs
        }  # fmt: skip
        self._phase = MeshPhase.DOWN
        self._failed_service: str | None = None
        self._started_at_ns = self.clock.now_ns()
        self._stop_requested = False

    # --- what tests and the command read -------------------------------------------------
    @property
    def phase(self) -> MeshPhase:
        """Return the mesh's phase."""
        return self._phase

    @property
    def failed_service(self) -> str | None:
        """Return the service that failed the start-up, if any."""
        return self._failed_service

    @property
    def stop_requested(self) -> bool:
        """Report whether ``request_stop`` was called."""
        return self._stop_requested

    def state_of(self, name: str) -> ServiceState:
        """Return the state of service ``name``."""
        return self._services[name].state

    def pid_of(self, name: str) -> int | None:
        """Return the pid of service ``name`` while it has a process."""
        proc = self._services[name].proc
        return proc.pid if proc is not None else None

    def snapshot(self) -> dict[str, Any]:
        """Return what ``mesh.json`` holds."""
        return {
            "supervisor_pid": os.getpid(),
            "started_at": self._started_at_ns,
            "updated_at": self.clock.now_ns(),
            "phase": self._phase.value,
            "failed_service": self._failed_service,
            "services": {name: svc.record() for name, svc in self._services.items()},
        }

    # --- the life of the mesh ------------------------------------------------------------
    def request_stop(self) -> None:
        """Ask ``start`` and the supervising loop to end (safe from a signal handler)."""
        self._stop_requested = True

    def start(self) -> None:
        """Start every service in order, each once the previous one is ready.

        Returns with phase UP, or early (phase still STARTING) when a stop was requested.
        Raises ``ServiceStartError`` when a critical service is not ready within its
        ``ready_timeout_s``, after stopping the services already started (phase FAILED).
        """
        self._set_phase(MeshPhase.STARTING)
        atomic_write_text(self.run_dir / "pids" / "supervisor.pid", f"{os.getpid()}\n",
                          fsync=False)  # fmt: skip
        for svc in self._services.values():
            if self._stop_requested:
                return
            if not self._spawn(svc):
                self._fail_start(svc, svc.last_error or "could not be started")
            if self._await_ready(svc) or self._stop_requested:
                continue
            reason = f"not ready within {svc.spec.ready_timeout_s:g}s"
            if svc.last_error:  # it also exited on the way: say why
                reason += f"; last: {svc.last_error}"
            if svc.spec.critical:
                self._fail_start(svc, reason)
            _log.warning("service=%s event=not_ready critical=no reason=%r", svc.spec.name, reason)
        if not self._stop_requested:
            self._set_phase(MeshPhase.UP)

    def poll(self) -> None:
        """Do one tick of supervision: reap exits, restart after backoff, note readiness."""
        now = self.clock.monotonic_ns()
        for svc in self._services.values():
            if svc.state in LIVE:
                self._check_live(svc, now)
            elif svc.state is ServiceState.RESTARTING and now >= svc.restart_at_ns:
                svc.restarts += 1
                self._spawn(svc)

    def stop(self) -> None:
        """Stop every service in reverse order (SIGTERM, SIGKILL after the timeout); phase DOWN.

        A no-op once the mesh is DOWN or FAILED (a failed start-up has stopped it already).
        """
        if self._phase in (MeshPhase.DOWN, MeshPhase.FAILED):
            return
        self._set_phase(MeshPhase.STOPPING)
        self._stop_all()
        self._set_phase(MeshPhase.DOWN)
        (self.run_dir / "pids" / "supervisor.pid").unlink(missing_ok=True)

    # --- start-up ------------------------------------------------------------------------
    def _await_ready(self, svc: _Service) -> bool:
        assert svc.first_spawn_ns is not None
        deadline = svc.first_spawn_ns + round(svc.spec.ready_timeout_s * NS_PER_SECOND)
        while not self._stop_requested:
            if self.clock.monotonic_ns() >= deadline:
                return False
            self.poll()
            if svc.state in (ServiceState.READY, ServiceState.RUNNING):
                return True
            self.clock.sleep(self.tick_s)
        return False

    def _fail_start(self, svc: _Service, reason: str) -> None:
        name = svc.spec.name
        svc.last_error = reason
        self._failed_service = name
        _log.error("service=%s event=start_failed reason=%r", name, reason)
        self._set_phase(MeshPhase.STOPPING)
        self._stop_all()
        self._set_phase(MeshPhase.FAILED)
        (self.run_dir / "pids" / "supervisor.pid").unlink(missing_ok=True)
        raise ServiceStartError(name, reason, svc.log_path)

    # --- one service ---------------------------------------------------------------------
    def _spawn(self, svc: _Service) -> bool:
        spec = svc.spec
        now = self.clock.monotonic_ns()
        try:
            with svc.log_path.open("ab") as log:
                log.write(f"--- supervisor: starting {spec.name}: {shlex.join(spec.argv)}\n"
                          .encode())  # fmt: skip
                log.flush()
                svc.log_offset = log.tell()
                proc = self._launch(spec, log)
        except OSError as exc:
            svc.last_error = f"cannot start {spec.argv[0]!r}: {exc}"
            _log.error("service=%s event=spawn_failed error=%r", spec.name, svc.last_error)
            if svc.state is ServiceState.STOPPED:
                self._fire(svc, ServiceEvent.FAIL)
            else:  # a restart: try again later
                self._schedule_restart(svc, now)
            return False
        svc.proc, svc.spawned_ns, svc.kill_reason = proc, now, None
        svc.started_at_ns = self.clock.now_ns()
        if svc.first_spawn_ns is None:
            svc.first_spawn_ns = now
        atomic_write_text(svc.pid_path, f"{proc.pid}\n", fsync=False)
        _log.info("service=%s event=spawned pid=%d restarts=%d", spec.name, proc.pid, svc.restarts)
        self._fire(svc, ServiceEvent.SPAWN)
        return True

    def _check_live(self, svc: _Service, now: int) -> None:
        assert svc.proc is not None
        code = svc.proc.poll()
        if code is not None:
            self._on_exit(svc, code, now)
        elif svc.state is ServiceState.STARTING:
            self._check_ready(svc, now)
        elif svc.state is ServiceState.READY and now - svc.ready_ns >= self._stable_ns:
            svc.failures = 0  # a stable run: the next crash starts the backoff afresh
            self._fire(svc, ServiceEvent.STABLE)

    def _check_ready(self, svc: _Service, now: int) -> None:
        if self._is_ready(svc, now):
            svc.ready_ns = now
            _log.info("service=%s event=ready pid=%s", svc.spec.name, self.pid_of(svc.spec.name))
            self._fire(svc, ServiceEvent.READY)
        elif svc.kill_reason is None and (
            now - svc.spawned_ns >= round(svc.spec.ready_timeout_s * NS_PER_SECOND)
        ):
            # Stuck starting (a restart, or a non-critical service): kill it, restart it later.
            svc.kill_reason = f"not ready within {svc.spec.ready_timeout_s:g}s; killed"
            _signal(svc.proc, signal.SIGKILL)

    def _is_ready(self, svc: _Service, now: int) -> bool:
        if svc.spec.ready is None:
            return now - svc.spawned_ns >= round(READY_ALIVE_S * NS_PER_SECOND)
        try:
            return bool(svc.spec.ready())
        except Exception as exc:  # a probe that cannot tell yet means "not ready"
            _log.debug("service=%s event=ready_check_failed error=%r", svc.spec.name, exc)
            return False

    def _on_exit(self, svc: _Service, code: int, now: int) -> None:
        svc.last_exit = code
        svc.last_error = svc.kill_reason or last_log_line(svc.log_path, svc.log_offset) or (
            exit_reason(code))
        svc.proc = None
        svc.pid_path.unlink(missing_ok=True)
        self._schedule_restart(svc, now)
        _log.warning("service=%s event=exited code=%d restart_in=%.2fs error=%r", svc.spec.name,
                     code, (svc.restart_at_ns - now) / NS_PER_SECOND, svc.last_error)
        self._fire(svc, ServiceEvent.EXIT)

    def _schedule_restart(self, svc: _Service, now: int) -> None:
        svc.failures += 1
        delay = backoff_delay(svc.failures, *self._backoff)
        svc.restart_at_ns = now + round(delay * NS_PER_SECOND)
        self._save()

    def _stop_all(self) -> None:
        for svc in reversed(self._services.values()):
            self._stop_one(svc)

    def _stop_one(self, svc: _Service) -> None:
        if svc.proc is not None:
            code = self._terminate(svc.proc)
            svc.last_exit = code
            svc.proc = None
            svc.pid_path.unlink(missing_ok=True)
            _log.info("service=%s event=stopped code=%s", svc.spec.name, code)
        if svc.spec.name == self._failed_service:
            if svc.state is not ServiceState.FAILED:
                self._fire(svc, ServiceEvent.FAIL)
        elif (svc.state, ServiceEvent.STOP) in TRANSITIONS:
            self._fire(svc, ServiceEvent.STOP)

    def _terminate(self, proc: Process) -> int | None:
        for sig, wait_s in ((signal.SIGTERM, self._stop_timeout_s), (signal.SIGKILL, 5.0)):
            if proc.poll() is not None:
                break
            _signal(proc, sig)
            deadline = self.clock.monotonic_ns() + round(wait_s * NS_PER_SECOND)
            while proc.poll() is None and self.clock.monotonic_ns() < deadline:
                self.clock.sleep(0.02)
        return proc.poll()

    # --- bookkeeping ---------------------------------------------------------------------
    def _fire(self, svc: _Service, event: ServiceEvent) -> None:
        nxt = TRANSITIONS.get((svc.state, event))
        if nxt is None:
            raise SupervisorError(
                f"service {svc.spec.name!r}: no transition for {event.value} while "
                f"{svc.state.value}"
            )
        _log.debug("service=%s event=transition from=%s to=%s", svc.spec.name, svc.state.value,
                   nxt.value)  # fmt: skip
        svc.state = nxt
        self._save()

    def _set_phase(self, phase: MeshPhase) -> None:
        if phase not in PHASES[self._phase]:
            raise SupervisorError(f"mesh: cannot go from {self._phase.value} to {phase.value}")
        _log.info("mesh event=phase from=%s to=%s", self._phase.value, phase.value)
        self._phase = phase
        self._save()

    def _save(self) -> None:
        write_state(self.run_dir, self.snapshot())


def _signal(proc: Process, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)


def exit_reason(code: int) -> str:
    """Describe an exit code: ``exited with code 3`` or ``killed by SIGKILL``."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def last_log_line(path: Path, offset: int = 0) -> str | None:
    """Return the last non-empty line written to ``path`` after ``offset``, shortened."""
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(offset, size - _LOG_TAIL_BYTES))
            text = fh.read().decode(errors="replace")
    except OSError:
        return None
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line and not line.startswith("--- supervisor:"):
            return line[:_ERROR_MAX_CHARS]
    return None


def log_tail(path: Path, lines: int = 15) -> str:
    """Return the last ``lines`` lines of a log (for error messages); empty if unreadable."""
    try:
        with path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            fh.seek(max(0, size - _LOG_TAIL_BYTES))
            text = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def write_state(run_dir: Path, state: Mapping[str, Any]) -> None:
    """Write ``run_dir/mesh.json`` atomically."""
    atomic_write_text(run_dir / STATE_FILE, json.dumps(state, indent=1) + "\n", fsync=False)


def read_state(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Return the recorded ``mesh.json`` of ``run_dir``, or None when there is none."""
    path = Path(run_dir) / STATE_FILE
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: unreadable mesh state: {exc}") from exc
    if not isinstance(state, dict):
        raise ConfigError(f"{path}: mesh state must be a JSON object, got {type(state).__name__}")
    return state


def record_failure(run_dir: str | os.PathLike[str], error: str) -> None:
    """Record a supervisor that failed before it could start any service (a bad plan)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_state(run_dir, {
        "supervisor_pid": os.getpid(), "started_at": LiveClock().now_ns(), "phase": "failed",
        "failed_service": None, "error": error, "services": {},
    })  # fmt: skip


def pid_alive(pid: int | None) -> bool:
    """Report whether ``pid`` runs and is not a zombie (from /proc where there is one)."""
    if not pid or pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def process_started_ns(pid: int) -> int | None:
    """Return when ``pid`` started (wall ns, to about a second), None when /proc cannot tell.

    Tells a recorded process from an unrelated one that reused its pid later.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        btime = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                     if line.startswith("btime "))
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, StopIteration):
        return None
    return btime * NS_PER_SECOND + int(fields[19]) * NS_PER_SECOND // ticks


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def run_supervisor(specs: Sequence[ServiceSpec], run_dir: str | os.PathLike[str],
                   **options: Any) -> int:
    """Start ``specs`` and supervise them until SIGTERM, SIGINT or SIGHUP; return the exit code.

    0 after a requested stop (every service stopped, phase DOWN); 1 when a critical service
    did not become ready at start-up (phase FAILED, naming it). ``options`` go to
    ``Supervisor``. Call it from the main thread.
    """
    sup = Supervisor(specs, run_dir, **options)
    previous = {sig: signal.signal(sig, lambda *_: sup.request_stop()) for sig in _STOP_SIGNALS}
    try:
        try:
            sup.start()
        except ServiceStartError as exc:
            _log.error("mesh event=failed service=%s reason=%r", exc.service, exc.reason)
            return 1
        while not sup.stop_requested:
            sup.poll()
            sup.clock.sleep(sup.tick_s)
        return 0
    finally:
        sup.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
