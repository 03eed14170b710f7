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

Bad input never passes and never escapes as a raw exception (docs/validation.md): a corrupt,
truncated or non-UTF-8 file, a ragged row, a repeated column, a quoted number or a boolean where
a number belongs all raise a typed ``DataError`` subclass naming the file, row, field and value.
"""

from __future__ import annotations

import gzip
import json
import lzma
import re
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq

from dolphin.core.errors import (
    DataError,
    MalformedRowError,
    MissingColumnError,
    UnsupportedFormatError,
)
from dolphin.data.columns import require_columns
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
# A compressed member that inflates beyond this is refused rather than unpacked into memory.
_MAX_UNPACKED = 1 << 30
_CLIP = 120  # characters of an offending row quoted in an error
# Control characters (NUL, ESC, ...) never occur in a kline CSV: they mean a corrupt file, even
# when they land in a column DOLPHIN does not read.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# What the standard decompressors raise on a corrupt or truncated stream.
_ARCHIVE_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
    EOFError,
    OSError,
    RuntimeError,  # encrypted member; NotImplementedError: unknown compression method
    ValueError,
)
# What pyarrow (and its pandas conversion) raises on a corrupt, truncated or odd file.
_ARROW_ERRORS = (OSError, ValueError, TypeError, LookupError, RuntimeError, pa.ArrowException)


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
    except _ARROW_ERRORS as exc:
        raise UnsupportedFormatError(
            f"not a readable parquet file: {exc}", source=str(path)
        ) from None


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
    require_columns(frame, (time_column, *_CANDLE_COLUMNS), source)
    out = frame[[time_column, *_CANDLE_COLUMNS]].rename(columns={time_column: "timestamp"})
    out.insert(1, "symbol", symbol)
    return out


def _clip(value: object) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= _CLIP else text[: _CLIP - 3] + "..."


def _read_bytes(path: Path, source: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read file ({exc.strerror or exc})", source=source) from None


def _unzip_single(path: Path, source: str) -> bytes:
    """Return the bytes of the one file inside a Binance kline ``.zip``."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if len(members) != 1:
                raise UnsupportedFormatError(
                    f"a kline zip must hold exactly one CSV, found {len(members)} files",
                    source=source,
                )
            if members[0].file_size > _MAX_UNPACKED:
                raise UnsupportedFormatError(
                    "zip member too large", source=source, value=members[0].file_size
                )
            return archive.read(members[0])
    except DataError:
        raise
    except _ARCHIVE_ERRORS as exc:
        raise UnsupportedFormatError(f"not a readable zip archive: {exc}", source=source) from None


def _gunzip(path: Path, source: str) -> bytes:
    try:
        with gzip.open(path, "rb") as fh:
            data = fh.read(_MAX_UNPACKED + 1)
    except _ARCHIVE_ERRORS as exc:
        raise UnsupportedFormatError(f"not a readable gzip file: {exc}", source=source) from None
    if len(data) > _MAX_UNPACKED:
        raise UnsupportedFormatError("gzip content too large", source=source)
    return data


