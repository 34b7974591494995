"""OHLCV bars for a job: finding, reading, cleaning and resampling them.

**Bar-open convention.** Every frame here is indexed by bar *open* time, in UTC, with float64
columns ``COLUMNS``; a timestamp in a file is read as the time its bar opened (what exchanges,
brokers and ``DataFrame.to_csv`` of such a frame write). A bar at ``t`` of timeframe ``tf``
covers ``[t, t + tf)`` and is known at ``t + tf``: ``features.align_to_base`` relies on that.
A file that stamps bars with their *close* (month-end dates, say) is read one bar late.

Sources (``DataSpec.source``):

- SYNTHETIC (``shared.pipeline.synthetic``): ``DataSpec.bars`` bars are generated at the job's
  *generation timeframe* (its finest) and every coarser timeframe is resampled from that same
  series, keeping whole bins only, so the timeframes of one symbol describe one market.
- DIRECTORY (``{data_dir}/{data.path}``) and DATASET (the local copy of an uploaded dataset,
  ``dataset_dir``) are read the same way, as a ``MarketFolder``. For symbol ``S`` and timeframe
  ``tf`` it takes ``S_tf.csv`` (or ``.parquet``); failing that, the *finest* file of ``S``
  whose timeframe divides ``tf`` and resamples it: ``S_{finer}.csv|parquet`` or ``S.csv|parquet``,
  a file without a timeframe in its name being taken as the timeframe its median bar spacing
  shows (``EURUSD.csv`` of hourly bars is ``1h``, so it serves ``1h``, ``4h`` and ``1d``). A file
  is read at most once per job and only up to ``max_bars`` rows (``JobLimits.max_bars``).

Files as people have them:

- Column names in any case, surrounding spaces and ``<angle brackets>`` ignored; ``vol`` or
  ``tickvol`` stand in for a missing ``volume``.
- Timestamps from a datetime index (Parquet), else a column named ``timestamp``, ``datetime``,
  ``date``, ``time``, ``open_time``, ``date_time`` or ``gmt_time``, else the unnamed first column
  ``DataFrame.to_csv`` writes, else the first column that is not OHLCV; separate ``date`` and
  ``time`` columns are joined. Values may be date strings, datetimes, ``YYYYMMDD`` integers or
  epoch numbers (seconds, milliseconds, microseconds or nanoseconds, told apart by magnitude).
- Naive timestamps are taken in ``DataSpec.timezone`` (an IANA name; UTC when empty); ones with
  an offset and epoch numbers are absolute. ``LoadedSeries.naive`` says which a file had.
- A CSV separated by ``;`` or tabs is read as such.

Cleaning, each reported as a ``DataIssue`` that the load step turns into a WARNING event with
its count (``preprocess.load_data``): rows whose timestamp cannot be read are dropped (more than
half of them: ``DataError``); rows with a missing or non-finite value are dropped; rows out of
time order are sorted (stably); of rows sharing a timestamp the *last* one in the file is kept
(later rows are usually corrections); gaps (a step longer than ``_GAP_FACTOR`` bars of trading
time, weekends not counted) are reported, not filled. What cannot be trained is a
``DataError`` naming symbol, timeframe and the problem: no file, an unreadable file, missing or
non-numeric columns, non-positive prices, more rows than ``max_bars``, too few bars.

Resampling a file (``resample_file_bars``): bins are aligned in UTC (days at 00:00, weeks on
Monday), open = first open, high = max, low = min, close = last close, volume = sum, each bin
labelled by its open time. A bin with no bars (a closed market) does not exist; one with fewer
bars than a full bin inside the data is kept (the market was closed for part of it); the
first bin when the data starts after it opened and the last one when the data ends before it
closes are incomplete and dropped.

Every source honours ``DataSpec.start``/``end`` (inclusive; a date-only end covers its day),
applied after resampling. The synthetic market always starts at ``SYNTHETIC_START``.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from shared.pipeline.synthetic import SYNTHETIC_START, synthetic_bars
from shared.pipeline.timeframes import finest_timeframe, timeframe_delta
from shared.spec import DEFAULT_LIMITS, DataSource, DataSpec

__all__ = [
    "COLUMNS",
    "SYNTHETIC_START",
    "DataError",
    "DataIssue",
    "LoadedSeries",
    "MarketFile",
    "MarketFolder",
    "finest_timeframe",
    "load_bars",
    "load_series",
    "open_folder",
    "parse_bound",
    "read_market_file",
    "resample_bars",
    "resample_file_bars",
    "spacing_timeframe",
    "synthetic_bars",
    "timeframe_delta",
]

_LOGGER = logging.getLogger(__name__)

COLUMNS = ("open", "high", "low", "close", "volume")
_TIME_COLUMNS = ("timestamp", "datetime", "date", "time", "open_time", "date_time", "gmt_time")
_UNNAMED = ("", "unnamed:_0", "index")
"""Names pandas gives the first column when its header cell is empty (``DataFrame.to_csv``)."""
_VOLUME_ALIASES = ("vol", "tickvol", "tick_volume")
_SUFFIXES = (".csv", ".parquet")
_GAP_FACTOR = 5
"""A step longer than this many bars of trading time is a gap; weekends are not counted."""
_WEEK_ORIGIN = pd.Timestamp("1970-01-05T00:00:00Z")
"""A Monday: file bins are aligned to it, so weeks run Monday to Monday (UTC)."""
_DAY_NS = 86_400 * 10**9
_WEEK_NS = 7 * _DAY_NS


class DataError(ValueError):
    """Market data that cannot be used; names the symbol, the timeframe and the problem."""

    def __init__(self, symbol: str, timeframe: str, problem: str) -> None:
        where = f"{symbol} [{timeframe}]" if timeframe else symbol
        super().__init__(f"{where}: {problem}" if where else problem)
        self.symbol = symbol
        self.timeframe = timeframe
        self.problem = problem


@dataclass(frozen=True)
class DataIssue:
    """Something a file had that loading mended or only noticed, with how often.

    ``kind`` is the count's key in the WARNING event's metrics: ``unreadable_timestamps``,
    ``nan_rows``, ``unsorted_rows``, ``duplicate_rows`` or ``gaps``."""

    kind: str
    count: int
    message: str
    """A sentence that names the file and says what was done, e.g. ``EURUSD.csv: 3 duplicate
    timestamps; kept the last row of each``."""


@dataclass(frozen=True)
class LoadedSeries:
    """One symbol's bars on one timeframe and where they came from."""

    frame: pd.DataFrame
    file: str = ""
    """The file's name in its folder; empty for the synthetic market."""
    resampled_from: str = ""
    """The timeframe the bars were aggregated from, when they were."""
    issues: tuple[DataIssue, ...] = ()
    """What cleaning the file found (the same for every timeframe made from that file)."""
    naive: bool = False
    """The file's timestamps had no zone and were read in ``DataSpec.timezone``."""


