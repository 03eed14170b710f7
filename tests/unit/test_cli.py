"""Every command and subcommand answers --help; errors map to exit codes."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from dolphin.cli import build_parser, main


def _all_commands() -> list[list[str]]:
    out: list[list[str]] = []

    def walk(parser: argparse.ArgumentParser, prefix: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    out.append([*prefix, name])
                    walk(sub, [*prefix, name])

    walk(build_parser(), [])
    return out


COMMANDS = _all_commands()


def test_the_main_commands_are_registered():
    names = {c[0] for c in COMMANDS}
    assert {"run", "data", "config", "scan", "backtest", "hz"} <= names
    assert ["data", "info"] in COMMANDS and ["scan", "calibrate"] in COMMANDS


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: " ".join(c))
def test_every_command_has_help(cmd, capsys):
    with pytest.raises(SystemExit) as info:
        main([*cmd, "--help"])
    assert info.value.code == 0
    assert "usage: dolphin" in capsys.readouterr().out


def test_python_dash_m_dolphin_is_the_same_command():
    proc = subprocess.run([sys.executable, "-m", "dolphin", "--help"], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0 and "scan" in proc.stdout


def test_no_command_prints_help_and_returns_2(capsys):
    assert main([]) == 2
    assert "usage: dolphin" in capsys.readouterr().out


def test_config_show_prints_the_champion_id(capsys):
    from dolphin.core.config import CHAMPION_BLUE_ID

    assert main(["config", "show"]) == 0
    assert f"config id: {CHAMPION_BLUE_ID} (champion)" in capsys.readouterr().out


def test_config_error_exits_3_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yml"
    bad.write_text("nonsense_field: 1\n")
    assert main(["config", "show", str(bad)]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nonsense_field" in err[0] and str(bad) in err[0]


# ------------------------------------------------------------------ no traceback for user input
@pytest.fixture(scope="module")
def small_scans(tmp_path_factory):
    from tests.kit.scans import random_scans

    path = tmp_path_factory.mktemp("scans") / "scans.parquet"
    random_scans(3 * 1440, 6, seed=3).to_parquet(path)
    return path


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dolphin: error: "), err
    return err[0]


def _sweep(scans, grid, out, *extra) -> int:
    return main(["sweep", "--scans", str(scans), "--grid", str(grid), "--out", str(out),
                 "--no-progress", *extra])  # fmt: skip


def test_an_empty_grid_is_refused_and_leaves_nothing(small_scans, tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text("fixed_tp_pct: []\n")
    assert _sweep(small_scans, grid, tmp_path / "s.parquet") == 3
    assert "fixed_tp_pct have no values" in _one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.yaml"]


def test_an_all_invalid_grid_is_refused_and_leaves_no_work_folder(small_scans, tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text("vel_div_threshold: [-0.001]\nvel_div_extreme: [-0.0005]\n")
    assert _sweep(small_scans, grid, tmp_path / "s.parquet") == 3
    line = _one_error_line(capsys)
    assert "no valid combination (1 rejected)" in line and "vel_div_extreme" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.yaml"]


def test_a_sweep_failing_before_its_first_chunk_removes_its_work_folder(small_scans, tmp_path,
                                                                        monkeypatch):
    from dolphin.backtest import sweep_run

    def boom(*a, **k):
        raise KeyboardInterrupt  # Ctrl-C (or any failure) before anything was computed

    monkeypatch.setattr(sweep_run, "evaluate", boom)
    grid = tmp_path / "grid.yaml"
    grid.write_text("fixed_tp_pct: [0.006, 0.008]\n")
    assert _sweep(small_scans, grid, tmp_path / "s.parquet") == 130
    assert not (tmp_path / "s.parquet.work").exists()


def test_a_finished_sweep_rerun_says_complete_and_recomputes_nothing(small_scans, tmp_path,
                                                                     capsys, monkeypatch):
    from dolphin.backtest import sweep_run

    grid = tmp_path / "grid.yaml"
    grid.write_text("fixed_tp_pct: [0.006, 0.008]\nmax_hold_bars: [60, 120]\n")
    out = tmp_path / "s.parquet"
    assert _sweep(small_scans, grid, out) == 0
    first = capsys.readouterr().out
    out.with_suffix(".html").unlink()
    monkeypatch.setattr(sweep_run, "evaluate", lambda *a, **k: pytest.fail("recomputed"))
    assert _sweep(small_scans, grid, out) == 0
    again = capsys.readouterr().out
    lines = again.splitlines()
    assert lines[0].startswith("bar 1m (base config): ")  # units first, as on every run
    assert lines[1].startswith("warning: bar size 1m differs from the config's calibration bar")
    assert lines[2].startswith(f"sweep already complete: {out} (4 combinations")
    summary = next(ln for ln in first.splitlines() if ln.startswith("{"))
    assert summary in again  # the same summary JSON is printed
    assert out.with_suffix(".html").exists()  # and the report written
    grid.write_text("fixed_tp_pct: [0.006, 0.01]\n")  # another grid is computed, not reused
    monkeypatch.undo()
    assert _sweep(small_scans, grid, out) == 0
    assert "already complete" not in capsys.readouterr().out


def test_an_optimize_space_with_low_above_high_is_refused(small_scans, tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("fixed_tp_pct: {low: 0.02, high: 0.01}\n")
    assert main(["optimize", "--scans", str(small_scans), "--space", str(space),
                 "--trials", "4"]) == 3  # fmt: skip
    assert "low (0.02) is above high (0.01)" in _one_error_line(capsys)


@pytest.mark.parametrize("text", ["fixed_tp_pct: {choices: []}\n",
                                  "fixed_tp_pct: {low: a, high: 0.01}\n",
                                  "fixed_tp_pct: {low: 0.0, high: 0.01, log: true}\n",
                                  "not_a_param: {low: 1, high: 2}\n"])
def test_other_bad_optimize_spaces_are_one_line_errors(small_scans, tmp_path, capsys, text):
    space = tmp_path / "space.yaml"
    space.write_text(text)
    assert main(["optimize", "--scans", str(small_scans), "--space", str(space),
                 "--trials", "2"]) == 3  # fmt: skip
    _one_error_line(capsys)


def test_optimize_with_zero_trials_is_refused(small_scans, tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("fixed_tp_pct: {low: 0.005, high: 0.01}\n")
    assert main(["optimize", "--scans", str(small_scans), "--space", str(space),
                 "--trials", "0"]) == 3  # fmt: skip
    assert "--trials" in _one_error_line(capsys)


def test_a_one_symbol_run_is_refused_before_scanning(tmp_path, capsys):
    from tests.kit.builders import long_bars

    bars = tmp_path / "one.parquet"
    long_bars(("AAAUSDT",), periods=50).to_parquet(bars)
    out = tmp_path / "run"
    assert main(["run", "--bars", str(bars), "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert "1 symbol (AAAUSDT)" in line and "at least 2 symbols" in line and str(bars) in line
    assert not out.exists()


def test_walkforward_on_a_missing_scans_file_is_a_typed_error(tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text("fixed_tp_pct: [0.006]\n")
    assert main(["walkforward", "--scans", str(tmp_path / "nope.parquet"), "--grid", str(grid),
                 "--train-days", "1", "--test-days", "1"]) == 2  # fmt: skip
    assert "cannot read scans" in _one_error_line(capsys)


def test_stale_temps_of_a_killed_run_are_removed_on_the_next_run(small_scans, tmp_path):
    dead = _dead_pid()
    out = tmp_path / "s.parquet"
    work = tmp_path / "s.parquet.work"
    work.mkdir()
    stale = [tmp_path / f".s.parquet.{dead}-0123456789ab.tmp",
             tmp_path / f".s.summary.json.{dead}-0123456789ab.tmp",
             work / f".part-000000.parquet.{dead}-0123456789ab.tmp"]
    mine = tmp_path / f".s.parquet.{os.getpid()}-0123456789ab.tmp"  # a live writer's file
    other = [tmp_path / "keep.tmp", tmp_path / f".other.parquet.{dead}-0123456789ab.tmp"]
    for p in [*stale, mine, *other]:
        p.write_bytes(b"half")
    grid = tmp_path / "grid.yaml"
    grid.write_text("fixed_tp_pct: [0.006]\n")
    assert _sweep(small_scans, grid, out) == 0
    assert not any(p.exists() for p in stale)
    assert mine.exists() and all(p.exists() for p in other)


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_ctrl_c_inside_a_command_is_exit_130_with_one_line(monkeypatch, capsys):
    from dolphin.commands import config as config_cmd

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(config_cmd, "_show", interrupted)
    assert main(["config", "show"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["dolphin: interrupted: nothing resumable was saved (no output is ever "
                   "half-written); re-run: dolphin config show"]


@pytest.mark.parametrize("argv, needle", [
    (["paper", "--research", "--replay", "{tmp}/nope.parquet"], "replay file does not exist"),
    (["paper", "--research", "--replay", "{scans}"], "cannot read replay bars"),
    (["mc", "sample", "--scans", "{scans}", "--n", "20", "--paths", "0", "--out",
      "{tmp}/m.parquet"], "'--paths': must be at least 1"),
    (["backtest", "--scans", "{scans}", "--out", "{tmp}/bt", "--engine", "nautilus",
      "--exchange-info", "{tmp}/nope.json"], "exchangeInfo file does not exist"),
], ids=["paper-missing-replay", "paper-replay-not-bars", "mc-zero-paths", "bt-missing-info"])
def test_bad_command_input_is_one_line_not_a_traceback(argv, needle, small_scans, tmp_path,
                                                       capsys):
    argv = [a.format(tmp=tmp_path, scans=small_scans) for a in argv]
    assert main(argv) == 2
    assert needle in _one_error_line(capsys)


def test_factors_esof_writes_one_row_per_day(tmp_path, capsys):
    import pandas as pd

    out = tmp_path / "esof.parquet"
    assert main(["factors", "esof", "--start", "2025-01-01", "--end", "2025-12-31",
                 "--out", str(out)]) == 0
    table = pd.read_parquet(out)
    assert len(table) == 365 and table["date"].is_monotonic_increasing
    # 2025's three retrogrades at noon: Mar 15-Apr 6, Jul 18-Aug 10, Nov 10-Nov 29 (stations
    # Mar 15 06:46, Apr 7 11:08, Jul 18 04:45, Aug 11 07:30, Nov 9 19:02, Nov 29 17:38 UTC)
    assert int(table["mercury_retrograde"].sum()) == 23 + 24 + 20
    assert "365 days" in capsys.readouterr().out
    assert main(["factors", "esof", "--start", "2025-02-01", "--end", "2025-01-01",
                 "--out", str(out)]) == 2
