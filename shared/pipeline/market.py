"""OHLCV bars for a job: loading, validation, resampling.

- SYNTHETIC (``shared.pipeline.synthetic``): ``DataSpec.bars`` bars are generated at the job's
  *generation timeframe* (its finest timeframe) and every coarser timeframe is resampled from
  that same series, so the timeframes of one symbol describe one consistent market.
- DIRECTORY: ``{data_dir}/{data.path}/{SYMBOL}_{timeframe}.csv`` (or ``.parquet``, which needs
  pyarrow) with a timestamp column and open/high/low/close/volume; NaNs, unsorted or duplicate
  timestamps and non-positive prices are ``DataError``s naming symbol and timeframe. Gaps longer
  than a few bars are logged, not refused (markets close at weekends). A file is read only up to
  ``max_bars`` rows (``JobLimits.max_bars``): one with more is refused before it fills memory.

Both sources honour ``DataSpec.start``/``end`` (inclusive; a date-only end covers its day). The
synthetic market always starts at ``SYNTHETIC_START``, so a window there selects part of it.

Every frame here is indexed by bar *open* time (UTC) with float64 columns ``COLUMNS``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from shared.pipeline.synthetic import SYNTHETIC_START, synthetic_bars
from shared.pipeline.timeframes import finest_timeframe, timeframe_delta
from shared.spec import DEFAULT_LIMITS, DataSource, DataSpec

__all__ = [
    "COLUMNS",
    "SYNTHETIC_START",
    "DataError",
    "finest_timeframe",
    "load_bars",
    "parse_bound",
    "resample_bars",
    "synthetic_bars",
    "timeframe_delta",
    "validate_bars",
]

_LOGGER = logging.getLogger(__name__)

COLUMNS = ("open", "high", "low", "close", "volume")
_TIME_COLUMNS = ("timestamp", "time", "datetime", "date", "open_time")
_GAP_FACTOR = 5
"""A step larger than this many timeframes is reported (logged) as a gap; weekends are normal."""


class DataError(ValueError):
    """Market data that cannot be used; names the symbol, the timeframe and the problem."""

    def __init__(self, symbol: str, timeframe: str, problem: str) -> None:
        where = f"{symbol} [{timeframe}]" if timeframe else symbol
        super().__init__(f"{where}: {problem}" if where else problem)
        self.symbol = symbol
        self.timeframe = timeframe
        self.problem = problem


def resample_bars(bars: pd.DataFrame, source_timeframe: str, timeframe: str) -> pd.DataFrame:
    """Aggregate ``bars`` into ``timeframe`` bars, keeping only complete bins.

    ``timeframe`` must be a whole multiple of ``source_timeframe``; a bin is labelled by its
    open time, like every other frame here.
    """
    src, dst = timeframe_delta(source_timeframe), timeframe_delta(timeframe)
    ratio = dst / src
    if ratio < 1 or ratio != int(ratio):
        raise ValueError(f"{timeframe} is not a whole multiple of {source_timeframe}")
    if ratio == 1:
        return bars.copy()
    grouped = bars.resample(dst, label="left", closed="left", origin="epoch")
    out = grouped.agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    complete = grouped["close"].count().to_numpy() == int(ratio)
    out = out.loc[complete].astype(np.float64)
    out.index.name = "timestamp"
    return out


# ---------------------------------------------------------------------------------------------
# Loading and validation


def load_bars(
    data: DataSpec,
    symbol: str,
    timeframe: str,
    data_dir: Path | None = None,
    *,
    base_timeframe: str | None = None,
    min_bars: int = 2,
    max_bars: int = DEFAULT_LIMITS.max_bars,
) -> pd.DataFrame:
    """OHLCV bars for one symbol and timeframe, validated, bounded by ``data.start``/``end``.

    SYNTHETIC: ``data.bars`` bars are generated at ``base_timeframe`` (default: ``timeframe``)
    and resampled to ``timeframe``. DIRECTORY: ``{data_dir}/{data.path}/{SYMBOL}_{timeframe}``
    ``.csv`` or ``.parquet`` of at most ``max_bars`` rows. Raises ``DataError`` naming symbol,
    timeframe and the problem.
    """
    if data.source is DataSource.SYNTHETIC:
        gen_tf = base_timeframe or timeframe
        frame = synthetic_bars(symbol, gen_tf, data.bars, data.seed)
        if gen_tf != timeframe:
            try:
                frame = resample_bars(frame, gen_tf, timeframe)
            except ValueError as exc:
                raise DataError(symbol, timeframe, f"cannot build synthetic bars: {exc}") from exc
    else:
        frame = _read_directory(data, symbol, timeframe, data_dir, max_bars)
        validate_bars(frame, symbol, timeframe)
    frame = _bound(frame, data, symbol, timeframe)
    if len(frame) < min_bars:
        raise DataError(
            symbol, timeframe, f"too few bars: {len(frame)} (at least {min_bars} needed)"
        )
    return frame


def validate_bars(frame: pd.DataFrame, symbol: str, timeframe: str) -> None:
    """Raise ``DataError`` for NaNs, non-positive prices, unsorted or duplicate timestamps."""
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex):
        raise DataError(symbol, timeframe, "the index is not a timestamp index")
    if index.has_duplicates:
        dup = index[index.duplicated()][0]
        raise DataError(symbol, timeframe, f"duplicate timestamp {dup.isoformat()}")
    if not index.is_monotonic_increasing:
        pos = int(np.argmax(np.diff(index.as_unit("ns").asi8) < 0)) + 1
        raise DataError(
            symbol, timeframe, f"timestamps are not sorted (row {pos}: {index[pos].isoformat()})"
        )
    values = frame[list(COLUMNS)].to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.argmax(bad.any(axis=1)))
        raise DataError(
            symbol,
            timeframe,
            f"{int(bad.sum())} missing or non-finite values (first at {index[row].isoformat()})",
        )
    if (values[:, :4] <= 0).any():
        row = int(np.argmax((values[:, :4] <= 0).any(axis=1)))
        raise DataError(symbol, timeframe, f"non-positive price at {index[row].isoformat()}")
    if len(index) > 1:
        steps = np.diff(index.as_unit("ns").asi8)
        limit = _GAP_FACTOR * timeframe_delta(timeframe).value
        gaps = int((steps > limit).sum())
        if gaps:
            _LOGGER.warning(
                "%s [%s]: %d gaps longer than %d bars", symbol, timeframe, gaps, _GAP_FACTOR
            )


def _too_many(symbol: str, timeframe: str, name: str, max_bars: int) -> DataError:
    return DataError(
        symbol,
        timeframe,
        f"{name} has more than {max_bars:,} rows, the most a job may load (max_bars); split "
        "the file or trim it to the range you train on",
    )


def _read_directory(
    data: DataSpec, symbol: str, timeframe: str, data_dir: Path | None, max_bars: int
) -> pd.DataFrame:
    if data_dir is None:
        raise DataError(symbol, timeframe, "this trainer has no data directory configured")
    folder = data_dir / data.path
    stem = f"{symbol}_{timeframe}"
    csv, parquet = folder / f"{stem}.csv", folder / f"{stem}.parquet"
    if csv.is_file():
        try:
            raw = pd.read_csv(csv, nrows=max_bars + 1)
        except (OSError, ValueError) as exc:
            raise DataError(symbol, timeframe, f"cannot read {csv.name}: {exc}") from exc
        if len(raw) > max_bars:
            raise _too_many(symbol, timeframe, csv.name, max_bars)
    elif parquet.is_file():
        try:
            rows = _parquet_rows(parquet)
            raw = pd.read_parquet(parquet) if rows <= max_bars else None
        except ImportError as exc:
            raise DataError(
                symbol, timeframe, f"reading {parquet.name} needs pyarrow; install it or use CSV"
            ) from exc
        except (OSError, ValueError) as exc:
            raise DataError(symbol, timeframe, f"cannot read {parquet.name}: {exc}") from exc
        if raw is None:
            raise _too_many(symbol, timeframe, parquet.name, max_bars)
    else:
        raise DataError(
            symbol,
            timeframe,
            f"no data file: expected {stem}.csv or {stem}.parquet in {data.path or '.'}",
        )
    return _normalise(raw, symbol, timeframe)


def _parquet_rows(path: Path) -> int:
    """The row count from the file's footer, without reading its data."""
    import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]

    rows: int = pq.ParquetFile(path).metadata.num_rows
    return rows