def _decode(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnsupportedFormatError(
            f"not UTF-8 text (bad byte at offset {exc.start})",
            source=source,
            value=data[exc.start : exc.start + 1],
        ) from None


def _is_number_text(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _kline_names(cells: list[list[str]], source: str) -> tuple[list[str], list[list[str]]]:
    """Return the column names and the data rows (the header line, if any, removed)."""
    first = cells[0]
    if any(_is_number_text(c) for c in first):
        # No header (Binance dumps before 2025): the 12 positional Binance columns.
        width = len(first)
        if width < len(BINANCE_COLUMNS):
            raise MissingColumnError(
                f"a headerless kline CSV needs the {len(BINANCE_COLUMNS)} Binance columns, "
                f"found {width}",
                source=source,
                row=0,
                field=BINANCE_COLUMNS[width],
            )
        return list(BINANCE_COLUMNS) + [f"extra_{k}" for k in range(width - 12)], cells
    names = [c.strip().strip('"').strip().lower() for c in first]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(
            "column name repeated in the header", source=source, field=repeated[0], value=names
        )
    return names, cells[1:]


def _check_widths(cells: list[list[str]], width: int, source: str) -> None:
    # A row with a field too few or too many would shift its columns (volume read as close).
    widths = np.fromiter((len(c) for c in cells), dtype=np.int64, count=len(cells))
    bad = widths != width
    if bad.any():
        i = int(np.argmax(bad))
        raise MalformedRowError(
            f"row has {widths[i]} fields, the file's rows have {width}",
            source=source,
            row=i,
            value=_clip(",".join(cells[i])),
        )


def _read_binance_csv(path: Path, symbol: str, source: str) -> pd.DataFrame:
    # Split by hand rather than with a CSV parser: Binance writes plain comma-separated numbers,
    # so a quote, a ragged row or a stray NUL is an error to report, not something to repair.
    zipped = path.name.lower().endswith(".zip")
    data = _unzip_single(path, source) if zipped else _read_bytes(path, source)
    text = _decode(data, source)
    control = _CONTROL.search(text)
    if control is not None:
        raise UnsupportedFormatError(
            f"control character at offset {control.start()}: not a text CSV",
            source=source,
            value=control.group(),
        )
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise DataError("empty file", source=source)
    names, cells = _kline_names([ln.split(",") for ln in lines], source)
    _check_widths(cells, len(names), source)
    return _candles(pd.DataFrame(cells, columns=names, dtype=object), "open_time", symbol, source)


def _json_rows(path: Path, source: str) -> object:
    gz = path.name.lower().endswith(".gz")
    text = _decode(_gunzip(path, source) if gz else _read_bytes(path, source), source)
    try:
        return json.loads(text)
    except RecursionError:
        raise UnsupportedFormatError("JSON nested too deeply", source=source) from None
    except ValueError as exc:  # JSONDecodeError; an integer beyond Python's digit limit
        raise UnsupportedFormatError(f"not valid JSON: {exc}", source=source) from None


def _read_freqtrade_json(path: Path, symbol: str, source: str) -> pd.DataFrame:
    rows = _json_rows(path, source)
    if not isinstance(rows, list):
        raise UnsupportedFormatError(
            "freqtrade candles must be a JSON list of [ms, open, high, low, close, volume]",
            source=source,
            value=type(rows).__name__,
        )
    if not rows:
        raise DataError("no bars in file", source=source)
    width = len(rows[0]) if isinstance(rows[0], list) else 0
    bad = [i for i, r in enumerate(rows) if not isinstance(r, list) or len(r) != width]
    if width < 6 or bad:
        i = bad[0] if bad else 0
        raise MalformedRowError(
            "every candle must be a list [ms, open, high, low, close, volume] of the same length",
            source=source,
            row=i,
            value=_clip(rows[i]),
        )
    # Object columns, no inference: a null must be reported as the null it is, not as a NaN.
    frame = pd.DataFrame([r[:6] for r in rows], columns=["date", *_CANDLE_COLUMNS], dtype=object)
    return _candles(frame, "date", symbol, source)


def _arrow_frame(read: Callable[[], pa.Table], source: str, what: str) -> pd.DataFrame:
    # The pandas metadata is free JSON the long layout needs none of (dictionary columns still
    # become categories), so it is ignored; but metadata that is not even JSON means a corrupt
    # file, and a corrupt file is refused rather than trusted for its other bytes.
    try:
        table = read()
        pandas_meta = (table.schema.metadata or {}).get(b"pandas")
        if pandas_meta is not None:
            json.loads(pandas_meta)
        return table.to_pandas(ignore_metadata=True)
    except RecursionError:
        raise UnsupportedFormatError(
            f"cannot read {what}: corrupt metadata", source=source
        ) from None
    except _ARROW_ERRORS as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise UnsupportedFormatError(f"cannot read {what}: {exc}", source=source) from None


def _read_table(path: Path, symbol: str, source: str, fmt: str) -> pd.DataFrame:
    reader = feather.read_table if fmt == FREQTRADE_FEATHER else pq.read_table
    return _candles(_arrow_frame(lambda: reader(path), source, fmt), "date", symbol, source)


def _read_long_parquet(path: Path, symbol: str | None, source: str) -> pd.DataFrame:
    filters = None if symbol is None else [("symbol", "=", symbol)]
    frame = _arrow_frame(lambda: pq.read_table(path, filters=filters), source, "parquet")
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
    # Only the CSV is text; in the typed formats a string where a number belongs is refused.
    return validate_with_rows(raw, source=source, text=fmt == BINANCE_CSV)


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
