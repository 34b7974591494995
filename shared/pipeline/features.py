"""From fuzzy memberships to a scaled feature matrix, without looking ahead.

- A feature is one fuzzy membership on one timeframe: ``{set}:{member}`` (``rsi_14:oversold``);
  with several timeframes each name gets the timeframe as a suffix, ``rsi_14:oversold@4h``.
  ``resolve_features`` fixes which features exist and their order (KTRDR v3: ``nn_inputs``
  order, then timeframe, then membership; without ``nn_inputs``, every set on every timeframe,
  timeframe-major). That order is the model's input order and is stored in the artifact.
- Timeframes are aligned to the *base* (first) timeframe by bar close: a base row at open time t
  is known at t + base bar; a row of another timeframe that opened at T is usable there only
  when T + its bar <= t + base bar (its bar has closed). This is ``shift + forward fill`` done
  with one ``searchsorted``.
- Rows with a NaN feature (indicator warm-up) or without a label are dropped per symbol; symbols
  are then concatenated in request order (the model is symbol-agnostic).
- Splits are chronological per symbol (train, then validation, then test) with ``purge`` rows
  left out at each boundary so no training label peeks into the validation or test period.
- The scaler is fitted on the training rows only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from shared.jobs import DataProvenance
from shared.pipeline.labels import NO_LABEL, LabelReport
from shared.pipeline.market import DataError, timeframe_delta
from shared.spec import FuzzySetSpec, StrategySpec

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def indicator_input(name: str, frames: Mapping[str, pd.DataFrame]) -> pd.Series:
    """The series a fuzzy set reads: ``rsi_14`` (first output) or ``macd_12_26_9.histogram``."""
    indicator_id, _, output = name.partition(".")
    frame = frames[indicator_id]
    return frame[output] if output else frame.iloc[:, 0]


def feature_column(spec: FuzzySetSpec, timeframe: str, multi_timeframe: bool) -> str:
    name = f"{spec.group}:{spec.name}"
    return f"{name}@{timeframe}" if multi_timeframe else name


@dataclass(frozen=True)
class ResolvedFeature:
    """One model input: a membership function evaluated on one timeframe."""

    column: str
    timeframe: str
    fuzzy: FuzzySetSpec


def resolve_features(
    strategy: StrategySpec, timeframes: Sequence[str]
) -> tuple[ResolvedFeature, ...]:
    """The model's inputs in their canonical order (validated requests only)."""
    multi = len(timeframes) > 1
    pairs: list[tuple[str, FuzzySetSpec]] = []
    if strategy.nn_inputs:
        for nn in strategy.nn_inputs:
            members = [fs for fs in strategy.fuzzy_sets if fs.group == nn.fuzzy_set]
            pairs.extend((tf, fs) for tf in nn.timeframes or timeframes for fs in members)
    else:
        pairs.extend((tf, fs) for tf in timeframes for fs in strategy.fuzzy_sets)
    return tuple(ResolvedFeature(feature_column(fs, tf, multi), tf, fs) for tf, fs in pairs)


def align_to_base(
    frame: pd.DataFrame, timeframe: str, base_index: pd.DatetimeIndex, base_timeframe: str
) -> pd.DataFrame:
    """``frame`` (indexed by bar open time) as known at the close of each base bar."""
    if timeframe == base_timeframe and frame.index.equals(base_index):
        return frame
    closes = (frame.index + timeframe_delta(timeframe)).as_unit("ns").asi8
    known_at = (base_index + timeframe_delta(base_timeframe)).as_unit("ns").asi8
    pos = np.searchsorted(closes, known_at, side="right") - 1
    values = frame.to_numpy(dtype=np.float64)
    out = np.full((len(base_index), values.shape[1]), np.nan)
    usable = pos >= 0
    out[usable] = values[pos[usable]]
    return pd.DataFrame(out, index=base_index, columns=frame.columns)