# ---------------------------------------------------------------------------------------------
# Resampling


def resample_bars(bars: pd.DataFrame, source_timeframe: str, timeframe: str) -> pd.DataFrame:
    """Aggregate gap-free ``bars`` (the synthetic market) into ``timeframe`` bars, keeping only
    bins that hold every source bar.

    ``timeframe`` must be a whole multiple of ``source_timeframe``; a bin is labelled by its
    open time, like every other frame here.
    """
    ratio = _ratio(source_timeframe, timeframe)
    if ratio == 1:
        return bars.copy()
    grouped = bars.resample(timeframe_delta(timeframe), label="left", closed="left", origin="epoch")
    out = _aggregate(grouped)
    complete = grouped["close"].count().to_numpy() == ratio
    out = out.loc[complete].astype(np.float64)
    out.index.name = "timestamp"
    return out


def resample_file_bars(bars: pd.DataFrame, source_timeframe: str, timeframe: str) -> pd.DataFrame:
    """Aggregate market-file ``bars`` into ``timeframe`` bars (see the module docstring): bins
    aligned to Monday 00:00 UTC, empty bins left out, partial bins inside the data kept, an
    incomplete first and last bin dropped."""
    ratio = _ratio(source_timeframe, timeframe)
    if ratio == 1 or bars.empty:
        return bars.copy()
    dst = timeframe_delta(timeframe)
    grouped = bars.resample(dst, label="left", closed="left", origin=_WEEK_ORIGIN)
    out = _aggregate(grouped)
    keep = grouped["close"].count().to_numpy() > 0
    opens = out.index
    keep &= np.asarray(opens >= bars.index[0], dtype=bool)
    data_end = bars.index[-1] + timeframe_delta(source_timeframe)
    keep &= np.asarray(opens + dst <= data_end, dtype=bool)
    out = out.loc[keep].astype(np.float64)
    out.index.name = "timestamp"
    return out


