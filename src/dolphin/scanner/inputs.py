"""Scanner input: any bar file the loaders accept, or an aligned wide file."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from dolphin.data import align_closes, detect_format, fill_fraction, load_bars, load_wide
from dolphin.data.loaders import LONG_PARQUET, parquet_columns


def is_wide_file(path: str | Path) -> bool:
    """True for an aligned wide parquet (no ``symbol`` column)."""
    p = Path(path)
    return detect_format(p) == LONG_PARQUET and "symbol" not in parquet_columns(p)


def load_scan_input(
    path: str | Path,
    *,
    bar: str | None = None,
    symbols: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The wide close matrix and, for long bar input, the per-bar fill fraction.

    An aligned wide file has lost which bars were real, so its fill fraction is ``None`` and
    the scanner falls back to detecting gaps from unchanged closes.
    """
    if is_wide_file(path):
        return load_wide(path, bar=bar, symbols=symbols), None
    bars = load_bars(path)
    wide = align_closes(bars, bar=bar, symbols=symbols)
    return wide, fill_fraction(bars, wide)
