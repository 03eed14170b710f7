"""Grid and search-space files are read as strictly as configs: typed errors, never tracebacks."""

from __future__ import annotations

import pytest

from dolphin.backtest.optimize import load_space
from dolphin.backtest.sweep_run import load_grid
from dolphin.core.errors import ConfigError


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (b"fixed_tp_pct: [0.01]\nfixed_tp_pct: [0.02]\n", "duplicate"),
        (b"fixed_tp_pct: [0.01, \xff]\n", "UTF-8"),
        (b"a: " + b"[" * 200 + b"]" * 200 + b"\n", "YAML"),
        (b"fixed_tp_pct: [0.01\n", "YAML"),
    ],
)
@pytest.mark.parametrize("reader", [load_grid, load_space])
def test_bad_grid_and_space_files_raise_config_errors(tmp_path, raw, needle, reader):
    f = tmp_path / "g.yaml"
    f.write_bytes(raw)
    with pytest.raises(ConfigError) as exc:
        reader(f)
    assert needle.lower() in str(exc.value).lower() and str(f) in str(exc.value)
