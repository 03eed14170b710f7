"""The scan schema in one place: column names, asset columns, validation, frame -> arrays.

DESIGN.md "Scans": one row per bar with ``timestamp`` (the bar's open time, UTC), the per-window
scan fields, ``vel_div``, ``data_gap`` and one REAL close column per asset (NaN where the asset
had no bar). The scanner writes it (``scan_columns``); the replay, the sweep and the Nautilus
scan driver read it through ``validate_scans`` and ``scan_arrays``.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np
import pandas as pd

from dolphin.core.config import ScannerConfig
from dolphin.core.errors import BadInputError, DataError, MissingColumnError
from dolphin.core.io import read_parquet

REQUIRED = ("timestamp", "vel_div", "v750_lambda_max_velocity", "data_gap")
NON_ASSET = frozenset(
    {
        "timestamp",
        "scan_number",
        "n_assets",
        "vel_div",
        "instability_50",
        "instability_150",
        "data_gap",
        "vol_regime_ok",
    }
)


#: Per-window scan fields (v50_lambda_max, v750_n_assets, instability_150, ...).
_SCAN_FIELD = re.compile(r"^(v\d+_|instability_)")




def read_scans(path) -> pd.DataFrame:
    """Read a scans parquet; a missing or unreadable file is a typed error naming it."""
    try:
        return read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a bad file
        raise DataError(f"cannot read scans ({type(exc).__name__}: {exc})",
                        source=str(path)) from None


def scan_columns(config: ScannerConfig) -> list[str]:
    """Names of the scan columns that precede the per-asset closes, in order."""
    cols = ["timestamp", "scan_number", "n_assets", "data_gap"]
    for w in config.windows:
        cols += [f"v{w}_lambda_max", f"v{w}_lambda_max_velocity", f"v{w}_n_assets"]
    cols.append("vel_div")
    cols += [f"instability_{w}" for w in config.instability_windows]
    return cols


def asset_columns(scans: pd.DataFrame) -> list[str]:
    """Return the close-price columns of a scan frame (every column that is not a scan field)."""
    return [c for c in scans.columns if c not in NON_ASSET and not _SCAN_FIELD.match(str(c))]


def _explained_nan(scans: pd.DataFrame) -> np.ndarray:
    """Rows whose NaN vel_div the scan itself explains (the kernel makes no entry on NaN).

    A flagged ``data_gap`` row, the row right after one (a velocity needs the previous row's
    value), and a row where some window has fewer than two varying assets (no correlation
    matrix: the scanner writes NaN there, e.g. at the ragged end of a data set).
    """
    gap = scans["data_gap"].to_numpy(dtype=np.bool_)
    ok = gap | np.r_[False, gap[:-1]]
    counts = [c for c in scans.columns if re.fullmatch(r"v\d+_n_assets", str(c))]
    if counts:
        ok |= (scans[counts].to_numpy(dtype=float) < 2).any(axis=1)
    return ok


def validate_scans(scans: pd.DataFrame, source: str = "scans") -> list[str]:
    """Check a scan frame; return its asset columns or raise a typed error."""
    for col in REQUIRED:
        if col not in scans.columns:
            raise MissingColumnError("required scan column is missing", source=source, field=col)
    ts = scans["timestamp"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise BadInputError("timestamp must be tz-aware UTC", source=source, field="timestamp")
    if not ts.is_monotonic_increasing or ts.duplicated().any():
        raise BadInputError(
            "timestamps must be strictly increasing", source=source, field="timestamp"
        )
    vd = scans["vel_div"].to_numpy(dtype=float)
    finite = np.isfinite(vd) | _explained_nan(scans)
    if finite.any():
        first = int(np.argmax(np.isfinite(vd)))
        bad = np.flatnonzero(~finite[first:])
        if bad.size:
            row = first + int(bad[0])
            raise BadInputError(
                "vel_div is NaN after the warm-up",
                source=source,
                row=row,
                field="vel_div",
                value=float(vd[row]),
            )
    assets = asset_columns(scans)
    if not assets:
        raise MissingColumnError("no asset price columns", source=source)
    return assets


class ScanArrays(NamedTuple):
    """The arrays every driver steps on, from one validated scan frame."""

    ts: np.ndarray  # int64 ns, bar open times
    vel_div: np.ndarray
    v750: np.ndarray
    data_gap: np.ndarray
    vol_ok: np.ndarray
    scan_number: np.ndarray
    prices: np.ndarray  # (bars, assets) real closes, NaN where no real bar


def scan_arrays(scans: pd.DataFrame, assets: list[str]) -> ScanArrays:
    """Return the driver arrays of a validated scan frame (``vol_regime_ok`` defaults to True,
    ``scan_number`` to the row number)."""
    n = len(scans)
    vol_ok = (scans["vol_regime_ok"].to_numpy(dtype=np.bool_) if "vol_regime_ok" in scans
              else np.ones(n, dtype=np.bool_))
    num = (scans["scan_number"].to_numpy(dtype=np.int64) if "scan_number" in scans
           else np.arange(n, dtype=np.int64))
    return ScanArrays(
        ts=scans["timestamp"].to_numpy(dtype="datetime64[ns]").astype(np.int64),
        vel_div=scans["vel_div"].to_numpy(dtype=np.float64),
        v750=scans["v750_lambda_max_velocity"].to_numpy(dtype=np.float64),
        data_gap=scans["data_gap"].to_numpy(dtype=np.bool_),
        vol_ok=vol_ok,
        scan_number=num,
        prices=np.ascontiguousarray(scans[assets].to_numpy(dtype=np.float64)),
    )
