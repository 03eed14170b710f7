"""The supervisor's tables, backoff and state file, on a simulated clock with fake processes."""

from __future__ import annotations

import json
import signal

import pytest

from dolphin.core.clock import NS_PER_SECOND, SimulatedClock
from dolphin.core.errors import ConfigError
from dolphin.mesh.supervisor import (
    PHASES,
    TRANSITIONS,
    MeshPhase,
    ServiceEvent,
    ServiceSpec,
    ServiceStartError,
    ServiceState,
    Supervisor,
    SupervisorError,
    backoff_delay,
    exit_reason,
    read_state,
)

S, E = ServiceState, ServiceEvent


class FakeProc:
    """A child that lives ``life_s`` (None: until signalled), on the simulated clock."""

    def __init__(self, clock: SimulatedClock, pid: int, life_s: float | None,
                 code: int = 1, ignore_term: bool = False) -> None:
        self.clock, self.pid, self.code, self.ignore_term = clock, pid, code, ignore_term
        self.born = clock.monotonic_ns()
        self.life_ns = None if life_s is None else round(life_s * NS_PER_SECOND)
        self.returncode: int | None = None
        self.signals: list[int] = []

    def poll(self) -> int | None:
        if self.returncode is None and self.life_ns is not None and (
                self.clock.monotonic_ns() - self.born >= self.life_ns):
            self.returncode = self.code
        return self.returncode

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        if self.returncode is None and not (sig == signal.SIGTERM and self.ignore_term):
            self.returncode = 0 if sig == signal.SIGTERM else -sig


class FakeLauncher:
    """Launch ``FakeProc``s; ``plans[name]`` is a list of ``FakeProc`` kwargs, one per launch
    (the last one repeats); ``log_lines[name]`` is written to the log at each launch."""

    def __init__(self, clock: SimulatedClock) -> None:
        self.clock = clock
        self.plans: dict[str, list[dict]] = {}
        self.log_lines: dict[str, str] = {}
        self.launches: list[tuple[str, float]] = []
        self.procs: dict[str, list[FakeProc]] = {}
        self.fail: set[str] = set()
        self._pid = 1000

    def __call__(self, spec: ServiceSpec, log) -> FakeProc:
        if spec.name in self.fail:
            raise FileNotFoundError(2, "No such file or directory", spec.argv[0])
        self._pid += 1
        plan = self.plans.get(spec.name, [{}])
        n = len(self.procs.get(spec.name, []))
        kwargs = {"life_s": None, **plan[min(n, len(plan) - 1)]}
        proc = FakeProc(self.clock, self._pid, **kwargs)
        if spec.name in self.log_lines:
            log.write(self.log_lines[spec.name].encode())
        self.procs.setdefault(spec.name, []).append(proc)
        self.launches.append((spec.name, self.clock.monotonic_ns() / NS_PER_SECOND))
        return proc


@pytest.fixture
def clock():
    return SimulatedClock(start_ns=1_700_000_000 * NS_PER_SECOND)


@pytest.fixture
def launcher(clock):
    return FakeLauncher(clock)


def _sup(specs, tmp_path, clock, launcher, **kw):
    return Supervisor(specs, tmp_path, clock=clock, launch=launcher, **kw)


def _run(sup: Supervisor, seconds: float) -> None:
    end = sup.clock.monotonic_ns() + round(seconds * NS_PER_SECOND)
    while sup.clock.monotonic_ns() < end:
        sup.poll()
        sup.clock.sleep(sup.tick_s)


# --- tables ------------------------------------------------------------------------------------
def test_transition_table_is_the_documented_one():
    assert TRANSITIONS == {
        (S.STOPPED, E.SPAWN): S.STARTING, (S.RESTARTING, E.SPAWN): S.STARTING,
        (S.STARTING, E.READY): S.READY, (S.READY, E.STABLE): S.RUNNING,
        (S.STARTING, E.EXIT): S.RESTARTING, (S.READY, E.EXIT): S.RESTARTING,
        (S.RUNNING, E.EXIT): S.RESTARTING,
        (S.STOPPED, E.FAIL): S.FAILED, (S.STARTING, E.FAIL): S.FAILED,
        (S.RESTARTING, E.FAIL): S.FAILED,
        (S.STARTING, E.STOP): S.STOPPED, (S.READY, E.STOP): S.STOPPED,
        (S.RUNNING, E.STOP): S.STOPPED, (S.RESTARTING, E.STOP): S.STOPPED,
    }  # fmt: skip
    assert not [k for k in TRANSITIONS if k[0] is S.FAILED], "FAILED is final"


