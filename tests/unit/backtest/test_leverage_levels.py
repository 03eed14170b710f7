"""`study leverage` levels are checked up front and a bad one is named as itself."""

from __future__ import annotations

import math

import pytest

from dolphin.backtest.leverage_study import check_levels, leverage_study
from dolphin.cli import main
from dolphin.commands.study import parse_levels
from dolphin.core.errors import BadInputError


def test_good_levels_pass_as_floats():
    assert check_levels([1, 1.5, 12]) == [1.0, 1.5, 12.0]
    assert parse_levels("1, 2.5,6") == [1.0, 2.5, 6.0]
    assert parse_levels(None) is None


@pytest.mark.parametrize(
    ("levels", "shown"),
    [([1, -2], "-2"), ([0], "0"), ([math.nan], "nan"), ([math.inf], "inf"), ([True], "True"),
     (["3"], "'3'"), ([2, 2.0], "2.0"), ([], "at least one")],
)  # fmt: skip
def test_bad_level_is_named_not_the_config_field_it_becomes(levels, shown):
    with pytest.raises(BadInputError) as info:
        check_levels(levels)
    assert shown in str(info.value)
    assert "min_leverage" not in str(info.value)


def test_study_refuses_bad_levels_before_touching_the_data():
    with pytest.raises(BadInputError, match=r"-2"):
        leverage_study(None, [1.0, -2.0])  # type: ignore[arg-type]


def test_unparsable_level_text_is_named(tmp_path):
    with pytest.raises(BadInputError, match=r"--levels.*'abc'"):
        parse_levels("1,abc")


def test_cli_names_the_bad_level(tmp_path, capsys):
    code = main(
        ["study", "leverage", "--scans", str(tmp_path / "none.parquet"), "--levels", "1,-2"]
    )
    assert code == BadInputError.exit_code
    err = capsys.readouterr().err
    assert "-2" in err
    assert "min_leverage" not in err
