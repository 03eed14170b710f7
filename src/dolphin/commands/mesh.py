"""`dolphin mesh up|status|down`: the mesh's services as supervised OS processes.

``up`` writes the options to ``RUN_DIR/options.json`` and launches
``python -m dolphin mesh supervise --run-dir RUN_DIR`` in a session of its own (the terminal's
Ctrl-C does not reach it), then follows ``RUN_DIR/mesh.json`` until every service is ready or one
failed. The supervisor builds the service list with ``dolphin.mesh.plan.build_plan`` and does
the work (``dolphin.mesh.supervisor``); this module parses arguments, follows and prints.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

OPTIONS_FILE = "options.json"  # the plan fills it in (store URL, ...) for the services
DEFAULT_PLAN = "dolphin.mesh.plan:build_plan"
#: The command that ``up`` launches, followed by ``--run-dir DIR``.
SUPERVISE_COMMAND = (sys.executable, "-m", "dolphin", "mesh", "supervise")
POLL_S = 0.2
#: Seconds per recorded service that ``down`` allows the supervisor (its stop is sequential).
DOWN_S_PER_SERVICE = 12.0
#: /proc's boot time has a resolution of one second.
PID_CLOCK_SLACK_NS = 2_000_000_000


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``mesh`` and its actions (``supervise`` is internal and not listed)."""
    parser = sub.add_parser("mesh", help="start, inspect or stop the mesh's services")
    actions = parser.add_subparsers(dest="mesh_action", metavar="ACTION", required=True)

    up = actions.add_parser("up", help="start every service and wait until all are ready")
    up.add_argument("--store", default="memory",
                    help="memory (an embedded store server) or hazelcast://host:port,...")
    up.add_argument("--exchange", choices=("local", "binance-testnet"), default="local",
                    help="where the trader sends orders (local)")
    up.add_argument("--replay", type=Path, default=None, metavar="BARS",
                    help="replay a bar file instead of live market data")
    up.add_argument("--speed", type=float, default=None, metavar="N",
                    help="replay speed (bars per second multiplier)")
    up.add_argument("--config", type=Path, default=None, metavar="PATH", help="system config")
    up.add_argument("--research", action="store_true",
                    help="allow a non-champion config (a production start refuses one)")
    up.add_argument("--warmup", type=int, default=1000, metavar="BARS",
                    help="bars of the replay published unpaced first (1000)")
    up.add_argument("--captures", type=Path, nargs="+", default=None, metavar="FILE",
                    help="order-book captures the OBF service's local exchange replays "
                         "(default: none, OB features absent)")
    up.add_argument("--exchange-info", type=Path, default=None, metavar="FILE",
                    help="exchangeInfo for captures without one")
    up.add_argument("--exf-base", action="append", default=[], metavar="VENDOR=URL",
                    help="an ExF vendor's base URL (binance=, deribit=, fng=; all three): "
                         "without them the ExF service is idle and not monitored")
    up.add_argument("--prefect", action="store_true",
                    help="also start a Prefect server (SQLite, loopback) and serve the daily "
                         "flows' deployments against it")
    up.add_argument("--duration", type=float, default=None, metavar="S",
                    help="with --foreground: stop after S seconds and print the session summary")
    up.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a service setting (JSON value), e.g. watchdog_period_s=2, "
                         "restart_backoff_s=5, heartbeat_s=1; repeatable")
    _run_dir_arg(up)
    up.add_argument("--foreground", action="store_true",
                    help="supervise in this process until Ctrl-C (no detached supervisor)")
    up.add_argument("--timeout", type=float, default=300.0, metavar="S",
                    help="seconds to wait for every service to be ready (300)")
    up.add_argument("--plan", default=DEFAULT_PLAN, help=argparse.SUPPRESS)
    up.set_defaults(func=_up)

    status = actions.add_parser("status", help="show each service, its heartbeat and the posture")
    _run_dir_arg(status)
    status.add_argument("--json", action="store_true", help="print the state as JSON")
    status.set_defaults(func=_status)

    down = actions.add_parser("down", help="stop every service (reverse order) and the supervisor")
    _run_dir_arg(down)
    down.add_argument("--timeout", type=float, default=None, metavar="S",
                      help=f"seconds before leftovers are SIGKILLed "
                           f"({DOWN_S_PER_SERVICE:g} per service)")
    down.set_defaults(func=_down)

    supervise = actions.add_parser("supervise")  # no help=: not listed, launched by `up`
    _run_dir_arg(supervise)
    supervise.set_defaults(func=_supervise)

    service = actions.add_parser("service")  # not listed: what the supervisor runs per service
    service.add_argument("name")
    _run_dir_arg(service)
    service.set_defaults(func=_service)