def _ratio(source_timeframe: str, timeframe: str) -> int:
    ratio = timeframe_delta(timeframe) / timeframe_delta(source_timeframe)
    if ratio < 1 or ratio != int(ratio):
        raise ValueError(f"{timeframe} is not a whole multiple of {source_timeframe}")
    return int(ratio)


def _aggregate(grouped: pd.api.typing.DatetimeIndexResampler) -> pd.DataFrame:
    return grouped.agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )


def spacing_timeframe(index: pd.DatetimeIndex) -> str | None:
    """The timeframe the median step of a sorted ``index`` shows (``1h``, ``1d``, ``1w``), or
    None when that step is not a whole number of minutes."""
    if len(index) < 2:
        return None
    step = int(np.median(np.diff(index.as_unit("ns").asi8)))
    minutes, rest = divmod(step, 60 * 10**9)
    if rest or minutes <= 0:
        return None
    for unit, size in (("w", 7 * 1440), ("d", 1440), ("h", 60), ("m", 1)):
        if minutes % size == 0 and minutes // size < 10_000:
            return f"{minutes // size}{unit}"
    return None


# ---------------------------------------------------------------------------------------------
# Loading


def load_bars(
    data: DataSpec,
    symbol: str,
    timeframe: str,
    data_dir: Path | None = None,
    *,
    dataset_dir: Path | None = None,
    base_timeframe: str | None = None,
    min_bars: int = 2,
    max_bars: int = DEFAULT_LIMITS.max_bars,
) -> pd.DataFrame:
    """The bars of ``load_series`` alone."""
    return load_series(
        data,
        symbol,
        timeframe,
        data_dir,
        dataset_dir=dataset_dir,
        base_timeframe=base_timeframe,
        min_bars=min_bars,
        max_bars=max_bars,
    ).frame


def load_series(
    data: DataSpec,
    symbol: str,
    timeframe: str,
    data_dir: Path | None = None,
    *,
    dataset_dir: Path | None = None,
    base_timeframe: str | None = None,
    min_bars: int = 2,
    max_bars: int = DEFAULT_LIMITS.max_bars,
    folder: MarketFolder | None = None,
) -> LoadedSeries:
    """OHLCV bars for one symbol and timeframe, cleaned, bounded by ``data.start``/``end``.

    SYNTHETIC: ``data.bars`` bars are generated at ``base_timeframe`` (default: ``timeframe``)
    and resampled to ``timeframe``. DIRECTORY/DATASET: read from ``folder`` (one
    ``open_folder`` shares its reads across a job's series), or from the folder ``data_dir`` /
    ``dataset_dir`` gives. Raises ``DataError`` naming symbol, timeframe and the problem.
    """
    if data.source is DataSource.SYNTHETIC:
        gen_tf = base_timeframe or timeframe
        frame = synthetic_bars(symbol, gen_tf, data.bars, data.seed)
        resampled = ""
        if gen_tf != timeframe:
            try:
                frame = resample_bars(frame, gen_tf, timeframe)
            except ValueError as exc:
                raise DataError(symbol, timeframe, f"cannot build synthetic bars: {exc}") from exc
            resampled = gen_tf
        series = LoadedSeries(frame=frame, resampled_from=resampled)
    else:
        if folder is None:
            folder = open_folder(data, data_dir, dataset_dir, max_bars=max_bars)
        series = folder.series(symbol, timeframe)
    frame = _bound(series.frame, data, symbol, timeframe)
    if len(frame) < min_bars:
        where = f" in {series.file}" if series.file else ""
        window = " between data.start and data.end" if data.start or data.end else ""
        raise DataError(
            symbol,
            timeframe,
            f"too few bars: {len(frame)}{where}{window} (at least {min_bars} needed)",
        )
    return LoadedSeries(
        frame=frame,
        file=series.file,
        resampled_from=series.resampled_from,
        issues=series.issues,
        naive=series.naive,
    )