def test_phase_table_runs_starting_up_stopping_down_and_failed_is_final():
    assert PHASES[MeshPhase.DOWN] == {MeshPhase.STARTING}
    assert PHASES[MeshPhase.STARTING] == {MeshPhase.UP, MeshPhase.STOPPING}
    assert PHASES[MeshPhase.UP] == {MeshPhase.STOPPING}
    assert PHASES[MeshPhase.STOPPING] == {MeshPhase.DOWN, MeshPhase.FAILED}
    assert PHASES[MeshPhase.FAILED] == frozenset()


def test_a_transition_not_in_the_table_is_refused(tmp_path, clock, launcher):
    sup = _sup([ServiceSpec("a", ["a"])], tmp_path, clock, launcher)
    svc = sup._services["a"]
    with pytest.raises(SupervisorError, match="no transition for exit while stopped"):
        sup._fire(svc, ServiceEvent.EXIT)
    with pytest.raises(SupervisorError, match="cannot go from down to up"):
        sup._set_phase(MeshPhase.UP)


def test_service_spec_and_supervisor_reject_bad_values(tmp_path, clock, launcher):
    with pytest.raises(ConfigError, match="argv must not be empty"):
        ServiceSpec("a", [])
    with pytest.raises(ConfigError, match="plain file name"):
        ServiceSpec("../a", ["x"])
    with pytest.raises(ConfigError, match="ready_timeout_s must be > 0"):
        ServiceSpec("a", ["x"], ready_timeout_s=0)
    with pytest.raises(ConfigError, match="unique"):
        _sup([ServiceSpec("a", ["x"]), ServiceSpec("a", ["y"])], tmp_path, clock, launcher)
    with pytest.raises(ConfigError, match="backoff"):
        _sup([ServiceSpec("a", ["x"])], tmp_path, clock, launcher, backoff_initial_s=5,
             backoff_max_s=1)


# --- backoff -----------------------------------------------------------------------------------
def test_backoff_doubles_from_initial_and_is_capped():
    assert [backoff_delay(n, 0.5, 30.0) for n in range(0, 10)] == [
        0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]


def test_exit_reason_names_the_signal_or_the_code():
    assert exit_reason(-9) == "killed by SIGKILL"
    assert exit_reason(3) == "exited with code 3"


def test_crash_loop_restarts_after_doubling_delays(tmp_path, clock, launcher):
    launcher.plans["a"] = [{}, {"life_s": 0.0, "code": 3}]  # first run lives, then crashes
    sup = _sup([ServiceSpec("a", ["a"])], tmp_path, clock, launcher, backoff_initial_s=0.5,
               backoff_max_s=4.0)
    sup.start()
    t0 = clock.monotonic_ns() / NS_PER_SECOND
    launcher.procs["a"][0].send_signal(signal.SIGKILL)
    _run(sup, 20.0)
    times = [t for name, t in launcher.launches if name == "a"][1:]
    gaps = [round(b - a, 6) for a, b in zip([t0, *times], times, strict=False)]
    # Each gap is the backoff plus at most one tick for the exit to be seen (crash is instant).
    expected = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    for gap, want in zip(gaps, expected, strict=False):
        assert want <= gap <= want + 2 * sup.tick_s + 1e-6, (gaps, expected)
    assert len(gaps) >= len(expected)
    state = read_state(tmp_path)["services"]["a"]
    assert state["restarts"] == len(times)
    assert state["last_exit"] == 3


def test_backoff_is_reset_after_a_stable_run(tmp_path, clock, launcher):
    launcher.plans["a"] = [{"life_s": 0.0}, {"life_s": 0.0}, {"life_s": 0.0}, {}]
    spec = ServiceSpec("a", ["a"], ready_timeout_s=30)
    sup = _sup([spec], tmp_path, clock, launcher, backoff_initial_s=0.5, backoff_max_s=30,
               stable_after_s=5)
    sup.start()  # three crashes (0.5, 1, 2 s of backoff), then a run that stays
    assert sup._services["a"].failures == 3
    _run(sup, 5.5)
    assert sup.state_of("a") is ServiceState.RUNNING
    assert sup._services["a"].failures == 0
    before = clock.monotonic_ns() / NS_PER_SECOND
    launcher.plans["a"].append({})
    launcher.procs["a"][-1].send_signal(signal.SIGKILL)
    _run(sup, 1.0)
    assert launcher.launches[-1][1] - before <= 0.5 + 2 * sup.tick_s


