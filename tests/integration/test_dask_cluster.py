"""Research on a Dask cluster (a real ``distributed`` LocalCluster on 127.0.0.1).

The sweep gives the same bytes as one process, with or without a worker SIGKILLed mid-run (Dask
runs its chunk again elsewhere); the command with ``--cluster local:2`` killed with SIGKILL
leaves no worker behind and a re-run resumes from its saved chunks to the same file. The scan
backfill, the MC sampler, the walk-forward and the optimiser give what one process gives. A bad
``--cluster`` is a typed error naming the value.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from dolphin.adapters.cluster import ClusterError, ClusterSpec, DaskRunner
from dolphin.backtest import sweep as sw
from dolphin.backtest import sweep_run as sr
from dolphin.backtest.mc_sample import sample
from dolphin.backtest.optimize import load_space, optimize
from dolphin.backtest.walkforward import walk_forward
from dolphin.core.config import ScannerConfig
from dolphin.core.errors import ConfigError
from dolphin.scanner import scan_prices
from dolphin.scanner.backfill import scan_prices_parallel
from dolphin.scanner.inputs import load_scan_input
from tests.kit.paths import CONFIGS, REPO, SPOT_1M_2021, require
from tests.kit.procs import children, process_alive, wait_for
from tests.kit.scans import spot_2021_scans

GRID = {"vel_div_threshold": [-0.015, -0.02, -0.025], "max_hold_bars": [60, 120, 240],
        "fraction": [0.1, 0.2]}


@pytest.fixture(scope="module")
def scans() -> pd.DataFrame:
    return spot_2021_scans("2021-04-19", "2021-04-22")


@pytest.fixture(scope="module")
def data(scans):
    return sw.prepare(scans)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """The sweep in this process: its output file's bytes and its summary."""
    out = tmp_path_factory.mktemp("ref") / "sweep.parquet"
    _, summary = sr.run_sweep(data, sr.expand_grid(GRID), out, progress=False, chunk=1)
    return out.read_bytes(), summary


@pytest.fixture(scope="module")
def runner():
    with DaskRunner("local:2") as r:
        yield r


def test_the_cluster_gives_the_same_bytes_as_one_process(data, reference, runner, tmp_path):
    out = tmp_path / "sweep.parquet"
    _, summary = sr.run_sweep(data, sr.expand_grid(GRID), out, progress=False, chunk=1,
                              runner=runner)
    assert out.read_bytes() == reference[0]
    assert summary == reference[1]


def test_a_worker_killed_mid_run_loses_nothing(data, reference, runner, tmp_path):
    out = tmp_path / "sweep.parquet"
    before = runner.worker_pids()
    assert len(before) == 2
    killed, lost = [], []

    def suspicious(dask_scheduler) -> int:  # tasks whose worker died while running them
        return sum(ts.suspicious for key, ts in dask_scheduler.tasks.items()
                   if str(key).startswith("chunk-"))

    def on_chunk(n: int) -> None:
        if n == 1:  # both workers are busy with the next chunks: kill one in its chunk
            pid = next(iter(before.values()))
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        lost.append(runner.client.run_on_scheduler(suspicious))

    _, summary = sr.run_sweep(data, sr.expand_grid(GRID), out, progress=False, chunk=1,
                              runner=runner, on_chunk=on_chunk)
    assert out.read_bytes() == reference[0] and summary == reference[1]
    assert max(lost) >= 1  # a chunk was running on the killed worker and ran again
    assert wait_for(lambda: len(runner.worker_pids()) == 2, 30, 0.2)  # the nanny restarted it
    assert killed[0] not in runner.worker_pids().values() and not process_alive(killed[0])