def open_folder(
    data: DataSpec,
    data_dir: Path | None,
    dataset_dir: Path | None = None,
    *,
    max_bars: int = DEFAULT_LIMITS.max_bars,
) -> MarketFolder:
    """The folder a DIRECTORY or DATASET source reads; ``DataError`` when this node has none."""
    if data.source is DataSource.DATASET:
        if dataset_dir is None:
            raise DataError(
                "",
                "",
                f"this node has no copy of dataset {data.dataset!r}: it is fetched from the "
                "orchestrator when the trainer runs the job (upload it with trainwire datasets "
                "upload)",
            )
        return MarketFolder(
            dataset_dir, f"dataset {data.dataset}", timezone=data.timezone, max_bars=max_bars
        )
    if data.source is not DataSource.DIRECTORY:
        raise ValueError(f"{data.source.value} data has no folder")
    if data_dir is None:
        raise DataError(
            "",
            "",
            "this trainer has no data directory configured (start it with --data-dir DIR), so "
            f"it cannot read data.path {data.path!r}",
        )
    return MarketFolder(
        data_dir / data.path, data.path or ".", timezone=data.timezone, max_bars=max_bars
    )


@dataclass(frozen=True)
class MarketFile:
    """One market file, read and cleaned (``read_market_file``)."""

    name: str
    timeframe: str
    """From its name (``EURUSD_1h.csv``), else from its bars' median spacing."""
    frame: pd.DataFrame
    issues: tuple[DataIssue, ...]
    naive: bool
    """Its timestamps had no zone and were read in the given timezone."""


def read_market_file(
    path: Path,
    *,
    symbol: str = "",
    timeframe: str | None = None,
    timezone: str = "",
    max_bars: int = DEFAULT_LIMITS.max_bars,
) -> MarketFile:
    """Read and clean one file as the loader does (the module docstring's rules), at most
    ``max_bars`` rows. ``timeframe`` None: the bars' median spacing tells it. ``symbol`` only
    names the file's symbol in a ``DataError``."""
    where = timeframe or ""
    raw = _read_table(path, symbol, where, max_bars)
    frame, naive, unreadable = _normalise(raw, symbol, where, path.name, timezone)
    frame, issues = _clean(frame, symbol, where, path.name, unreadable)
    if timeframe is None:
        timeframe = spacing_timeframe(frame.index)
        if timeframe is None:
            stem = symbol or path.stem
            raise DataError(
                symbol,
                "",
                f"{path.name}: cannot tell its timeframe from the spacing of its bars; name "
                f"it {stem}_<timeframe>{path.suffix} (e.g. {stem}_1h{path.suffix})",
            )
    issues = issues + _gaps(frame, timeframe, path.name)
    return MarketFile(path.name, timeframe, frame, issues, naive)


