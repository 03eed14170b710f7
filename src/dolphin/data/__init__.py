"""Bar data: load every supported format, validate, align onto a grid, summarize.

Contracts are in DESIGN.md "Data contracts" and ``shared/data/README.md``: long bars are
``timestamp`` (datetime64[ns, UTC], bar open time), ``symbol``, ``open, high, low, close,
volume``; a wide close matrix is ``timestamp`` + one float64 column per symbol. The canonical
wide form holds REAL closes (NaN where a symbol had no bar, :func:`real_closes`); the scanner's
matrix is derived from it by a causal forward fill (:func:`fill_closes`, at most
:data:`DEFAULT_FILL_LIMIT`), and so are the real mask and the per-bar fill fraction.
"""

from dolphin.data.align import (
    DEFAULT_FILL_LIMIT,
    GAP_THRESHOLD,
    align_closes,
    exchange_gap_mask,
    ffill_limited,
    fill_closes,
    fill_fraction,
    fill_limit_bars,
    missing_fraction,
    parse_fill_limit,
    real_closes,
    real_mask,
)
from dolphin.data.bars import format_bar, infer_bar, parse_bar
from dolphin.data.loaders import detect_format, load_bars
from dolphin.data.summary import summarize
from dolphin.data.validate import validate_bars
from dolphin.data.wide import load_real_closes, load_wide, read_wide, validate_wide

__all__ = [
    "DEFAULT_FILL_LIMIT",
    "GAP_THRESHOLD",
    "align_closes",
    "detect_format",
    "exchange_gap_mask",
    "ffill_limited",
    "fill_closes",
    "fill_fraction",
    "fill_limit_bars",
    "format_bar",
    "infer_bar",
    "load_bars",
    "load_real_closes",
    "load_wide",
    "missing_fraction",
    "parse_bar",
    "parse_fill_limit",
    "read_wide",
    "real_closes",
    "real_mask",
    "summarize",
    "validate_bars",
    "validate_wide",
]