def test_the_command_killed_leaves_no_worker_and_resumes_to_the_same_file(
        scans, reference, tmp_path):
    scans.to_parquet(tmp_path / "scans.parquet")
    (tmp_path / "grid.yaml").write_text(yaml.safe_dump(GRID, sort_keys=False))
    out = tmp_path / "sweep.parquet"
    cmd = [sys.executable, "-m", "dolphin", "sweep", "--scans", str(tmp_path / "scans.parquet"),
           "--grid", str(tmp_path / "grid.yaml"), "--out", str(out), "--chunk", "1",
           "--cluster", "local:2", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        work = sr.work_dir(out)
        assert wait_for(lambda: len(list(work.glob("part-*.parquet"))) >= 1
                        or proc.poll() is not None, 180, 0.02), "the sweep never saved"
        workers = children(proc.pid)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert len(workers) >= 2, workers
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.communicate(timeout=60)
    assert wait_for(lambda: not any(process_alive(p) for p in workers), 10.0, 0.05), \
        "orphan workers survived"
    saved = len(list(sr.work_dir(out).glob("part-*.parquet")))
    assert 1 <= saved < 18 and not out.exists()
    t = time.monotonic()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert out.read_bytes() == reference[0], f"resumed in {time.monotonic() - t:.1f} s"
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["best_by_dsr"] == reference[1]["best_by_dsr"]


def test_the_backfill_on_the_cluster_is_byte_identical(runner, tmp_path):
    wide, real = load_scan_input(require(SPOT_1M_2021))
    wide, real = wide.iloc[:12_000].reset_index(drop=True), real[:12_000]
    cfg = ScannerConfig()
    scan_prices(wide, cfg, real=real).to_parquet(tmp_path / "one.parquet")
    scan_prices_parallel(wide, cfg, real=real, runner=runner, chunks=5).to_parquet(
        tmp_path / "cluster.parquet")
    assert (tmp_path / "one.parquet").read_bytes() == (tmp_path / "cluster.parquet").read_bytes()


def test_mc_samples_on_the_cluster_equal_one_process(runner, tmp_path):
    path = tmp_path / "scans.parquet"
    spot_2021_scans("2021-04-19", "2021-04-20 12:00").to_parquet(path)
    one = sample(path, 12, paths=3, seed=5, workers=1)
    on_cluster = sample(path, 12, paths=3, seed=5, runner=runner)
    assert len(one) == 12 and one["run_id"].nunique() == 4
    pd.testing.assert_frame_equal(one, on_cluster, check_exact=True)


def test_walk_forward_and_optimize_on_the_cluster_equal_one_process(runner):
    five = spot_2021_scans("2021-04-04 12:00", "2021-04-10")
    grid = sr.expand_grid({"vel_div_threshold": [-0.015, -0.02, -0.025],
                           "fixed_tp_pct": [0.006, 0.0095, 0.013]})
    one, stitched = walk_forward(five, grid, 2, 1, select="dsr")
    on_cluster, stitched_c = walk_forward(five, grid, 2, 1, select="dsr", runner=runner)
    pd.testing.assert_frame_equal(one, on_cluster, check_exact=True)
    assert stitched == stitched_c
    data = sw.prepare(five)
    space = load_space(CONFIGS / "grids" / "space.yaml")
    a, sa = optimize(data, space, 12, seed=3, batch=6)
    b, sb = optimize(data, space, 12, seed=3, batch=6, runner=runner)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert sa == sb


@pytest.mark.parametrize("text", ["local:0", "local", "local:two", "dask://h:1", "tcp://h",
                                  "tcp://h:1/x", ""])
def test_a_bad_cluster_is_a_config_error_naming_it(text):
    with pytest.raises(ConfigError, match="--cluster"):
        ClusterSpec.parse(text)


def test_a_scheduler_that_does_not_answer_is_a_cluster_error():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    runner = DaskRunner(f"tcp://127.0.0.1:{port}")
    import dolphin.adapters.cluster as cl

    old, cl.CONNECT_TIMEOUT_S = cl.CONNECT_TIMEOUT_S, 2.0
    try:
        with pytest.raises(ClusterError, match=f"127.0.0.1:{port}"), runner:
            pass
    finally:
        cl.CONNECT_TIMEOUT_S = old
    assert repr(runner) == f"DaskRunner(tcp://127.0.0.1:{port})"