@dataclass
class MarketFolder:
    """A folder of market files: finds, reads (once each) and cleans a job's series."""

    path: Path
    label: str
    """How messages name the folder: ``data.path`` or ``dataset NAME``."""
    timezone: str = ""
    max_bars: int = DEFAULT_LIMITS.max_bars
    _files: dict[str, MarketFile] = field(default_factory=dict, repr=False)

    def series(self, symbol: str, timeframe: str) -> LoadedSeries:
        """``symbol``'s bars on ``timeframe``: its own file, else resampled from the finest file
        whose timeframe divides it."""
        if not self.path.is_dir():
            raise DataError(
                symbol,
                timeframe,
                f"{self.label} is not a folder on this trainer (data.path is relative to the "
                "trainer's --data-dir)",
            )
        exact = self._named(symbol, timeframe)
        if exact is not None:
            read = self._read(exact, symbol, timeframe, timeframe)
            return LoadedSeries(read.frame, read.name, "", read.issues, read.naive)
        wanted = timeframe_delta(timeframe)
        found: list[tuple[str, str]] = []
        usable: list[MarketFile] = []
        for path, file_tf in self._candidates(symbol):
            if file_tf is None or _divides(file_tf, wanted):
                read = self._read(path, symbol, timeframe, file_tf)
                file_tf = read.timeframe
                if _divides(file_tf, wanted):
                    usable.append(read)
            found.append((path.name, file_tf))
        if not usable:
            raise DataError(symbol, timeframe, self._missing(symbol, timeframe, found))
        source = min(usable, key=lambda f: timeframe_delta(f.timeframe))
        if source.timeframe == timeframe:
            return LoadedSeries(source.frame, source.name, "", source.issues, source.naive)
        frame = resample_file_bars(source.frame, source.timeframe, timeframe)
        return LoadedSeries(frame, source.name, source.timeframe, source.issues, source.naive)

    def _named(self, symbol: str, timeframe: str) -> Path | None:
        for suffix in _SUFFIXES:
            path = self.path / f"{symbol}_{timeframe}{suffix}"
            if path.is_file():
                return path
        return None

    def _candidates(self, symbol: str) -> Iterator[tuple[Path, str | None]]:
        """``symbol``'s files with the timeframe their name gives (``S_1h.csv``), or None for
        ``S.csv`` (its bar spacing tells); a CSV wins over a Parquet file of the same name."""
        if not self.path.is_dir():
            return
        seen: set[str] = set()
        for path in sorted(self.path.iterdir()):
            stem, suffix = path.stem, path.suffix.lower()
            if suffix not in _SUFFIXES or stem in seen or not path.is_file():
                continue
            if stem == symbol:
                seen.add(stem)
                yield path, None
            elif stem.startswith(f"{symbol}_") and _is_timeframe(stem[len(symbol) + 1 :]):
                seen.add(stem)
                yield path, stem[len(symbol) + 1 :]

    def _missing(self, symbol: str, timeframe: str, found: list[tuple[str, str]]) -> str:
        where = self.label
        expected = (
            f"no data file for {timeframe} in {where}: expected {symbol}_{timeframe}.csv or "
            f".parquet, or a file of a finer timeframe to resample from ({symbol}.csv, "
            f"{symbol}_1h.csv, ...)"
        )
        if not found:
            return expected
        have = ", ".join(f"{name} ({tf})" for name, tf in found)
        return f"{expected}; {where} has {have}, and {timeframe} is not a multiple of those"

    def _read(self, path: Path, symbol: str, timeframe: str, file_tf: str | None) -> MarketFile:
        """``path`` read and cleaned, once per folder; ``file_tf`` None: from its spacing."""
        cached = self._files.get(path.name)
        if cached is not None:
            return cached
        try:
            read = read_market_file(
                path,
                symbol=symbol,
                timeframe=file_tf,
                timezone=self.timezone,
                max_bars=self.max_bars,
            )
        except DataError as exc:
            raise DataError(symbol, timeframe, exc.problem) from exc
        self._files[path.name] = read
        return read


def _is_timeframe(text: str) -> bool:
    try:
        timeframe_delta(text)
    except ValueError:
        return False
    return True


def _divides(file_tf: str, wanted: pd.Timedelta) -> bool:
    ratio = wanted / timeframe_delta(file_tf)
    return bool(ratio >= 1 and ratio == int(ratio))


# ---------------------------------------------------------------------------------------------
# Reading a file


def _too_many(symbol: str, timeframe: str, name: str, max_bars: int) -> DataError:
    return DataError(
        symbol,
        timeframe,
        f"{name} has more than {max_bars:,} rows, the most a job may load (max_bars); split "
        "the file or trim it to the range you train on",
    )