def recorded_alive(pid: int | None, state: dict[str, Any] | None) -> bool:
    """Report whether ``pid`` from ``state`` is alive and is still the process recorded.

    A process is recorded (``updated_at``) only after it started; one that started later is an
    unrelated process that reused the pid, and is left alone.
    """
    from dolphin.mesh.supervisor import pid_alive, process_started_ns

    if not pid_alive(pid):
        return False
    started = process_started_ns(int(pid))  # type: ignore[arg-type]
    bound = (state or {}).get("updated_at") or time.time_ns()
    return started is None or started <= bound + PID_CLOCK_SLACK_NS


def _run_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", type=Path, default=Path("runs/mesh"),
                        help="state, pid files and logs (runs/mesh)")


# --- up --------------------------------------------------------------------------------------
#: ``--set`` keys: the settings the services and the supervisor read from ``options.json``.
SETTINGS = ("watchdog_period_s", "restart_backoff_s", "restart_backoff_max_s", "heartbeat_s",
            "period_s", "mc_period_s", "esof_period_s", "replay_wait_s", "ob_speed",
            "ob_cycle_s", "stable_after_s", "flow_intervals", "alert_command", "alert_url",
            "alert_timeout_s", "metrics", "ob_warmup_s")


def _settings(pairs: list[str]) -> dict[str, Any]:
    from dolphin.core.errors import ConfigError

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or key not in SETTINGS:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE with KEY one of "
                              f"{', '.join(SETTINGS)}")
        try:
            value = json.loads(text)
        except ValueError:
            raise ConfigError(f"--set {pair!r}: the value is not JSON (a number, a string "
                              "in quotes, true/false)") from None
        if key.endswith("_s") and (isinstance(value, bool) or not isinstance(value, int | float)
                                   or not value > 0):
            raise ConfigError(f"--set {key}: a duration in seconds must be a number > 0, "
                              f"got {text!r}")
        out[key] = value
    return out


def _exf_bases(pairs: list[str]) -> dict[str, str] | None:
    from dolphin.core.errors import ConfigError

    if not pairs:
        return None
    out = {}
    for pair in pairs:
        vendor, sep, url = pair.partition("=")
        if not sep or vendor not in ("binance", "deribit", "fng") or not url:
            raise ConfigError(f"--exf-base {pair!r}: expected binance=URL, deribit=URL or fng=URL")
        out[vendor] = url
    missing = sorted({"binance", "deribit", "fng"} - set(out))
    if missing:
        raise ConfigError(f"--exf-base: give all three vendors (missing: {', '.join(missing)})")
    return out


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {**_settings(args.set),
        "store": args.store,
        "exchange": args.exchange,
        "replay": str(args.replay) if args.replay is not None else None,
        "speed": args.speed,
        "config": str(args.config) if args.config is not None else None,
        "production": not args.research,
        "prefect": args.prefect,
        "exf_base": _exf_bases(args.exf_base),
        "warmup": args.warmup,
        "captures": [str(p) for p in args.captures] if args.captures else None,
        "exchange_info": str(args.exchange_info) if args.exchange_info else None,
        "plan": args.plan,
    }


def _refuse_if_running(run_dir: Path) -> None:
    from dolphin.core.errors import ConfigError
    from dolphin.mesh.supervisor import read_state

    state = read_state(run_dir)
    if state is not None and recorded_alive(state.get("supervisor_pid"), state):
        raise ConfigError(
            f"a mesh is already running in {run_dir} (supervisor pid {state['supervisor_pid']}, "
            f"phase {state.get('phase')}); stop it first: dolphin mesh down --run-dir {run_dir}"
        )


