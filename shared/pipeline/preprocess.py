"""Steps 1-6 of a run: from market data to one labelled feature matrix.

Progress is reported here, around the pure engines (loader, indicators, fuzzy sets, labels), per
symbol, timeframe, indicator and fuzzy set (seed 000); the engines know nothing of it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from shared.pipeline.features import (
    Dataset,
    ResolvedFeature,
    SymbolFrame,
    combine_symbols,
    indicator_input,
    resolve_features,
    symbol_features,
)
from shared.pipeline.fuzzy import fuzzify
from shared.pipeline.indicators import compute_indicator, indicator_label
from shared.pipeline.job import JobContext
from shared.pipeline.labels import make_labels
from shared.pipeline.market import DataError, finest_timeframe, load_bars
from shared.spec import DEFAULT_LIMITS

Series = tuple[str, str]
"""(symbol, timeframe)"""


def _positions(job: JobContext) -> list[tuple[int, int]]:
    """(symbol index, timeframe index) of every series, symbol-major."""
    request = job.request
    return [(s, t) for s in range(len(request.symbols)) for t in range(len(request.timeframes))]


def _key(job: JobContext, si: int, ti: int) -> Series:
    return job.request.symbols[si], job.request.timeframes[ti]


def load_data(
    job: JobContext,
    data_dir: Path | None,
    *,
    dataset_dir: Path | None = None,
    max_bars: int = DEFAULT_LIMITS.max_bars,
) -> dict[Series, pd.DataFrame]:
    """Step 1: bars of every symbol and timeframe, at most ``max_bars`` over all of them."""
    generation_tf = finest_timeframe(job.request.timeframes)
    bars: dict[Series, pd.DataFrame] = {}
    total = 0
    with job.step(1):
        items = job.items("series", len(_positions(job)))
        for si, ti in _positions(job):
            items.next(job.context(si, ti, "Loading bars"))
            key = _key(job, si, ti)
            frame = load_bars(
                job.request.data, *key, data_dir, base_timeframe=generation_tf, max_bars=max_bars
            )
            total += len(frame)
            if total > max_bars:
                raise DataError(
                    *key,
                    f"the job's series hold more than {max_bars:,} bars together, the most a job "
                    "may load (max_bars); narrow data.start/end or use fewer symbols or "
                    "timeframes",
                )
            bars[key] = frame
    return bars


def compute_indicators(
    job: JobContext, bars: dict[Series, pd.DataFrame]
) -> dict[Series, dict[str, pd.DataFrame]]:
    """Step 2: every indicator of the strategy on every series."""
    indicators = job.request.strategy.indicators
    out: dict[Series, dict[str, pd.DataFrame]] = {key: {} for key in bars}
    with job.step(2):
        items = job.items("indicators", len(_positions(job)) * len(indicators))
        for si, ti in _positions(job):
            key = _key(job, si, ti)
            for k, ind in enumerate(indicators):
                label = f"Computing {indicator_label(ind, indicators)}"
                items.next(job.context(si, ti, label, k + 1, len(indicators)))
                out[key][ind.id] = compute_indicator(ind, bars[key])
    return out


def compute_memberships(
    job: JobContext, indicators: dict[Series, dict[str, pd.DataFrame]]
) -> dict[Series, pd.DataFrame]:
    """Step 3: the memberships each timeframe feeds the model, one feature column each."""
    request = job.request
    per_tf: dict[str, list[ResolvedFeature]] = {tf: [] for tf in request.timeframes}
    for feature in resolve_features(request.strategy, request.timeframes):
        per_tf[feature.timeframe].append(feature)
    total = len(request.symbols) * sum(len(v) for v in per_tf.values())
    out: dict[Series, pd.DataFrame] = {}
    with job.step(3):
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
    job: JobContext, memberships: dict[Series, pd.DataFrame]
) -> dict[str, pd.DataFrame]:
    """Step 4: per symbol, every timeframe aligned to the base timeframe without look-ahead."""
    timeframes = job.request.timeframes
    order = [f.column for f in resolve_features(job.request.strategy, timeframes)]
    out: dict[str, pd.DataFrame] = {}
    with job.step(4):
        items = job.items("symbols", len(job.request.symbols))
        for si, symbol in enumerate(job.request.symbols):
            items.next(job.context(si, detail="Aligning timeframes"))
            per_tf = {tf: memberships[(symbol, tf)] for tf in timeframes}
            out[symbol] = symbol_features(per_tf, timeframes, order)
    return out


def make_symbol_frames(
    job: JobContext, bars: dict[Series, pd.DataFrame], features: dict[str, pd.DataFrame]
) -> list[SymbolFrame]:
    """Step 5: labels on the base timeframe's closes."""
    base_tf = job.request.timeframes[0]
    frames: list[SymbolFrame] = []
    with job.step(5):
        items = job.items("symbols", len(job.request.symbols))
        for si, symbol in enumerate(job.request.symbols):
            items.next(job.context(si, 0, "Labelling"))
            close = bars[(symbol, base_tf)]["close"].to_numpy()
            labels = make_labels(job.request.strategy.labels, close)
            frames.append(SymbolFrame(symbol, features[symbol], labels))
    return frames


def prepare_dataset(
    job: JobContext,
    data_dir: Path | None,
    *,
    dataset_dir: Path | None = None,
    max_bars: int = DEFAULT_LIMITS.max_bars,
) -> Dataset:
    """Steps 1-6: the labelled feature matrix of all symbols, warm-up rows dropped.

    ``data_dir`` is the trainer's data directory (directory sources); ``dataset_dir`` the local
    copy of the request's uploaded dataset (dataset sources), its files under their names."""
    bars = load_data(job, data_dir, dataset_dir=dataset_dir, max_bars=max_bars)
    memberships = compute_memberships(job, compute_indicators(job, bars))
    frames = make_symbol_frames(job, bars, build_features(job, memberships))
    with job.step(6):
        return combine_symbols(frames)
