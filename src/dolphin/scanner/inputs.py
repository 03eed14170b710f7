"""Scanner input: any bar file the loaders accept, or an aligned wide file.

Everything derives from the real close matrix (``dolphin.data.real_closes``, NaN = no real
bar): the scanner computes on its causal fill and writes the real closes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from dolphin.data import DEFAULT_FILL_LIMIT, fill_closes, load_real_closes, real_mask


class ScannerInput(NamedTuple):
    """What ``scan_prices(prices, config, real=real)`` (or ``scan_prices_parallel``) needs."""

    #: ``timestamp`` + one column per asset: the causally filled matrix the kernel computes on.
    prices: pd.DataFrame
    #: Boolean T x N: True where the asset had a real bar (the only closes a scan shows).
    real: np.ndarray


def scanner_input(
    real: pd.DataFrame, *, fill_limit: str | pd.Timedelta = DEFAULT_FILL_LIMIT
) -> ScannerInput:
    """Return the scanner input of a real close matrix (``dolphin.data.real_closes``)."""
    return ScannerInput(fill_closes(real, fill_limit=fill_limit), real_mask(real))


def load_scan_input(
    path: str | Path,
    *,
    bar: str | None = None,
    symbols: Sequence[str] | None = None,
    fill_limit: str | pd.Timedelta = DEFAULT_FILL_LIMIT,
) -> ScannerInput:
    """Return the scanner input of a bar file, directory or aligned wide parquet.

    A long file knows which bars were real. An aligned wide file written by ``dolphin data
    align`` holds real closes with NaN where there was no bar, so the same causal fill is applied
    and the fill fraction (``data_gap``) is exact too; a legacy forward-filled wide file has lost
    that knowledge and is read as all-real (no filled bar, hence no ``data_gap`` from fills).
    """
    real = load_real_closes(path, bar=bar, symbols=symbols)
    return scanner_input(real, fill_limit=fill_limit)