def _up(args: argparse.Namespace) -> int:
    from dolphin.core.io import atomic_write_text
    from dolphin.mesh.supervisor import STATE_FILE

    run_dir: Path = args.run_dir
    _refuse_if_running(run_dir)
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    options = _options(args)
    atomic_write_text(run_dir / OPTIONS_FILE, json.dumps(options, indent=1) + "\n")
    (run_dir / STATE_FILE).unlink(missing_ok=True)  # a stopped mesh's: must not be followed
    if args.foreground:
        if args.duration is None:
            return _supervise_here(run_dir, options)
        return _timed_foreground(run_dir, options, args.duration)
    with (run_dir / "logs" / "supervisor.log").open("ab") as log:
        proc = subprocess.Popen(
            [*SUPERVISE_COMMAND, "--run-dir", str(run_dir)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    print(f"mesh starting in {run_dir} (supervisor pid {proc.pid})", flush=True)
    try:
        return _follow_start(proc, run_dir, args.timeout)
    except KeyboardInterrupt:
        _stop_quietly(run_dir)
        raise


def _follow_start(proc: subprocess.Popen, run_dir: Path, timeout_s: float) -> int:
    from dolphin.mesh.supervisor import read_state

    deadline = time.monotonic() + timeout_s
    seen: set[str] = set()
    while True:
        state = read_state(run_dir)
        if state is not None and state.get("supervisor_pid") == proc.pid:
            _print_ready(state, seen)
            if state.get("phase") == "up":
                print(f"mesh up: {len(state['services'])} service(s); "
                      f"dolphin mesh status --run-dir {run_dir}")
                _print_notes(run_dir)
                return 0
            if state.get("failed_service") or state.get("phase") in ("failed", "down"):
                return _report_failure(proc, run_dir)
        if proc.poll() is not None:
            return _report_failure(proc, run_dir)
        if time.monotonic() > deadline:
            pending = _pending_service(state)
            print(f"mesh did not come up within {timeout_s:g}s (waiting for: {pending}); "
                  "stopping it", file=sys.stderr)
            _stop_quietly(run_dir)
            return 1
        time.sleep(POLL_S)


def _print_notes(run_dir: Path) -> None:
    """Print what the plan left out or cannot reach (``options.json``'s notes)."""
    try:
        notes = json.loads((run_dir / OPTIONS_FILE).read_text()).get("notes") or []
    except (OSError, ValueError):
        return
    for note in notes:
        print(f"  note: {note}", flush=True)


def _print_ready(state: dict[str, Any], seen: set[str]) -> None:
    for name, svc in state.get("services", {}).items():
        if name not in seen and svc.get("state") in ("ready", "running"):
            seen.add(name)
            print(f"  {name:<10} ready (pid {svc.get('pid')})", flush=True)


def _pending_service(state: dict[str, Any] | None) -> str:
    for name, svc in (state or {}).get("services", {}).items():
        if svc.get("state") not in ("ready", "running"):
            return name
    return "the supervisor"


def _report_failure(proc: subprocess.Popen, run_dir: Path) -> int:
    from dolphin.mesh.supervisor import log_tail, read_state

    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=60.0)  # it stops the services it started before it exits
    state = read_state(run_dir) or {}
    name = state.get("failed_service")
    if name:
        svc = state.get("services", {}).get(name, {})
        log = Path(svc.get("log") or run_dir / "logs" / f"{name}.log")
        print(f"mesh failed: service {name!r} did not start: {svc.get('last_error')}",
              file=sys.stderr)
    else:
        log = run_dir / "logs" / "supervisor.log"
        reason = state.get("error") or f"supervisor exited with code {proc.returncode}"
        print(f"mesh failed: {reason}", file=sys.stderr)
    tail = log_tail(log)
    if tail:
        print(f"--- last lines of {log}:\n{tail}", file=sys.stderr)
    return 1


def _stop_quietly(run_dir: Path) -> None:
    from dolphin.mesh.supervisor import read_state

    with contextlib.suppress(Exception):
        state = read_state(run_dir)
        if state is not None and recorded_alive(state.get("supervisor_pid"), state):
            stop_mesh(run_dir)


def _load_plan(spec: str) -> Any:
    from dolphin.core.errors import ConfigError

    module, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), attr or "build_plan")
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"mesh plan {spec!r} cannot be loaded: {exc}") from exc


