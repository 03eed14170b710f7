"""Every command and subcommand answers --help; errors map to exit codes."""

from __future__ import annotations

import argparse
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
