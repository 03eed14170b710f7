"""The mesh supervisor and ``dolphin mesh up|status|down`` with tiny real child processes.

Start order, restart after SIGKILL, backoff of a crash loop, a start-up that fails naming the
service, no orphan after the supervisor is SIGKILLed (checked in /proc), and ``down``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dolphin.commands import mesh
from dolphin.core.errors import ConfigError
from dolphin.mesh.supervisor import (
    MeshPhase,
    ServiceSpec,
    ServiceStartError,
    ServiceState,
    Supervisor,
    read_state,
)
from tests.kit.procs import process_alive, wait_for

#: A service: logs its start in DIR/starts.log, marks itself ready (DIR/NAME.ready holds its
#: pid) unless told not to, exits 0 on SIGTERM. Modes: ok, slow (ready after 0.3 s), never
#: (never ready), crash (exit 3 at once on every run after the first).
CHILD = textwrap.dedent("""
    import os, signal, sys, time
    name, d, mode = sys.argv[1:4]
    with open(os.path.join(d, "starts.log"), "a") as f:
        f.write(f"{name} {time.time()} {os.getpid()}\\n")
    runs = sum(1 for line in open(os.path.join(d, "starts.log")) if line.split()[0] == name)
    if mode == "crash" and runs > 1:
        print(f"{name}: RuntimeError: crash number {runs - 1}", flush=True)
        sys.exit(3)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    if mode == "slow":
        time.sleep(0.3)
    if mode != "never":
        with open(os.path.join(d, name + ".ready"), "w") as f:
            f.write(str(os.getpid()))
    print(f"{name} up", flush=True)
    while True:
        time.sleep(0.05)
""")

#: What ``mesh up`` launches in these tests: the ``mesh`` command without the lead's cli.py.
RUN_MESH_COMMAND = textwrap.dedent("""
    import argparse, logging, sys
    from dolphin.commands import mesh
    logging.basicConfig(level=logging.INFO)
    parser = argparse.ArgumentParser()
    mesh.register(parser.add_subparsers())
    args = parser.parse_args(sys.argv[1:])
    sys.exit(args.func(args))
""")

#: A plan module for ``mesh up --plan testplan:NAME``.
PLAN = textwrap.dedent("""
    import sys
    from pathlib import Path
    from dolphin.mesh.supervisor import ServiceSpec
    CHILD = {child!r}

    def _spec(run_dir, name, mode, timeout=10.0):
        ready = lambda: (Path(run_dir) / (name + ".ready")).exists()
        return ServiceSpec(name, [sys.executable, "-c", CHILD, name, str(run_dir), mode],
                           ready=ready, ready_timeout_s=timeout)

    def ok(options, run_dir):
        return [_spec(run_dir, n, "ok") for n in ("store", "acb", "trader")]

    def never_ready(options, run_dir):
        return [_spec(run_dir, "store", "ok"), _spec(run_dir, "acb", "never", 1.0),
                _spec(run_dir, "trader", "ok")]