def _supervise_here(run_dir: Path, options: dict[str, Any]) -> int:
    from dolphin.mesh.supervisor import record_failure, run_supervisor

    plan = options.pop("plan", None) or DEFAULT_PLAN
    try:
        specs = _load_plan(plan)(options, run_dir)
    except Exception as exc:  # recorded for `up`, which reports it; then raised as usual
        record_failure(run_dir, f"{type(exc).__name__}: {exc}")
        raise
    _print_notes(run_dir)
    tuning = {k: float(options[o]) for k, o in (("backoff_initial_s", "restart_backoff_s"),
                                                 ("backoff_max_s", "restart_backoff_max_s"),
                                                 ("stable_after_s", "stable_after_s"))
              if options.get(o) is not None}
    return run_supervisor(specs, run_dir, **tuning)


def _timed_foreground(run_dir: Path, options: dict[str, Any], duration_s: float) -> int:
    """Supervise here for ``duration_s`` seconds (then stop as on SIGTERM); print the summary."""
    import os
    import signal
    import threading

    from dolphin.core.errors import ConfigError
    from dolphin.mesh.summary import print_summary

    if not duration_s > 0:
        raise ConfigError(f"--duration must be positive, got {duration_s}")
    timer = threading.Timer(duration_s, os.kill, (os.getpid(), signal.SIGTERM))
    timer.daemon = True
    timer.start()
    try:
        code = _supervise_here(run_dir, options)
    finally:
        timer.cancel()
    return print_summary(run_dir) if code == 0 else code


def _supervise(args: argparse.Namespace) -> int:
    from dolphin.core.errors import ConfigError
    from dolphin.mesh.supervisor import record_failure

    path = args.run_dir / OPTIONS_FILE
    try:
        options = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        record_failure(args.run_dir, f"{path}: unreadable options: {exc}")
        raise ConfigError(f"{path}: unreadable mesh options: {exc}") from exc
    return _supervise_here(args.run_dir, options)


def _service(args: argparse.Namespace) -> int:
    from dolphin.mesh.runners import service_main

    return service_main(args.name, args.run_dir)


