"""Plain-text rendering of a bar summary (what `dolphin data info` prints)."""

from __future__ import annotations

import pandas as pd

from dolphin.data.bars import format_bar, format_duration

_TIME = "%Y-%m-%d %H:%M"


def _stamp(ts: pd.Timestamp) -> str:
    return ts.strftime(_TIME)


def format_info(path: object, fmt: str, summary: pd.DataFrame) -> str:
    """Render the header (file, format, bar, symbols, span, rows) and the per-symbol table."""
    first, last = summary["first"].min(), summary["last"].max()
    bar = summary["bar"].iloc[0]
    span = f"{_stamp(first)} -> {_stamp(last)} UTC ({format_duration(last - first)})"
    lines = [
        f"file:     {path}",
        f"format:   {fmt}",
        f"bar:      {format_bar(bar)}",
        f"symbols:  {len(summary)}",
        f"span:     {span}",
        f"rows:     {int(summary['rows'].sum()):,}",
        f"gaps:     {int(summary['gaps'].sum()):,} missing bars inside symbol lives",
        "",
    ]
    table = pd.DataFrame(
        {
            "symbol": summary["symbol"],
            "first": summary["first"].map(_stamp),
            "last": summary["last"].map(_stamp),
            "rows": summary["rows"].map("{:,}".format),
            "gaps": summary["gaps"].map("{:,}".format),
            "longest gap": summary["longest_gap"].map(format_duration),
        }
    )
    lines.append(table.to_string(index=False))
    return "\n".join(lines)