def _normalise(raw: pd.DataFrame, symbol: str, timeframe: str) -> pd.DataFrame:
    frame = raw.rename(columns={c: str(c).strip().lower() for c in raw.columns})
    if isinstance(frame.index, pd.DatetimeIndex):
        times = frame.index
    else:
        time_col = next((c for c in _TIME_COLUMNS if c in frame.columns), None)
        if time_col is None:
            raise DataError(
                symbol,
                timeframe,
                f"no timestamp column (expected one of {', '.join(_TIME_COLUMNS)})",
            )
        times = _parse_times(frame[time_col], symbol, timeframe)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(symbol, timeframe, f"missing column(s): {', '.join(missing)}")
    try:
        values = frame[list(COLUMNS)].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(symbol, timeframe, f"non-numeric OHLCV values: {exc}") from exc
    index = pd.DatetimeIndex(times)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return pd.DataFrame(values, index=index.rename("timestamp"), columns=list(COLUMNS))


def _parse_times(column: pd.Series, symbol: str, timeframe: str) -> pd.DatetimeIndex:
    try:
        if pd.api.types.is_numeric_dtype(column):
            unit = "ms" if float(column.abs().max()) > 1e11 else "s"
            return pd.DatetimeIndex(pd.to_datetime(column, unit=unit, utc=True))
        return pd.DatetimeIndex(pd.to_datetime(column, utc=True))
    except (TypeError, ValueError) as exc:
        raise DataError(symbol, timeframe, f"unreadable timestamps: {exc}") from exc


def parse_bound(text: str, *, end: bool) -> pd.Timestamp | None:
    """An ISO-8601 bound as UTC; a date-only ``end`` covers that whole day. Empty → None."""
    if not text:
        return None
    stamp = pd.Timestamp(text)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    if end and len(text.strip()) == 10:
        stamp = stamp + pd.Timedelta(days=1) - pd.Timedelta(1, unit="ns")
    return stamp


def _bound(frame: pd.DataFrame, data: DataSpec, symbol: str, timeframe: str) -> pd.DataFrame:
    try:
        start, end = parse_bound(data.start, end=False), parse_bound(data.end, end=True)
    except ValueError as exc:
        raise DataError(symbol, timeframe, f"bad date bound: {exc}") from exc
    if start is not None:
        frame = frame.loc[frame.index >= start]
    if end is not None:
        frame = frame.loc[frame.index <= end]
    return frame