def _read_table(path: Path, symbol: str, timeframe: str, max_bars: int) -> pd.DataFrame:
    if path.suffix.lower() == ".parquet":
        try:
            rows = _parquet_rows(path)
            raw = pd.read_parquet(path) if rows <= max_bars else None
        except ImportError as exc:
            raise DataError(
                symbol, timeframe, f"reading {path.name} needs pyarrow; install it or use CSV"
            ) from exc
        except (OSError, ValueError) as exc:
            raise DataError(symbol, timeframe, f"cannot read {path.name}: {exc}") from exc
        if raw is None:
            raise _too_many(symbol, timeframe, path.name, max_bars)
        return raw
    try:
        raw = pd.read_csv(path, nrows=max_bars + 1)
        if len(raw.columns) == 1:
            header = str(raw.columns[0])
            sep = ";" if ";" in header else "\t" if "\t" in header else None
            if sep is not None:
                raw = pd.read_csv(path, nrows=max_bars + 1, sep=sep)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise DataError(symbol, timeframe, f"cannot read {path.name}: {exc}") from exc
    if len(raw) > max_bars:
        raise _too_many(symbol, timeframe, path.name, max_bars)
    return raw


def _parquet_rows(path: Path) -> int:
    """The row count from the file's footer, without reading its data."""
    import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]

    rows: int = pq.ParquetFile(path).metadata.num_rows
    return rows


_NAME_CLEAN = re.compile(r"[\s<>]+")


def _column_name(name: object) -> str:
    return _NAME_CLEAN.sub("_", str(name).strip().strip("<>").lower()).strip("_")


def _normalise(
    raw: pd.DataFrame, symbol: str, timeframe: str, name: str, timezone: str
) -> tuple[pd.DataFrame, bool, int]:
    """(frame on a UTC index in file order, whether times were naive, unreadable times)."""
    frame = raw.rename(columns={c: _column_name(c) for c in raw.columns})
    if "volume" not in frame.columns:
        alias = next((a for a in _VOLUME_ALIASES if a in frame.columns), None)
        if alias is not None:
            frame = frame.rename(columns={alias: "volume"})
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        have = ", ".join(str(c) for c in raw.columns[:12])
        raise DataError(
            symbol,
            timeframe,
            f"{name}: missing column(s) {', '.join(missing)} (it has {have}); columns must be "
            "named open, high, low, close, volume in any case",
        )
    if isinstance(frame.index, pd.DatetimeIndex):
        times = pd.Series(frame.index, index=range(len(frame)))
    else:
        times = _time_values(frame, symbol, timeframe, name)
    parsed, naive = _parse_times(times, symbol, timeframe, name, timezone)
    try:
        values = frame[list(COLUMNS)].apply(pd.to_numeric, errors="raise")
        array = values.to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(symbol, timeframe, f"{name}: non-numeric OHLCV values: {exc}") from exc
    index = pd.DatetimeIndex(parsed).as_unit("ns").rename("timestamp")
    unreadable = int(index.isna().sum())
    if unreadable:
        keep = ~index.isna()
        index, array = index[keep], array[keep]
    out = pd.DataFrame(array, index=index, columns=list(COLUMNS))
    return out, naive, unreadable


def _time_values(frame: pd.DataFrame, symbol: str, timeframe: str, name: str) -> pd.Series:
    columns = [str(c) for c in frame.columns]
    if "date" in columns and "time" in columns and _looks_like_clock(frame["time"]):
        joined = frame["date"].astype(str) + " " + frame["time"].astype(str)
        return joined.reset_index(drop=True)
    chosen = next((c for c in _TIME_COLUMNS if c in columns), None)
    if chosen is None and columns[0] in _UNNAMED:
        chosen = columns[0]
    if chosen is None:
        chosen = next((c for c in columns if c not in COLUMNS), None)
    if chosen is None:
        raise DataError(
            symbol,
            timeframe,
            f"{name}: no timestamp column (name one timestamp, datetime or date, or put the "
            "timestamps in the first column)",
        )
    return frame[chosen].reset_index(drop=True)


def _looks_like_clock(column: pd.Series) -> bool:
    """``09:30`` / ``09:30:00`` strings: the time half of a date + time pair."""
    sample = column.dropna().astype(str).head(20)
    return bool(len(sample)) and bool(sample.str.fullmatch(r"\d{1,2}:\d{2}(:\d{2})?").all())