# --- status ----------------------------------------------------------------------------------
def _extras(run_dir: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        from dolphin.mesh.plan import status_extras

        return status_extras(run_dir), None
    except Exception as exc:  # the store may be down or not wired yet: status still answers
        return None, f"{type(exc).__name__}: {exc}"


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "none"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def _status(args: argparse.Namespace) -> int:
    from dolphin.mesh.supervisor import read_state

    state = read_state(args.run_dir)
    if state is None:
        print(f"no mesh recorded in {args.run_dir}")
        return 1
    alive = recorded_alive(state.get("supervisor_pid"), state)
    extras, store_error = _extras(args.run_dir) if alive else (None, "supervisor not running")
    if args.json:
        print(json.dumps({**state, "supervisor_alive": alive, "extras": extras,
                          "store_error": store_error}, indent=1))  # fmt: skip
    else:
        _print_status(args.run_dir, state, alive, extras, store_error)
    healthy = all(s.get("state") in ("ready", "running") for s in state["services"].values())
    return 0 if alive and state.get("phase") == "up" and healthy else 1


def _print_status(run_dir: Path, state: dict[str, Any], alive: bool,
                  extras: dict[str, Any] | None, store_error: str | None) -> None:
    pid = state.get("supervisor_pid")
    started = state.get("started_at")
    up_for = _age(time.time() - started / 1e9) if started else "?"
    note = "" if alive else " (NOT RUNNING: the state below is the last one recorded)"
    print(f"mesh {run_dir}: phase {state.get('phase')}, supervisor pid {pid}, "
          f"started {up_for} ago{note}")
    if state.get("failed_service"):
        print(f"failed service: {state['failed_service']}")
    if state.get("error"):
        print(f"error: {state['error']}")
    beats = (extras or {}).get("heartbeats") or {}
    print(f"{'SERVICE':<10} {'STATE':<10} {'PID':>7} {'RESTARTS':>8} {'HEARTBEAT':>9}  LAST ERROR")
    for name, svc in state["services"].items():
        beat = "?" if extras is None else _age(beats[name]) if name in beats else "-"
        print(f"{name:<10} {svc.get('state', '?'):<10} {svc.get('pid') or '-':>7} "
              f"{svc.get('restarts', 0):>8} {beat:>9}  {svc.get('last_error') or '-'}")
    if extras is None:
        print(f"posture ?, Rm ?: store unreachable ({store_error})")
    else:
        rm = extras.get("rm")
        print(f"posture {extras.get('posture') or 'unknown'}, "
              f"Rm {'unknown' if rm is None else f'{float(rm):.3f}'}")


# --- down ------------------------------------------------------------------------------------
def _recorded_pids(run_dir: Path, state: dict[str, Any] | None) -> dict[str, int]:
    pids = {name: svc["pid"] for name, svc in (state or {}).get("services", {}).items()
            if svc.get("pid")}  # fmt: skip
    for path in sorted((run_dir / "pids").glob("*.pid")):
        with contextlib.suppress(OSError, ValueError):
            pids.setdefault(path.stem, int(path.read_text().strip()))
    return pids


def _wait_dead(pids: list[int], timeout_s: float) -> bool:
    from dolphin.mesh.supervisor import pid_alive

    deadline = time.monotonic() + timeout_s
    while any(pid_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _kill(pid: int, sig: int) -> None:
    if pid == os.getpid():  # a state file naming this very process (a foreground mesh)
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def stop_mesh(run_dir: Path, timeout_s: float | None = None) -> list[str]:
    """Stop the mesh recorded in ``run_dir``; return what was still running (empty: nothing).

    SIGTERM to the supervisor, which stops the services in reverse order; whatever is still
    alive after ``timeout_s`` (the supervisor included) is SIGKILLed. Idempotent.
    """
    from dolphin.mesh.supervisor import read_state, write_state

    state = read_state(run_dir)
    sup = (state or {}).get("supervisor_pid")
    sup_alive = recorded_alive(sup, state)
    pids = _recorded_pids(run_dir, state)
    running = (["supervisor"] if sup_alive else []) + [
        n for n, p in pids.items() if n != "supervisor" and recorded_alive(p, state)]
    if timeout_s is None:
        timeout_s = DOWN_S_PER_SERVICE * max(1, len(pids)) + 5.0
    if sup_alive:
        _kill(sup, signal.SIGTERM)
        if not _wait_dead([sup], timeout_s):
            _kill(sup, signal.SIGKILL)  # its children die with it (PR_SET_PDEATHSIG)
            _wait_dead([sup], 5.0)
    state = read_state(run_dir)
    leftovers = [p for p in _recorded_pids(run_dir, state).values() if recorded_alive(p, state)]
    for pid in leftovers:
        _kill(pid, signal.SIGKILL)
    _wait_dead(leftovers, 5.0)
    for path in (run_dir / "pids").glob("*.pid"):
        path.unlink(missing_ok=True)
    if state is not None and state.get("phase") not in ("down", "failed"):
        # The supervisor died without saying so: record what is true now.
        for svc in state.get("services", {}).values():
            svc.update(pid=None, state="stopped")
        write_state(run_dir, {**state, "phase": "down"})
    return running


def _down(args: argparse.Namespace) -> int:
    running = stop_mesh(args.run_dir, args.timeout)
    if not running:
        print(f"no mesh running in {args.run_dir}")
    else:
        print(f"mesh in {args.run_dir} stopped ({', '.join(running)})")
    return 0


def interrupt_note(args: argparse.Namespace, command: str) -> str:
    """The Ctrl-C line of ``dolphin mesh``: what is left running."""
    if args.mesh_action == "up":
        return f"the mesh being started was stopped again; re-run: {command}"
    if args.mesh_action == "down":
        return (f"the mesh may still be stopping; see `dolphin mesh status --run-dir "
                f"{args.run_dir}`, re-run: {command}")
    return f"nothing changed; re-run: {command}"
