"""Where the real shared data and the committed sample live."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("DOLPHIN_SHARED_DATA", REPO.parent / "shared" / "data"))
BARS = SHARED_DATA / "bars"
SAMPLE = REPO / "data" / "sample"
CONFIGS = REPO / "configs"

SPOT_1M_2021 = BARS / "binance_spot_1m_2021-04_top50.parquet"
SPOT_5M_2024 = BARS / "binance_spot_5m_2024-07.parquet"
USDM_1M_2023 = BARS / "binance_usdm_1m_2023-07.parquet"
USDM_1M_2025 = BARS / "binance_usdm_1m_2025-05.parquet"
USDM_5M_2023 = BARS / "binance_usdm_5m_2023-07.parquet"
ALL_BAR_FILES = (SPOT_1M_2021, SPOT_5M_2024, USDM_1M_2023, USDM_1M_2025, USDM_5M_2023)


def require(path: Path) -> Path:
    """Return ``path`` or fail loudly: a missing data set is an error, never a skip."""
    if not path.exists():
        raise FileNotFoundError(
            f"test data missing: {path} (set DOLPHIN_SHARED_DATA to the shared data folder)"
        )
    return path