""")


def _spec(run_dir: Path, name: str, mode: str = "ok", **kw) -> ServiceSpec:
    def ready() -> bool:
        return (run_dir / f"{name}.ready").exists()

    return ServiceSpec(name, [sys.executable, "-c", CHILD, name, str(run_dir), mode],
                       ready=kw.pop("ready", ready), **kw)


def _starts(run_dir: Path) -> list[tuple[str, float, int]]:
    path = run_dir / "starts.log"
    if not path.exists():
        return []
    return [(n, float(t), int(p)) for n, t, p in (ln.split() for ln in path.read_text().split(
        "\n") if ln)]


def _poll_until(sup: Supervisor, predicate, timeout_s: float = 10.0) -> bool:
    def tick() -> bool:
        sup.poll()
        return predicate()

    return wait_for(tick, timeout_s, poll_s=0.02)


@pytest.fixture
def supervisors():
    """Supervisors made by a test; always stopped, so no child outlives a failing test."""
    made: list[Supervisor] = []
    yield made
    for sup in made:
        sup.stop()


def _supervisor(supervisors, specs, run_dir, **kw) -> Supervisor:
    sup = Supervisor(specs, run_dir, tick_s=0.02, **kw)
    supervisors.append(sup)
    return sup


def test_services_start_in_order_each_after_the_previous_is_ready(tmp_path, supervisors):
    specs = [_spec(tmp_path, "a", "slow"), _spec(tmp_path, "b", ready=None),
             _spec(tmp_path, "c")]
    sup = _supervisor(supervisors, specs, tmp_path)
    sup.start()
    starts = _starts(tmp_path)
    assert [n for n, _, _ in starts] == ["a", "b", "c"]
    t = {n: ts for n, ts, _ in starts}
    assert t["b"] - t["a"] >= 0.3  # b waited for a's marker
    assert t["c"] - t["b"] >= 0.9  # b had no check: ready after 1 s alive
    pids = [p for _, _, p in starts]
    assert all(process_alive(p) for p in pids)
    assert read_state(tmp_path)["phase"] == "up"
    sup.stop()
    assert not any(process_alive(p) for p in pids)
    assert (tmp_path / "logs" / "a.log").read_text().splitlines()[-1] == "a up"


def test_a_child_killed_with_sigkill_is_restarted_and_counted(tmp_path, supervisors):
    sup = _supervisor(supervisors, [_spec(tmp_path, "a")], tmp_path, backoff_initial_s=0.1)
    sup.start()
    first = sup.pid_of("a")
    os.kill(first, signal.SIGKILL)
    assert _poll_until(sup, lambda: sup._services["a"].restarts == 1
                       and sup.state_of("a") is ServiceState.READY)
    assert sup.pid_of("a") != first and process_alive(sup.pid_of("a"))
    svc = read_state(tmp_path)["services"]["a"]
    assert (svc["restarts"], svc["last_exit"], svc["state"]) == (1, -9, "ready")
    assert svc["last_error"] == "a up"  # the last line it logged before it was killed
    assert (tmp_path / "pids" / "a.pid").read_text().strip() == str(sup.pid_of("a"))


def test_a_crash_looping_child_backs_off(tmp_path, supervisors):
    sup = _supervisor(supervisors, [_spec(tmp_path, "a", "crash")], tmp_path,
                      backoff_initial_s=0.1, backoff_max_s=0.4)
    sup.start()
    os.kill(sup.pid_of("a"), signal.SIGKILL)
    assert _poll_until(sup, lambda: len(_starts(tmp_path)) >= 6)
    times = [t for _, t, _ in _starts(tmp_path)][1:]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # Restart n waits 0.1 * 2**n, capped at 0.4 (plus the child's own start-up time).
    for gap, want in zip(gaps, (0.2, 0.4, 0.4, 0.4), strict=False):
        assert want - 0.02 <= gap <= want + 0.5, gaps
    svc = read_state(tmp_path)["services"]["a"]
    assert svc["restarts"] >= 5 and svc["last_exit"] == 3
    assert svc["last_error"].startswith("a: RuntimeError: crash number")


def test_a_child_never_ready_fails_the_start_naming_it_and_others_are_stopped(
        tmp_path, supervisors):
    specs = [_spec(tmp_path, "a"), _spec(tmp_path, "b", "never", ready_timeout_s=1.0),
             _spec(tmp_path, "c")]
    sup = _supervisor(supervisors, specs, tmp_path)
    with pytest.raises(ServiceStartError, match="'b' did not start: not ready within 1s"):
        sup.start()
    pids = [p for _, _, p in _starts(tmp_path)]
    assert [n for n, _, _ in _starts(tmp_path)] == ["a", "b"]
    assert not any(process_alive(p) for p in pids)
    state = read_state(tmp_path)
    assert (state["phase"], state["failed_service"]) == ("failed", "b")
    assert state["services"]["c"]["state"] == "stopped" and sup.phase is MeshPhase.FAILED


# --- through the command ---------------------------------------------------------------------
@pytest.fixture
def command(tmp_path, monkeypatch):
    """Run ``dolphin mesh ARGS`` in-process; ``up`` launches the supervisor detached."""
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "testplan.py").write_text(PLAN.format(child=CHILD))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(plans), *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.setattr(mesh, "SUPERVISE_COMMAND",
                        (sys.executable, "-c", RUN_MESH_COMMAND, "mesh", "supervise"))
    parser = argparse.ArgumentParser()
    mesh.register(parser.add_subparsers())
    run_dirs: list[Path] = []

    def run(*argv: str) -> int:
        args = parser.parse_args(["mesh", *argv])
        run_dirs.append(args.run_dir)
        return args.func(args)

    yield run
    for run_dir in set(run_dirs):
        mesh.stop_mesh(run_dir, 10.0)


def _all_pids(run_dir: Path) -> list[int]:
    state = read_state(run_dir)
    return [state["supervisor_pid"], *(p for _, _, p in _starts(run_dir))]


def test_up_status_down_through_the_command(tmp_path, command, capsys):
    run_dir = tmp_path / "mesh"
    assert command("up", "--run-dir", str(run_dir), "--plan", "testplan:ok",
                   "--timeout", "30") == 0
    out = capsys.readouterr().out
    assert [ln.split()[0] for ln in out.splitlines() if ln.endswith(")") and "ready" in ln] == [
        "store", "acb", "trader"]
    assert "mesh up: 3 service(s)" in out
    options = json.loads((run_dir / "options.json").read_text())
    assert options["store"] == "memory" and options["exchange"] == "local"
    pids = _all_pids(run_dir)
    assert all(process_alive(p) for p in pids)

    with pytest.raises(ConfigError, match="already running"):
        command("up", "--run-dir", str(run_dir), "--plan", "testplan:ok")

    assert command("status", "--run-dir", str(run_dir)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"mesh {run_dir}: phase up")
    rows = {ln.split()[0]: ln.split() for ln in lines[2:5]}
    assert list(rows) == ["store", "acb", "trader"]
    assert rows["acb"][1] == "ready" and rows["acb"][3] == "0"
    assert "store unreachable" in lines[-1]  # the test plan has no store to ask
    assert command("status", "--run-dir", str(run_dir), "--json") == 0
    assert json.loads(capsys.readouterr().out)["supervisor_alive"] is True

    assert command("down", "--run-dir", str(run_dir)) == 0
    assert "stopped" in capsys.readouterr().out
    assert wait_for(lambda: not any(process_alive(p) for p in pids), 2.0)
    assert read_state(run_dir)["phase"] == "down"
    assert command("down", "--run-dir", str(run_dir)) == 0
    assert f"no mesh running in {run_dir}" in capsys.readouterr().out
    assert command("status", "--run-dir", str(run_dir)) == 1


def test_sigkill_of_the_supervisor_leaves_no_child_alive(tmp_path, command, capsys):
    run_dir = tmp_path / "mesh"
    assert command("up", "--run-dir", str(run_dir), "--plan", "testplan:ok") == 0
    sup_pid, *children = _all_pids(run_dir)
    assert len(children) == 3 and all(process_alive(p) for p in children)
    os.kill(sup_pid, signal.SIGKILL)
    assert wait_for(lambda: not any(process_alive(p) for p in [sup_pid, *children]), 5.0)
    assert command("status", "--run-dir", str(run_dir)) == 1
    assert "NOT RUNNING" in capsys.readouterr().out
    assert command("down", "--run-dir", str(run_dir)) == 0  # records the truth
    assert read_state(run_dir)["phase"] == "down"


def test_up_names_the_service_that_did_not_start(tmp_path, command, capsys):
    run_dir = tmp_path / "mesh"
    t0 = time.monotonic()
    assert command("up", "--run-dir", str(run_dir), "--plan", "testplan:never_ready") == 1
    err = capsys.readouterr().err
    assert "service 'acb' did not start: not ready within 1s" in err
    assert "acb up" in err  # the tail of its log
    assert time.monotonic() - t0 < 15
    assert not any(process_alive(p) for p in _all_pids(run_dir))
    assert read_state(run_dir)["phase"] == "failed"


def test_up_reports_a_plan_that_cannot_be_loaded(tmp_path, command, capsys):
    run_dir = tmp_path / "mesh"
    assert command("up", "--run-dir", str(run_dir), "--plan", "testplan:nope") == 1
    assert "mesh failed: ConfigError: mesh plan 'testplan:nope' cannot be loaded" in (
        capsys.readouterr().err)


def test_up_foreground_stops_everything_on_ctrl_c(tmp_path, command):
    run_dir = tmp_path / "mesh"
    proc = subprocess.Popen([sys.executable, "-c", RUN_MESH_COMMAND, "mesh", "up", "--foreground",
                             "--run-dir", str(run_dir), "--plan", "testplan:ok"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_for(lambda: (read_state(run_dir) or {}).get("phase") == "up", 15.0)
        pids = _all_pids(run_dir)
        assert pids[0] == proc.pid
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    finally:
        proc.kill()
        proc.wait()
    assert read_state(run_dir)["phase"] == "down"
    assert not any(process_alive(p) for p in pids)


def test_status_shows_heartbeats_posture_and_rm_from_the_store(tmp_path, command, capsys,
                                                               monkeypatch, request):
    import dolphin.mesh.plan as plan

    run_dir = tmp_path / "mesh"
    run_dir.mkdir()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    request.addfinalizer(lambda: (sleeper.kill(), sleeper.wait()))
    pid = sleeper.pid
    (run_dir / "mesh.json").write_text(json.dumps({
        "supervisor_pid": pid, "started_at": time.time_ns() - 75 * 10**9,
        "updated_at": time.time_ns(), "phase": "up", "failed_service": None,
        "services": {"store": {"pid": pid, "state": "running", "restarts": 0,
                               "last_exit": None, "last_error": None},
                     "acb": {"pid": pid, "state": "ready", "restarts": 2,
                             "last_exit": -9, "last_error": "killed by SIGKILL"}}}))
    monkeypatch.setattr(plan, "status_extras", lambda rd: {
        "heartbeats": {"acb": 0.84}, "posture": "APEX", "rm": 0.9712})
    assert command("status", "--run-dir", str(run_dir)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "started 1m15s ago" in lines[0]
    assert lines[2].split() == ["store", "running", str(pid), "0", "-", "-"]
    assert lines[3].split()[:5] == ["acb", "ready", str(pid), "2", "0.8s"]
    assert lines[3].endswith("killed by SIGKILL")
    assert lines[-1] == "posture APEX, Rm 0.971"

    def unreachable(rd):
        raise ConnectionRefusedError("tcp://127.0.0.1:1")

    monkeypatch.setattr(plan, "status_extras", unreachable)
    assert command("status", "--run-dir", str(run_dir)) == 0
    assert "store unreachable (ConnectionRefusedError: tcp://127.0.0.1:1)" in (
        capsys.readouterr().out)


def test_a_recorded_pid_reused_by_a_later_process_is_not_ours():
    assert mesh.recorded_alive(os.getpid(), {"updated_at": time.time_ns()})
    assert not mesh.recorded_alive(os.getpid(), {"updated_at": 10**9})  # recorded in 1970
    assert not mesh.recorded_alive(None, None)