def symbol_features(
    per_timeframe: Mapping[str, pd.DataFrame],
    timeframes: Sequence[str],
    order: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Membership frames of one symbol, aligned to the base timeframe, columns in ``order``."""
    base_tf = timeframes[0]
    base_index = per_timeframe[base_tf].index
    parts = [align_to_base(per_timeframe[tf], tf, base_index, base_tf) for tf in timeframes]
    joined = pd.concat(parts, axis=1)
    return joined if order is None else joined[list(order)]


@dataclass(frozen=True)
class SymbolFrame:
    """One symbol's features (base-timeframe index, NaN in warm-up) and labels (same rows)."""

    symbol: str
    features: pd.DataFrame
    labels: IntArray


@dataclass(frozen=True)
class Segment:
    """The rows ``[start, stop)`` of a dataset that belong to one symbol, oldest first."""

    symbol: str
    start: int
    stop: int
    first: pd.Timestamp
    last: pd.Timestamp


@dataclass(frozen=True)
class Dataset:
    features: FloatArray
    labels: IntArray
    feature_names: tuple[str, ...]
    segments: tuple[Segment, ...]
    provenance: DataProvenance | None = None
    """Where the bars came from (set by the load step)."""
    labelling: LabelReport | None = None
    """How the labels were made: the threshold used, calibrated or not (set by the labels
    step)."""
    times: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """Each row's base-timeframe bar open time, nanoseconds since the epoch (UTC)."""
    base_bars: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    """Each symbol's base-timeframe bars (set by the load step), for the model's backtest."""

    @property
    def samples(self) -> int:
        return len(self.labels)


def usable_rows(frame: SymbolFrame) -> npt.NDArray[np.bool_]:
    """Rows with every feature known and a label."""
    known: npt.NDArray[np.bool_] = frame.features.notna().all(axis=1).to_numpy(dtype=np.bool_)
    labelled: npt.NDArray[np.bool_] = frame.labels != NO_LABEL
    return known & labelled


def combine_symbols(frames: Sequence[SymbolFrame]) -> Dataset:
    """Drop unusable rows per symbol and concatenate the symbols in order."""
    names = tuple(str(c) for c in frames[0].features.columns)
    blocks: list[FloatArray] = []
    labels: list[IntArray] = []
    times: list[npt.NDArray[np.int64]] = []
    segments: list[Segment] = []
    offset = 0
    for frame in frames:
        if tuple(str(c) for c in frame.features.columns) != names:
            raise ValueError(f"{frame.symbol}: feature columns differ from the first symbol")
        keep = usable_rows(frame)
        count = int(keep.sum())
        if count == 0:
            raise DataError(
                frame.symbol,
                "",
                f"no usable rows: {len(frame.labels)} base bars are all in the indicator warm-up "
                "or the label lookahead; provide more bars",
            )
        blocks.append(frame.features.to_numpy(dtype=np.float64)[keep])
        labels.append(frame.labels[keep])
        index = frame.features.index[keep]
        times.append(np.asarray(index.asi8, dtype=np.int64))
        segments.append(Segment(frame.symbol, offset, offset + count, index[0], index[-1]))
        offset += count
    return Dataset(
        features=np.concatenate(blocks),
        labels=np.concatenate(labels),
        feature_names=names,
        segments=tuple(segments),
        times=np.concatenate(times),
    )


@dataclass(frozen=True)
class Scaler:
    """Standardisation fitted on training rows; constant features get std 1."""

    mean: FloatArray
    std: FloatArray

    @classmethod
    def fit(cls, features: FloatArray) -> Scaler:
        mean = features.mean(axis=0)
        std = features.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        return cls(mean=mean, std=std)

    def transform(self, features: npt.ArrayLike) -> npt.NDArray[np.float32]:
        scaled = (np.asarray(features, dtype=np.float64) - self.mean) / self.std
        return scaled.astype(np.float32)


@dataclass(frozen=True)
class Splits:
    x_train: npt.NDArray[np.float32]
    y_train: IntArray
    x_val: npt.NDArray[np.float32]
    y_val: IntArray
    x_test: npt.NDArray[np.float32]
    y_test: IntArray
    scaler: Scaler


def split_rows(
    dataset: Dataset, validation_split: float, test_split: float, purge: int
) -> tuple[IntArray, IntArray, IntArray]:
    """Row indices of train, validation and test: chronological per symbol, purged."""
    train: list[IntArray] = []
    val: list[IntArray] = []
    test: list[IntArray] = []
    for seg in dataset.segments:
        n = seg.stop - seg.start
        n_test = max(1, round(n * test_split))
        n_val = max(1, round(n * validation_split))
        n_train = n - n_val - n_test - 2 * purge
        if n_train < 1:
            raise DataError(
                seg.symbol,
                "",
                f"too few samples to split: {n} usable rows leave none for training after "
                f"{n_val} validation, {n_test} test and 2×{purge} purged rows",
            )
        val_start = seg.start + n_train + purge
        test_start = seg.stop - n_test
        train.append(np.arange(seg.start, seg.start + n_train))
        val.append(np.arange(val_start, val_start + n_val))
        test.append(np.arange(test_start, seg.stop))
    return np.concatenate(train), np.concatenate(val), np.concatenate(test)


def split_dataset(
    dataset: Dataset, validation_split: float, test_split: float, purge: int
) -> Splits:
    """Chronological, purged splits, scaled with a scaler fitted on the training rows."""
    train, val, test = split_rows(dataset, validation_split, test_split, purge)
    scaler = Scaler.fit(dataset.features[train])
    x, y = dataset.features, dataset.labels
    return Splits(
        x_train=scaler.transform(x[train]),
        y_train=y[train],
        x_val=scaler.transform(x[val]),
        y_val=y[val],
        x_test=scaler.transform(x[test]),
        y_test=y[test],
        scaler=scaler,
    )
