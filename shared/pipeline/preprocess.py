"""Steps 1-6 of a run: from market data to one labelled feature matrix.

Progress is reported here, around the pure engines (loader, indicators, fuzzy sets), per
symbol, timeframe, indicator and fuzzy set; the engines know nothing of it. The load step also
names where every series came from (``DataProvenance``) and turns what cleaning a file found
into WARNING events; step 5, the labels, is ``shared.pipeline.labelling``'s.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from shared.jobs import DataProvenance, SeriesProvenance
from shared.pipeline.features import (
    Dataset,
    ResolvedFeature,
    combine_symbols,
    indicator_input,
    resolve_features,
    symbol_features,
)
from shared.pipeline.fuzzy import fuzzify
from shared.pipeline.indicators import compute_indicator, indicator_label
from shared.pipeline.job import JobContext, TrainingJob
from shared.pipeline.labelling import label_symbols
from shared.pipeline.market import DataError, finest_timeframe, load_series, open_folder
from shared.progress.tracker import TrainingStep
from shared.progress.update import ItemCounter
from shared.spec import DEFAULT_LIMITS, DataSource, DataSpec

Series = tuple[str, str]
"""(symbol, timeframe)"""


def _positions(job: JobContext[Any]) -> list[tuple[int, int]]:
    """(symbol index, timeframe index) of every series, symbol-major."""
    request = job.request
    return [(s, t) for s in range(len(request.symbols)) for t in range(len(request.timeframes))]


def _key(job: JobContext[Any], si: int, ti: int) -> Series:
    return job.request.symbols[si], job.request.timeframes[ti]


def load_data(
    job: JobContext[Any],
    data_dir: Path | None,
    *,
    dataset_dir: Path | None = None,
    max_bars: int = DEFAULT_LIMITS.max_bars,
) -> tuple[dict[Series, pd.DataFrame], DataProvenance]:
    """Step 1: bars of every symbol and timeframe, at most ``max_bars`` over all of them, and
    where they came from.

    Each series is reported as it loads (``Loading EURUSD 1h from EURUSD.csv (5,000 bars,
    2017-04-19 09:00 … 2018-02-07 15:00)``), what cleaning a file found as one WARNING event
    per finding with its count (once per file), and the step's closing message names the
    source, the series and the timezone naive timestamps were read in."""
    request = job.request
    data = request.data
    generation_tf = finest_timeframe(request.timeframes)
    bars: dict[Series, pd.DataFrame] = {}
    series: list[SeriesProvenance] = []
    warned: set[str] = set()
    naive = False
    total = 0
    positions = _positions(job)
    job.cancel.raise_if_cancelled()
    job.tracker.start_step(TrainingStep.LOAD_DATA)
    folder = None
    if data.source is not DataSource.SYNTHETIC:
        folder = open_folder(data, data_dir, dataset_dir, max_bars=max_bars)
    for done, (si, ti) in enumerate(positions):
        job.cancel.raise_if_cancelled()
        key = _key(job, si, ti)
        loaded = load_series(
            data, *key, base_timeframe=generation_tf, max_bars=max_bars, folder=folder
        )
        frame = loaded.frame
        total += len(frame)
        if total > max_bars:
            raise DataError(
                *key,
                f"the job's series hold more than {max_bars:,} bars together, the most a job "
                "may load (max_bars); narrow data.start/end or use fewer symbols or "
                "timeframes",
            )
        bars[key] = frame
        record = SeriesProvenance(
            symbol=key[0],
            timeframe=key[1],
            file=loaded.file,
            start=frame.index[0].timestamp(),
            end=frame.index[-1].timestamp(),
            rows=len(frame),
            resampled_from=loaded.resampled_from,
        )
        series.append(record)
        naive = naive or loaded.naive
        job.tracker.detail(
            (done + 1) / len(positions),
            context=job.context(si, ti, "Loading bars"),
            items=ItemCounter(name="series", current=done + 1, total=len(positions)),
            message=f"Loading {describe_series(record)}",
        )
        if loaded.file not in warned:
            warned.add(loaded.file)
            for issue in loaded.issues:
                job.tracker.warning(issue.message, counts={issue.kind: issue.count})
    provenance = DataProvenance(
        source=data.source.value,
        location=data_location(data),
        series=tuple(series),
        timezone=data.timezone or "UTC",
    )
    job.tracker.finish_step(_loaded_message(provenance, naive))
    return bars, provenance


def data_location(data: DataSpec) -> str:
    """The directory (``data.path``), ``name@sha256[:12]`` of a dataset, or ``seed N``."""
    if data.source is DataSource.SYNTHETIC:
        return f"seed {data.seed}"
    if data.source is DataSource.DATASET:
        return f"{data.dataset}@{data.dataset_sha256[:12]}" if data.dataset_sha256 else data.dataset
    return data.path


def _stamp(seconds: float) -> str:
    stamp = pd.Timestamp(seconds, unit="s", tz="UTC")
    return f"{stamp:%Y-%m-%d}" if stamp == stamp.normalize() else f"{stamp:%Y-%m-%d %H:%M}"


def describe_series(record: SeriesProvenance) -> str:
    """``EURUSD 4h from EURUSD.csv, resampled from 1h (1,291 bars, 2017-04-19 12:00 …
    2018-02-07 12:00)``; synthetic series are ``generated``."""
    source = f" from {record.file}" if record.file else " generated"
    if record.resampled_from:
        source += f", resampled from {record.resampled_from}"
    span = f"{_stamp(record.start)} … {_stamp(record.end)}"
    return f"{record.symbol} {record.timeframe}{source} ({record.rows:,} bars, {span})"


_MESSAGE_SERIES = 4
"""Series the load step's closing message lists by name; the rest are counted."""