def _parse_times(
    values: pd.Series, symbol: str, timeframe: str, name: str, timezone: str
) -> tuple[pd.DatetimeIndex, bool]:
    """UTC times (NaT where unreadable) and whether they were naive (taken in ``timezone``)."""
    zone = timezone or "UTC"
    try:
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            return _parse_numbers(values), False
        if isinstance(values.dtype, pd.DatetimeTZDtype):
            return pd.DatetimeIndex(values).tz_convert("UTC"), False
        if pd.api.types.is_datetime64_dtype(values):
            return _localise(pd.DatetimeIndex(values), zone), True
        text = values.astype("string").str.strip()
        try:
            index = _parse_text(text)
        except (ValueError, TypeError):
            # Offsets that differ from row to row: each row is absolute.
            return pd.DatetimeIndex(pd.to_datetime(text, errors="coerce", utc=True)), False
        if index.tz is not None:
            return index.tz_convert("UTC"), False
        return _localise(index, zone), True
    except (OverflowError, ValueError, TypeError) as exc:
        raise DataError(symbol, timeframe, f"{name}: unreadable timestamps: {exc}") from exc


def _parse_text(text: pd.Series) -> pd.DatetimeIndex:
    """One format inferred from the first row (fast); if that leaves rows unread, each row
    parsed on its own (``format="mixed"``), whichever reads more."""
    with warnings.catch_warnings():
        # "Could not infer format": expected for text that is not dates; counted, not warned.
        warnings.simplefilter("ignore", UserWarning)
        index = pd.DatetimeIndex(pd.to_datetime(text, errors="coerce"))
    blank = int(text.isna().sum())
    if int(index.isna().sum()) > blank:
        mixed = pd.DatetimeIndex(pd.to_datetime(text, errors="coerce", format="mixed"))
        if int(mixed.isna().sum()) < int(index.isna().sum()):
            return mixed
    return index


def _parse_numbers(values: pd.Series) -> pd.DatetimeIndex:
    """Epoch seconds/ms/µs/ns by magnitude; 8-digit integers between 19000101 and 21001231 are
    ``YYYYMMDD`` dates."""
    numbers = pd.to_numeric(values, errors="coerce").astype(np.float64)
    finite = numbers[np.isfinite(numbers)]
    if finite.empty:
        return pd.DatetimeIndex(pd.to_datetime(numbers, errors="coerce", utc=True))
    typical = float(np.median(np.abs(finite)))
    whole = bool((finite == np.floor(finite)).all())
    if whole and finite.min() >= 19_000_101 and finite.max() <= 21_001_231:
        as_text = numbers.map(lambda v: f"{int(v):08d}" if np.isfinite(v) else "")
        dates = pd.to_datetime(as_text, format="%Y%m%d", errors="coerce")
        return _localise(pd.DatetimeIndex(dates), "UTC")
    unit = "ns" if typical > 1e17 else "us" if typical > 1e14 else "ms" if typical > 1e11 else "s"
    return pd.DatetimeIndex(pd.to_datetime(numbers, unit=unit, errors="coerce", utc=True))


def _localise(index: pd.DatetimeIndex, zone: str) -> pd.DatetimeIndex:
    """Naive ``index`` as wall-clock times in ``zone``, then UTC. A time that a DST change
    repeats is resolved from the order of the rows where it can be, else unreadable (NaT); a
    time it skips moves forward to the first valid one."""
    if zone.upper() == "UTC":
        return index.tz_localize("UTC")
    try:
        local = index.tz_localize(zone, ambiguous="infer", nonexistent="shift_forward")
    except (ValueError, TypeError):
        local = index.tz_localize(zone, ambiguous="NaT", nonexistent="shift_forward")
    return local.tz_convert("UTC")


# ---------------------------------------------------------------------------------------------
# Cleaning


