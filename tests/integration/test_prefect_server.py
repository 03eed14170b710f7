"""A real `prefect server start` (SQLite, loopback) fires a served deployment's schedule.

The server starts in a temporary home; a child process serves two deployments on 5-second
intervals against it and a shared store (the embedded store served over loopback TCP,
``adapters.netstore``): the EsoF refresh, which must reach COMPLETED and beat RUNNING, and
the Nautilus daily flow on a scans file that does not exist, which must fail and leave a
FAULTED heartbeat written by its hook in the serving side's process tree. Everything started
is stopped, and no process carrying the test's home is left at the end.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dolphin.adapters.prefect.server import PrefectServer, PrefectServerError
from tests.kit.paths import REPO
from tests.kit.procs import process_alive, wait_for

ESOF, NAUTILUS = "dolphin-esof-refresh", "dolphin-nautilus-blue"
#: The scheduler's loop (60 s by default) made short, so a new deployment's runs exist at once.
FAST = {"PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2"}
SERVE = """
import sys
from dolphin.flows.deployments import serve_deployments
serve_deployments(sys.argv[1], only=sys.argv[2:], scans="{missing}",
                  work_dir="{work}", interval_overrides={{n: 5 for n in sys.argv[2:]}})
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parent: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent[int(stat.parent.name)] = int(stat.read_text().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    out, frontier = set(), {pid}
    while frontier:
        kids = {p for p, pp in parent.items() if pp in frontier} - out
        out |= kids
        frontier = kids
    return out


def processes_mentioning(marker: str) -> list[int]:
    """Pids whose environment mentions ``marker`` (the test's home)."""
    found = []
    for env in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in env.read_bytes() and int(env.parent.name) != os.getpid():
                found.append(int(env.parent.name))
        except (OSError, ValueError):
            continue
    return [p for p in found if process_alive(p)]


def runs_of(deployment: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(deployment_filter=DeploymentFilter(
            name=DeploymentFilterName(any_=[deployment])))


def stop_tree(proc: subprocess.Popen, grace_s: float = 15.0) -> None:
    """SIGTERM the serving child, then SIGKILL it and everything it started."""
    tree = descendants(proc.pid)
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pid in tree | descendants(proc.pid):
        if process_alive(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.mark.timeout(120)
def test_a_scheduled_run_completes_and_a_failing_one_beats_faulted(tmp_path):
    from prefect.client.schemas.objects import StateType
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from dolphin.adapters.netstore.server import StoreServer
    from dolphin.bootstrap import open_store
    from dolphin.store.schema import ESOF_LATEST, FEATURES, HEARTBEAT, decode_value

    t0 = time.monotonic()
    marker = str(tmp_path)
    store_server = StoreServer().start()
    url = f"tcp://{store_server.address}"
    serving = None
    try:
        with PrefectServer(tmp_path / "server", free_port(), settings=FAST) as server:
            started_s = time.monotonic() - t0
            assert server.healthy() and (tmp_path / "server" / "prefect.db").exists()
            env = {**os.environ, "PREFECT_API_URL": server.api_url,
                   "PREFECT_HOME": str(tmp_path / "client"),
                   "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                   "PREFECT_RUNNER_POLL_FREQUENCY": "2",
                   "PYTHONPATH": str(REPO / "src")}
            code = SERVE.format(missing=tmp_path / "no_scans.parquet", work=tmp_path / "work")
            serving = subprocess.Popen([sys.executable, "-c", code, url, ESOF, NAUTILUS],
                                       env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                       stderr=open(tmp_path / "serve.log", "wb"))  # noqa: SIM115
            with temporary_settings({PREFECT_API_URL: server.api_url}):
                def settled(name: str, want: StateType) -> bool:
                    return any(r.state_type == want for r in runs_of(name))

                assert wait_for(lambda: settled(ESOF, StateType.COMPLETED), 75, 1.0), \
                    (tmp_path / "serve.log").read_text()[-3000:]
                assert wait_for(lambda: settled(NAUTILUS, StateType.FAILED), 30, 1.0), \
                    (tmp_path / "serve.log").read_text()[-3000:]
            store = open_store(url)
            try:
                esof = decode_value(store.map(HEARTBEAT).get(f"prefect:{ESOF}")).data
                assert esof["state"] == "RUNNING"
                assert decode_value(store.map(FEATURES).get(ESOF_LATEST)).data["source"]
                beat = decode_value(
                    store.map(HEARTBEAT).get("prefect:dolphin-nautilus-daily")).data
                assert beat["state"] == "FAULTED"
                assert "no_scans.parquet" in beat["reason"], beat
            finally:
                store.close()
            stop_tree(serving)
            server_pid = server.pid
        assert not process_alive(server_pid)
    finally:
        if serving is not None:
            stop_tree(serving)
        store_server.close()
    assert wait_for(lambda: not processes_mentioning(marker), 10, 0.2), \
        processes_mentioning(marker)
    elapsed = time.monotonic() - t0
    print(f"server healthy after {started_s:.1f} s; test {elapsed:.1f} s")
    assert elapsed < 90


def test_a_server_that_does_not_answer_in_time_is_stopped_and_names_its_log(tmp_path):
    server = PrefectServer(tmp_path, free_port(), start_timeout_s=0.5)
    with pytest.raises(PrefectServerError, match=r"server\.log"):
        server.start()
    assert server.proc is None
    assert wait_for(lambda: not processes_mentioning(str(tmp_path)), 10, 0.2)


def test_serve_forever_restarts_on_its_home_and_its_server_dies_with_it(tmp_path):
    import json

    port = free_port()
    ready = tmp_path / "ready.json"
    code = ("import sys; from pathlib import Path; "
            "from dolphin.adapters.prefect.server import serve_forever; "
            f"sys.exit(serve_forever(Path({str(tmp_path / 'home')!r}), {port}, "
            f"Path({str(ready)!r})))")

    def start() -> tuple[subprocess.Popen, dict]:
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path,
                                env={**os.environ, "PYTHONPATH": str(REPO / "src")})
        assert wait_for(ready.exists, 60, 0.2)
        return proc, json.loads(ready.read_text())

    proc, info = start()
    try:
        assert info["api_url"] == f"http://127.0.0.1:{port}/api" and process_alive(info["pid"])
        proc.send_signal(signal.SIGTERM)  # a clean stop: exit 0, ready file gone
        assert proc.wait(20) == 0
        assert not ready.exists() and not process_alive(info["pid"])
        proc, info = start()  # the same home and database again: restart = cold start
        proc.kill()  # the supervisor dies hard: the kernel kills its server (PDEATHSIG)
        proc.wait(10)
        assert wait_for(lambda: not process_alive(info["pid"]), 10, 0.1)
    finally:
        stop_tree(proc)
    assert wait_for(lambda: not processes_mentioning(str(tmp_path)), 10, 0.2)
