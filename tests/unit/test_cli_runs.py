"""The CLI's -v/-q anywhere, --help with defaults, the run index (`dolphin runs list`), the
output manifest that clears an earlier run's stale files, and paper's compact status."""

from __future__ import annotations

import io
import json
import logging
import os

import pytest

from dolphin.cli import log_flags, log_level, main
from dolphin.core.manifest import MANIFEST, record_outputs
from dolphin.core.runs_index import ENV_INDEX, read_runs, record_run


@pytest.fixture
def index(tmp_path, monkeypatch):
    path = tmp_path / "runs" / "index.jsonl"
    monkeypatch.setenv(ENV_INDEX, str(path))
    return path


@pytest.mark.parametrize(("argv", "rest", "flags"), [
    (["sweep", "--scans", "s", "-v"], ["sweep", "--scans", "s"], {"verbose"}),
    (["-q", "runs", "list"], ["runs", "list"], {"quiet"}),
    (["runs", "--quiet", "list", "-vq"], ["runs", "list"], {"quiet", "verbose"}),
    (["paper", "--", "-v"], ["paper", "--", "-v"], set()),
    (["sweep", "-vx"], ["sweep", "-vx"], set()),  # not only v/q letters: argparse's business
])  # fmt: skip
def test_log_flags_are_taken_from_anywhere_before_a_double_dash(argv, rest, flags):
    assert log_flags(argv) == (rest, flags)


def test_log_levels():
    assert log_level(set()) == logging.INFO
    assert log_level({"quiet"}) == logging.WARNING
    assert log_level({"verbose", "quiet"}) == logging.DEBUG


@pytest.mark.parametrize(("flag", "level"), [("-v", logging.DEBUG), ("-q", logging.WARNING)])
def test_a_log_flag_after_the_subcommand_sets_the_level(flag, level, capsys):
    assert main(["config", "show", flag]) == 0
    assert logging.getLogger().level == level
    assert "# config id:" in capsys.readouterr().out
    logging.getLogger().setLevel(logging.WARNING)


def test_help_shows_defaults_but_not_none_or_flags(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "combinations per kernel call (default: 256)" in text
    assert "worker processes (default: 1)" in text
    assert "(default: None)" not in text and "(default: False)" not in text
    with pytest.raises(SystemExit):
        main(["study", "leverage", "--help"])  # nested subcommands inherit the formatter
    assert "bootstrap draws (default: 1000)" in " ".join(capsys.readouterr().out.split())


def test_record_run_appends_one_json_line_per_run_and_runs_list_shows_them(index, capsys):
    first = record_run("sweep", ["sweep", "--out", "a"], "a.parquet", None,
                       ["2021-04-06", "2021-04-08"], {"trials": 16, "best_dsr": 0.91234})
    record_run("backtest", ["backtest"], "bt", "ab" * 32, ["2021-04-06", "2021-04-07"],
               {"roi": 0.0125, "trades": 31})
    with index.open("a") as f:
        f.write('{"id": "torn')  # a line cut short by a crash: skipped, not fatal
    runs = read_runs()
    assert [r["command"] for r in runs] == ["sweep", "backtest"]
    assert runs[0]["id"] == first["id"] and runs[0]["argv"] == ["sweep", "--out", "a"]
    assert main(["runs", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["ID", "COMMAND", "CONFIG", "SPAN"]
    assert first["id"] in lines[1] and "sweep" in lines[1] and "best_dsr=0.9123" in lines[1]
    assert "abababababab" in lines[2] and "2021-04-06 .. 2021-04-07" in lines[2]
    assert "trades=31" in lines[2]
    assert main(["runs", "list", "--command", "backtest", "--json"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and json.loads(out[0])["config_id"] == "ab" * 32


def test_runs_list_without_an_index_says_so(index, capsys):
    assert main(["runs", "list"]) == 0
    assert "no runs recorded" in capsys.readouterr().out


def test_an_unwritable_index_costs_a_warning_not_the_run(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv(ENV_INDEX, str(blocker / "index.jsonl"))  # parent is a file
    assert record_run("sweep", [], None, None, None, {}) is None
    assert "not written" in caplog.text


def test_record_outputs_removes_only_the_earlier_runs_files_this_run_did_not_write(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("trades.parquet", "trades_hell.parquet", "report.html", "mine.txt"):
        (out / name).write_text(name)
    assert record_outputs(out, [out / "trades.parquet", out / "trades_hell.parquet",
                                out / "report.html"], command="backtest") == []
    removed = record_outputs(out, [out / "trades.parquet", out / "report.html"])
    assert removed == [out / "trades_hell.parquet"]
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, "mine.txt", "report.html",
                                                     "trades.parquet"]


def test_record_outputs_never_follows_an_entry_outside_the_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (out / "sub").mkdir()
    (out / MANIFEST).write_text(json.dumps({"outputs": {".": {"files": [
        "../victim.txt", str(victim), "sub", MANIFEST]}}}))  # fmt: skip
    assert record_outputs(out, []) == []
    assert victim.read_text() == "keep" and (out / "sub").is_dir()


def test_record_outputs_keys_keep_two_outputs_in_one_folder_apart(tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    a.write_text("a")
    b.write_text("b")
    record_outputs(tmp_path, [a], key="a.parquet")
    record_outputs(tmp_path, [b], key="b.parquet")
    record_outputs(tmp_path, [b], key="b.parquet")
    assert a.exists() and b.exists()


def test_paper_status_prints_a_line_per_tenth_off_a_terminal_and_rewrites_one_on_it():
    from dolphin.commands.paper import StatusPrinter

    pipe = io.StringIO()
    printer = StatusPrinter(pipe, tty=False)
    for i in range(101):
        printer(f"line {i}", i / 100, False)
    printer("end", 1.0, True)
    assert pipe.getvalue().splitlines() == [f"line {i}" for i in range(0, 101, 10)] + ["end"]
    term = io.StringIO()
    printer = StatusPrinter(term, tty=True)
    printer("a long line", 0.1, False)
    printer("short", 0.2, False)
    printer("done", 1.0, True)
    assert term.getvalue() == "\ra long line\rshort      \rdone \n"
    assert os.linesep not in term.getvalue()[:-1]


def test_progress_is_bars_or_time_whichever_is_further():
    from dolphin.adapters.nautilus.paper_session import progress_of

    assert progress_of(50, 100, 1.0, 10.0) == 0.5
    assert progress_of(10, 100, 9.0, 10.0) == 0.9
    assert progress_of(500, 100, 0.0, 0.0) == 1.0
    assert progress_of(0, 0, 0.0, 0.0) == 0.0