# --- start, readiness, failure -----------------------------------------------------------------
def test_services_start_in_order_each_after_the_previous_is_ready(tmp_path, clock, launcher):
    ready = {"a": False}
    specs = [ServiceSpec("a", ["a"], ready=lambda: ready["a"]), ServiceSpec("b", ["b"]),
             ServiceSpec("c", ["c"], ready=lambda: True)]
    clock.call_at(clock.now_ns() + 3 * NS_PER_SECOND, lambda: ready.update(a=True))
    sup = _sup(specs, tmp_path, clock, launcher)
    sup.start()
    names = [n for n, _ in launcher.launches]
    t = dict(launcher.launches)
    assert names == ["a", "b", "c"]
    assert t["b"] - t["a"] >= 3.0  # b waited for a's ready()
    assert t["c"] - t["b"] >= 1.0  # no check: b was ready after being alive READY_ALIVE_S
    assert sup.phase is MeshPhase.UP


def test_a_ready_check_that_raises_counts_as_not_ready(tmp_path, clock, launcher):
    calls = []

    def ready():
        calls.append(1)
        if len(calls) < 4:
            raise ConnectionRefusedError("store not up yet")
        return True

    sup = _sup([ServiceSpec("a", ["a"], ready=ready)], tmp_path, clock, launcher)
    sup.start()
    assert sup.state_of("a") is ServiceState.READY and len(calls) == 4


def test_a_critical_service_not_ready_fails_the_mesh_and_stops_the_others(
        tmp_path, clock, launcher):
    specs = [ServiceSpec("a", ["a"], ready=lambda: True),
             ServiceSpec("b", ["b"], ready=lambda: False, ready_timeout_s=2),
             ServiceSpec("c", ["c"], ready=lambda: True)]
    sup = _sup(specs, tmp_path, clock, launcher)
    with pytest.raises(ServiceStartError, match="'b' did not start: not ready within 2s") as ei:
        sup.start()
    assert ei.value.service == "b"
    assert sup.phase is MeshPhase.FAILED and sup.failed_service == "b"
    assert [n for n, _ in launcher.launches] == ["a", "b"]
    assert launcher.procs["a"][0].signals == [signal.SIGTERM]
    assert launcher.procs["b"][0].signals == [signal.SIGTERM]
    state = read_state(tmp_path)
    assert state["phase"] == "failed" and state["failed_service"] == "b"
    assert {n: s["state"] for n, s in state["services"].items()} == {
        "a": "stopped", "b": "failed", "c": "stopped"}
    assert state["services"]["b"]["last_error"] == "not ready within 2s"
    assert not list((tmp_path / "pids").iterdir())
    sup.stop()  # a no-op on a failed mesh
    assert sup.phase is MeshPhase.FAILED


def test_a_non_critical_service_not_ready_does_not_fail_the_mesh(tmp_path, clock, launcher):
    specs = [ServiceSpec("a", ["a"], ready=lambda: False, ready_timeout_s=2, critical=False),
             ServiceSpec("b", ["b"], ready=lambda: True)]
    sup = _sup(specs, tmp_path, clock, launcher)
    sup.start()
    assert sup.phase is MeshPhase.UP
    # Still stuck after its timeout since the spawn: killed and restarted later.
    _run(sup, 1.0)
    assert launcher.procs["a"][0].signals == [signal.SIGKILL]
    assert sup._services["a"].last_error == "not ready within 2s; killed"


def test_a_service_crashing_at_start_up_fails_with_its_last_log_line(tmp_path, clock, launcher):
    launcher.plans["a"] = [{"life_s": 0.0, "code": 2}]
    launcher.log_lines["a"] = "dolphin: error: invalid choice: 'mesh'\n"
    sup = _sup([ServiceSpec("a", ["a"], ready_timeout_s=5)], tmp_path, clock, launcher)
    with pytest.raises(ServiceStartError,
                       match="not ready within 5s; last: dolphin: error: invalid choice"):
        sup.start()
    assert sup._services["a"].restarts >= 2


def test_a_command_that_cannot_be_started_fails_the_mesh(tmp_path, clock, launcher):
    launcher.fail.add("b")
    sup = _sup([ServiceSpec("a", ["a"], ready=lambda: True), ServiceSpec("b", ["nope"])],
               tmp_path, clock, launcher)
    with pytest.raises(ServiceStartError, match="cannot start 'nope'"):
        sup.start()
    assert sup.state_of("b") is ServiceState.FAILED
    assert sup.state_of("a") is ServiceState.STOPPED