def _clean(
    frame: pd.DataFrame, symbol: str, timeframe: str, name: str, unreadable: int
) -> tuple[pd.DataFrame, tuple[DataIssue, ...]]:
    """Drop unusable rows, sort, de-duplicate (see the module docstring); raise ``DataError``
    for what no cleaning mends."""
    issues: list[DataIssue] = []
    total = len(frame) + unreadable
    if unreadable:
        if unreadable * 2 > total:
            raise DataError(
                symbol,
                timeframe,
                f"{name}: {unreadable:,} of {total:,} timestamps cannot be read as dates or times",
            )
        issues.append(
            DataIssue(
                "unreadable_timestamps",
                unreadable,
                f"{name}: {unreadable:,} rows whose timestamp cannot be read; dropped them",
            )
        )
    values = frame.to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        first = frame.index[int(np.argmax(bad))]
        count = int(bad.sum())
        issues.append(
            DataIssue(
                "nan_rows",
                count,
                f"{name}: {count:,} rows with a missing or non-finite value (the first at "
                f"{_when(first)}); dropped them",
            )
        )
        frame = frame.loc[~bad]
    stamps = frame.index.as_unit("ns").asi8
    descents = int((np.diff(stamps) < 0).sum())
    if descents:
        issues.append(
            DataIssue(
                "unsorted_rows",
                descents,
                f"{name}: {descents:,} rows out of time order; sorted the rows by timestamp",
            )
        )
        frame = frame.iloc[np.argsort(stamps, kind="stable")]
    duplicated = frame.index.duplicated(keep="last")
    if duplicated.any():
        count = int(duplicated.sum())
        first = frame.index[int(np.argmax(duplicated))]
        issues.append(
            DataIssue(
                "duplicate_rows",
                count,
                f"{name}: {count:,} rows repeat an earlier timestamp (the first {_when(first)}); "
                "kept the last row of each timestamp",
            )
        )
        frame = frame.loc[~duplicated]
    prices = frame[list(COLUMNS[:4])].to_numpy(dtype=np.float64)
    if (prices <= 0).any():
        row = int(np.argmax((prices <= 0).any(axis=1)))
        raise DataError(
            symbol, timeframe, f"{name}: non-positive price at {_when(frame.index[row])}"
        )
    if (frame["volume"].to_numpy() < 0).any():
        row = int(np.argmax(frame["volume"].to_numpy() < 0))
        raise DataError(symbol, timeframe, f"{name}: negative volume at {_when(frame.index[row])}")
    return frame, tuple(issues)


def _weekend_ns(stamps: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Weekend time (Saturday and Sunday, UTC) from the epoch (a Thursday) to each instant."""
    weeks, into = np.divmod(stamps, _WEEK_NS)
    weekend: npt.NDArray[np.int64] = weeks * 2 * _DAY_NS + np.clip(
        into - 2 * _DAY_NS, 0, 2 * _DAY_NS
    )
    return weekend


def _gaps(frame: pd.DataFrame, timeframe: str, name: str) -> tuple[DataIssue, ...]:
    """Steps longer than ``_GAP_FACTOR`` bars once weekends are taken out (markets close then;
    a weekly or coarser file has no gaps to speak of)."""
    bar = timeframe_delta(timeframe).value
    if len(frame) < 2 or bar >= _WEEK_NS:
        return ()
    stamps = frame.index.as_unit("ns").asi8
    steps = np.diff(stamps)
    trading = steps - np.diff(_weekend_ns(stamps))
    long = trading > _GAP_FACTOR * bar
    count = int(long.sum())
    if not count:
        return ()
    worst = int(np.argmax(np.where(long, trading, -1)))
    began, ended = frame.index[worst], frame.index[worst + 1]
    _LOGGER.info("%s: %d gaps in %s", name, count, timeframe)
    return (
        DataIssue(
            "gaps",
            count,
            f"{name}: {count:,} gaps longer than {_GAP_FACTOR} bars of {timeframe} (weekends "
            f"not counted), the longest from {_when(began)} to {_when(ended)}; left as they are",
        ),
    )


def _when(stamp: pd.Timestamp) -> str:
    """``2017-04-19`` at midnight, ``2017-04-19 09:00`` otherwise (UTC)."""
    if stamp == stamp.normalize():
        return f"{stamp:%Y-%m-%d}"
    return f"{stamp:%Y-%m-%d %H:%M}"


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