def _loaded_message(provenance: DataProvenance, naive: bool) -> str:
    if provenance.source == DataSource.SYNTHETIC.value:
        where = f"the synthetic market ({provenance.location})"
    elif provenance.source == DataSource.DATASET.value:
        where = f"dataset {provenance.location}"
    else:
        where = f"directory {provenance.location}"
    shown = [describe_series(s) for s in provenance.series[:_MESSAGE_SERIES]]
    rest = len(provenance.series) - len(shown)
    if rest:
        shown.append(f"{rest} more series")
    text = f"Loaded {provenance.rows:,} bars from {where}: {'; '.join(shown)}"
    if naive:
        text += f"; timestamps without a zone read as {provenance.timezone}"
    elif provenance.source != DataSource.SYNTHETIC.value:
        text += "; timestamps carry their zone"
    return text


def compute_indicators(
    job: TrainingJob, bars: dict[Series, pd.DataFrame]
) -> dict[Series, dict[str, pd.DataFrame]]:
    """Step 2: every indicator of the strategy on every series."""
    indicators = job.request.strategy.indicators
    out: dict[Series, dict[str, pd.DataFrame]] = {key: {} for key in bars}
    with job.step(TrainingStep.INDICATORS):
        items = job.items("indicators", len(_positions(job)) * len(indicators))
        for si, ti in _positions(job):
            key = _key(job, si, ti)
            for k, ind in enumerate(indicators):
                label = f"Computing {indicator_label(ind, indicators)}"
                items.next(job.context(si, ti, label, k + 1, len(indicators)))
                out[key][ind.id] = compute_indicator(ind, bars[key])
    return out


def compute_memberships(
    job: TrainingJob, indicators: dict[Series, dict[str, pd.DataFrame]]
) -> dict[Series, pd.DataFrame]:
    """Step 3: the memberships each timeframe feeds the model, one feature column each."""
    request = job.request
    per_tf: dict[str, list[ResolvedFeature]] = {tf: [] for tf in request.timeframes}
    for feature in resolve_features(request.strategy, request.timeframes):
        per_tf[feature.timeframe].append(feature)
    total = len(request.symbols) * sum(len(v) for v in per_tf.values())
    out: dict[Series, pd.DataFrame] = {}
    with job.step(TrainingStep.FUZZY):
        items = job.items("fuzzy sets", total)
        for si, ti in _positions(job):
            key = _key(job, si, ti)
            columns = {}
            index = next(iter(indicators[key].values())).index
            wanted = per_tf[key[1]]
            for k, feature in enumerate(wanted):
                fs = feature.fuzzy
                detail = f"Fuzzifying {fs.group}:{fs.name}"
                items.next(job.context(si, ti, detail, k + 1, len(wanted)))
                values = indicator_input(fs.input, indicators[key]).to_numpy()
                columns[feature.column] = fuzzify(fs, values)
            out[key] = pd.DataFrame(columns, index=index)
    return out


def build_features(
    job: TrainingJob, memberships: dict[Series, pd.DataFrame]
) -> dict[str, pd.DataFrame]:
    """Step 4: per symbol, every timeframe aligned to the base timeframe without look-ahead."""
    timeframes = job.request.timeframes
    order = [f.column for f in resolve_features(job.request.strategy, timeframes)]
    out: dict[str, pd.DataFrame] = {}
    with job.step(TrainingStep.FEATURES):
        items = job.items("symbols", len(job.request.symbols))
        for si, symbol in enumerate(job.request.symbols):
            items.next(job.context(si, detail="Aligning timeframes"))
            per_tf = {tf: memberships[(symbol, tf)] for tf in timeframes}
            out[symbol] = symbol_features(per_tf, timeframes, order)
    return out


def prepare_dataset(
    job: TrainingJob,
    data_dir: Path | None,
    *,
    dataset_dir: Path | None = None,
    max_bars: int = DEFAULT_LIMITS.max_bars,
) -> Dataset:
    """Steps 1-6: the labelled feature matrix of all symbols, warm-up rows dropped.

    ``data_dir`` is the trainer's data directory (directory sources); ``dataset_dir`` the local
    copy of the request's uploaded dataset (dataset sources), its files under their names."""
    bars, provenance = load_data(job, data_dir, dataset_dir=dataset_dir, max_bars=max_bars)
    memberships = compute_memberships(job, compute_indicators(job, bars))
    labelled = label_symbols(job, bars, build_features(job, memberships))
    with job.step(TrainingStep.COMBINE):
        dataset = combine_symbols(labelled.frames)
    base = job.request.timeframes[0]
    return dataclasses.replace(
        dataset,
        provenance=provenance,
        labelling=labelled.report,
        base_bars={symbol: frame for (symbol, tf), frame in bars.items() if tf == base},
    )
