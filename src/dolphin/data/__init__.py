"""Bar data: load every supported format, validate, align onto a grid, summarize.

Contracts are in DESIGN.md "Data contracts" and ``shared/data/README.md``: long bars are
``timestamp`` (datetime64[ns, UTC], bar open time), ``symbol``, ``open, high, low, close,
volume``; the wide close matrix is ``timestamp`` + one float64 column per symbol.
"""

from dolphin.data.align import GAP_THRESHOLD, align_closes, exchange_gap_mask, fill_fraction
from dolphin.data.bars import format_bar, infer_bar, parse_bar
from dolphin.data.loaders import detect_format, load_bars
from dolphin.data.summary import summarize
from dolphin.data.validate import validate_bars
from dolphin.data.wide import load_wide, read_wide, validate_wide

__all__ = [
    "GAP_THRESHOLD",
    "align_closes",
    "detect_format",
    "exchange_gap_mask",
    "fill_fraction",
    "format_bar",
    "infer_bar",
    "load_bars",
    "load_wide",
    "parse_bar",
    "read_wide",
    "summarize",
    "validate_bars",
    "validate_wide",
]
