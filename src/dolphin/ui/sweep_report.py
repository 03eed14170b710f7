"""The sweep report: ``dolphin sweep``'s page (``ui.research_pages.sweep_page``).

Kept as the name the sweep command and older callers import; walk-forward, optimize and the
leverage study have pages of their own in ``ui.research_pages`` (they no longer borrow this
one, whose title and tables describe a sweep).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from dolphin.ui.research_pages import sweep_page


def render_sweep_report(
    df: pd.DataFrame,
    summary: Mapping[str, Any],
    names: Sequence[str],
    *,
    reproduce: str | None = None,
) -> str:
    """Return the sweep page HTML (``reproduce``: the command that reruns the best row)."""
    return sweep_page(df, summary, names, reproduce=reproduce)
