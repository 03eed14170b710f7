"""Load bar files of every supported format into the validated long layout.

Formats (chosen by file name suffix):
- ``.parquet``: the long layout of ``shared/data/README.md`` (``timestamp, symbol, open, high,
  low, close, volume``); a parquet without ``symbol`` but with ``date`` is a freqtrade candle file.
- ``.csv`` / ``.zip``: Binance public-data kline CSV (12 columns, with or without header, open
  time in ms or µs); the symbol comes from the file name (``BTCUSDT-1m-2024-01-01.csv``).
- ``.json`` / ``.json.gz``: freqtrade candles, a JSON list of ``[ms, open, high, low, close,
  volume]``; symbol from the name (``BTC_USDT-1m.json`` -> ``BTCUSDT``).
- ``.feather``: freqtrade candles with columns ``date, open, high, low, close, volume``
  (``BTC_USDT_USDT-1m-futures.feather`` -> ``BTCUSDT``).
- a directory: every supported file directly inside it, merged.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dolphin.core.errors import DataError, MissingColumnError, UnsupportedFormatError
from dolphin.data.validate import merge_validated, validate_with_rows

LONG_PARQUET = "long parquet"
BINANCE_CSV = "binance kline csv"
FREQTRADE_JSON = "freqtrade json"
FREQTRADE_FEATHER = "freqtrade feather"
FREQTRADE_PARQUET = "freqtrade parquet"
DIRECTORY = "directory"

BINANCE_COLUMNS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)
_CANDLE_COLUMNS = ("open", "high", "low", "close", "volume")
_SUFFIXES = (
    (".parquet", LONG_PARQUET),
    (".pq", LONG_PARQUET),
    (".csv", BINANCE_CSV),
    (".zip", BINANCE_CSV),
    (".json", FREQTRADE_JSON),
    (".json.gz", FREQTRADE_JSON),
    (".feather", FREQTRADE_FEATHER),
    (".ftr", FREQTRADE_FEATHER),
)
_SYMBOL_PART = re.compile(r"^[A-Za-z0-9]+$")


def _suffix_format(path: Path) -> str | None:
    name = path.name.lower()
    for suffix, fmt in _SUFFIXES:
        if name.endswith(suffix):
            return fmt
    return None


def parquet_columns(path: Path) -> list[str]:
    """Return the column names of a parquet file; raise ``UnsupportedFormatError`` if unreadable."""
    try:
        return list(pq.read_schema(path).names)
    except (OSError, pa.ArrowException) as exc:
        raise UnsupportedFormatError(
            f"not a readable parquet file: {exc}", source=str(path)
        ) from exc


def detect_format(path: str | Path) -> str:
    """Return the format name of ``path`` (one of the module constants); raise if unsupported."""
    path = Path(path)
    if path.is_dir():
        return DIRECTORY
    if not path.exists():
        raise DataError("no such file or directory", source=str(path))
    fmt = _suffix_format(path)
    if fmt is None:
        raise UnsupportedFormatError(
            "unknown file type (expected .parquet, .csv, .zip, .json, .json.gz or .feather)",
            source=str(path),
        )
    if fmt == LONG_PARQUET:
        names = parquet_columns(path)
        if "symbol" not in names and "date" in names:
            return FREQTRADE_PARQUET
    return fmt


def symbol_from_name(path: Path, fmt: str) -> str | None:
    """Return the symbol a single-symbol file's name encodes, or None if it encodes none.

    Binance: ``BTCUSDT-1m-2024-01-01.csv`` -> ``BTCUSDT``. freqtrade: ``BTC_USDT-1m.json`` ->
    ``BTCUSDT`` and ``BTC_USDT_USDT-1m-futures.feather`` -> ``BTCUSDT`` (the settlement currency
    of a futures pair is dropped).
    """
    head = path.name.split("-", 1)[0]
    parts = head.split("_")
    if fmt == BINANCE_CSV:
        parts = parts[:1] if len(parts) == 1 else []
    elif len(parts) == 3:
        parts = parts[:2]
    if not parts or not all(_SYMBOL_PART.match(p) for p in parts) or "-" not in path.name:
        return None
    return "".join(parts).upper()


def _candles(frame: pd.DataFrame, time_column: str, symbol: str, source: str) -> pd.DataFrame:
    for name in (time_column, *_CANDLE_COLUMNS):
        if name not in frame.columns:
            raise MissingColumnError("missing column", source=source, field=name)
    out = frame[[time_column, *_CANDLE_COLUMNS]].rename(columns={time_column: "timestamp"})
    out.insert(1, "symbol", symbol)
    return out


def _read_binance_csv(path: Path, symbol: str, source: str) -> pd.DataFrame:
    try:
        # Raw strings, no NA guessing: "n/a" must reach the price check as the value it is.
        raw = pd.read_csv(
            path,
            header=None,
            dtype=str,
            skipinitialspace=True,
            keep_default_na=False,
            na_filter=False,
        )
    except pd.errors.EmptyDataError as exc:
        raise DataError("empty file", source=source) from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise UnsupportedFormatError(f"not a kline CSV: {exc}", source=source) from exc
    first = str(raw.iat[0, 0]).strip() if len(raw) else ""
    if len(raw) and pd.isna(pd.to_numeric(first, errors="coerce")):
        # A header line: name columns by it (Binance dumps from 2025 carry one, older do not).
        raw.columns = [str(c).strip().lower() for c in raw.iloc[0]]
        raw = raw.iloc[1:].reset_index(drop=True)
    else:
        width = raw.shape[1]
        if width < 6:
            raise MissingColumnError(
                f"a headerless kline CSV needs at least 6 of the 12 Binance columns, found {width}",
                source=source,
                field=BINANCE_COLUMNS[width],
            )
        raw.columns = list(BINANCE_COLUMNS[:width]) + [f"extra_{k}" for k in range(width - 12)]
    return _candles(raw, "open_time", symbol, source)


def _read_freqtrade_json(path: Path, symbol: str, source: str) -> pd.DataFrame:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as fh:
            rows = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UnsupportedFormatError(f"not valid JSON: {exc}", source=source) from exc
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        raise UnsupportedFormatError(
            "freqtrade candles must be a JSON list of [ms, open, high, low, close, volume]",
            source=source,
        )
    frame = pd.DataFrame(rows)
    if frame.shape[1] < 6:
        raise MissingColumnError(
            f"candle rows need 6 values, found {frame.shape[1]}",
            source=source,
            field=("date", *_CANDLE_COLUMNS)[frame.shape[1]],
        )
    frame = frame.iloc[:, :6]
    frame.columns = ["date", *_CANDLE_COLUMNS]
    return _candles(frame, "date", symbol, source)


def _read_table(path: Path, symbol: str, source: str, fmt: str) -> pd.DataFrame:
    try:
        frame = pd.read_feather(path) if fmt == FREQTRADE_FEATHER else pd.read_parquet(path)
    except (OSError, pa.ArrowException) as exc:
        raise UnsupportedFormatError(f"cannot read {fmt}: {exc}", source=source) from exc
    return _candles(frame, "date", symbol, source)


def _read_long_parquet(path: Path, symbol: str | None, source: str) -> pd.DataFrame:
    filters = None if symbol is None else [("symbol", "=", symbol)]
    try:
        frame = pd.read_parquet(path, filters=filters)
    except (OSError, pa.ArrowException) as exc:
        raise UnsupportedFormatError(f"cannot read parquet: {exc}", source=source) from exc
    if symbol is not None and not len(frame):
        raise DataError("symbol not in file", source=source, field="symbol", value=symbol)
    return frame


_SINGLE: dict[str, Callable[[Path, str, str], pd.DataFrame]] = {
    BINANCE_CSV: _read_binance_csv,
    FREQTRADE_JSON: _read_freqtrade_json,
    FREQTRADE_FEATHER: lambda p, s, src: _read_table(p, s, src, FREQTRADE_FEATHER),
    FREQTRADE_PARQUET: lambda p, s, src: _read_table(p, s, src, FREQTRADE_PARQUET),
}


def _load_file(path: Path, symbol: str | None) -> tuple[pd.DataFrame, np.ndarray]:
    source = str(path)
    fmt = detect_format(path)
    if fmt == LONG_PARQUET:
        raw = _read_long_parquet(path, symbol, source)
    else:
        name = symbol or symbol_from_name(path, fmt)
        if name is None:
            raise DataError(
                "cannot tell the symbol from the file name; pass symbol=", source=source
            )
        raw = _SINGLE[fmt](path, name, source)
    if not len(raw):
        raise DataError("no bars in file", source=source)
    return validate_with_rows(raw, source=source)


def supported_files(directory: Path) -> list[Path]:
    """Return the supported bar files directly inside ``directory``, sorted by name."""
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and not p.name.startswith(".") and _suffix_format(p) is not None
    )


def load_bars(path: str | Path, *, symbol: str | None = None) -> pd.DataFrame:
    """Load a bar file (or a directory of them) into the validated long layout.

    Returns ``timestamp`` (datetime64[ns, UTC], the bar OPEN time), ``symbol`` (category),
    ``open, high, low, close, volume`` (float64), sorted by symbol then timestamp. For the
    single-symbol formats ``symbol`` names the symbol (default: from the file name); for a long
    parquet it selects that symbol only; for a directory it applies to every file. Bad input
    raises a typed ``DataError`` subclass naming the file, the 0-based row in the file as read
    (a CSV header is not counted) and the value.
    """
    path = Path(path)
    if not path.is_dir():
        return _load_file(path, symbol)[0]
    files = supported_files(path)
    if not files:
        raise UnsupportedFormatError("no supported bar files in directory", source=str(path))
    loaded = [_load_file(f, symbol) for f in files]
    return merge_validated(
        [frame for frame, _ in loaded], [rows for _, rows in loaded], [str(f) for f in files]
    )