def test_last_error_is_the_last_line_the_child_logged(tmp_path, clock, launcher):
    launcher.plans["a"] = [{}, {}]
    launcher.log_lines["a"] = "Traceback (most recent call last):\nValueError: boom\n\n"
    sup = _sup([ServiceSpec("a", ["a"], ready=lambda: True)], tmp_path, clock, launcher)
    sup.start()
    proc = launcher.procs["a"][0]
    proc.code, proc.life_ns = 1, 0
    _run(sup, 0.2)
    svc = read_state(tmp_path)["services"]["a"]
    assert svc["last_error"] == "ValueError: boom" and svc["last_exit"] == 1
    assert svc["state"] == "restarting"


def test_a_child_that_logged_nothing_has_its_exit_as_last_error(tmp_path, clock, launcher):
    sup = _sup([ServiceSpec("a", ["a"], ready=lambda: True)], tmp_path, clock, launcher)
    sup.start()
    launcher.procs["a"][0].send_signal(signal.SIGKILL)
    _run(sup, 0.2)
    svc = read_state(tmp_path)["services"]["a"]
    assert svc["last_error"] == "killed by SIGKILL" and svc["last_exit"] == -9


# --- stop and the state file -------------------------------------------------------------------
def test_stop_goes_in_reverse_order_and_kills_a_child_that_ignores_sigterm(
        tmp_path, clock, launcher):
    launcher.plans["b"] = [{"ignore_term": True}]
    specs = [ServiceSpec(n, [n], ready=lambda: True) for n in ("a", "b", "c")]
    sup = _sup(specs, tmp_path, clock, launcher, stop_timeout_s=10)
    sup.start()
    order = []
    for name in ("a", "b", "c"):
        proc = launcher.procs[name][0]
        proc.send_signal = (lambda p, n: lambda sig: (order.append(n), FakeProc.send_signal(
            p, sig)))(proc, name)
    t0 = clock.monotonic_ns()
    sup.stop()
    assert order == ["c", "b", "b", "a"]  # b got SIGTERM, then SIGKILL
    assert launcher.procs["b"][0].returncode == -signal.SIGKILL
    assert (clock.monotonic_ns() - t0) / NS_PER_SECOND >= 10
    assert sup.phase is MeshPhase.DOWN


def test_state_file_records_the_mesh_after_each_change(tmp_path, clock, launcher):
    specs = [ServiceSpec("a", ["a"], ready=lambda: True), ServiceSpec("b", ["b"])]
    sup = _sup(specs, tmp_path, clock, launcher)
    sup.start()
    state = json.loads((tmp_path / "mesh.json").read_text())
    assert set(state) == {"supervisor_pid", "started_at", "updated_at", "phase",
                          "failed_service", "services"}
    assert state["phase"] == "up" and state["failed_service"] is None
    assert list(state["services"]) == ["a", "b"]
    a = state["services"]["a"]
    assert a == {"pid": launcher.procs["a"][0].pid, "state": "ready", "restarts": 0,
                 "last_exit": None, "last_error": None, "started_at": a["started_at"],
                 "log": str(tmp_path / "logs" / "a.log")}
    assert a["started_at"] >= 1_700_000_000 * NS_PER_SECOND
    assert (tmp_path / "pids" / "a.pid").read_text().strip() == str(a["pid"])
    assert (tmp_path / "logs" / "a.log").read_text().startswith("--- supervisor: starting a")
    sup.stop()
    state = read_state(tmp_path)
    assert state["phase"] == "down"
    assert {n: (s["state"], s["pid"]) for n, s in state["services"].items()} == {
        "a": ("stopped", None), "b": ("stopped", None)}
    assert not list((tmp_path / "pids").iterdir())
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_stop_requested_during_start_up_ends_the_start(tmp_path, clock, launcher):
    specs = [ServiceSpec("a", ["a"], ready=lambda: False), ServiceSpec("b", ["b"])]
    sup = _sup(specs, tmp_path, clock, launcher)
    clock.call_at(clock.now_ns() + NS_PER_SECOND, sup.request_stop)
    sup.start()
    assert sup.phase is MeshPhase.STARTING
    sup.stop()
    assert sup.phase is MeshPhase.DOWN
    assert [n for n, _ in launcher.launches] == ["a"]
