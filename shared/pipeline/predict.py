"""Signals from a trained model on new bars, with the pipeline's own code.

``predict(model_dir, bars)`` loads what ``trainwire models download`` writes (``model.safetensors``
and ``metadata.json`` beside it; the same metadata is in the safetensors header, which is read
when ``metadata.json`` is absent) and runs, as training did: indicators on every timeframe of the
model → fuzzy memberships (the features) → aligned to the base timeframe by bar close → the
training scaler → the MLP → softmax. The recipe is the metadata's ``reproduce`` section
(``shared.pipeline.packaging``), so a consumer without trainwire can do the same.

``bars``: OHLCV bars at the model's *finest* timeframe (``reproduce.bars.finest_timeframe``),
indexed by bar open time (a naive index is taken as UTC; columns in any case). Coarser
timeframes are resampled from them the way the model's training data was (whole bins aligned to
the epoch for the synthetic market, the market-file rule otherwise). Indicators start from the
first bar given, so give enough history before the bars you want signals for: the first rows are
warm-up and get no signal.

The answer has one row per base-timeframe bar with every feature known: ``time`` (bar open,
UTC), ``known_at`` (its close, when the signal can be acted on), ``signal`` (the argmax class)
and ``prob_<CLASS>`` for every class in the model's class order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from shared.artifacts.artifact import ARTIFACT_NAME, ArtifactError, LoadedModel, load_model
from shared.pipeline.features import align_to_base
from shared.pipeline.fuzzy import fuzzify
from shared.pipeline.indicators import compute_indicator
from shared.pipeline.market import (
    COLUMNS,
    DataError,
    read_market_file,
    resample_bars,
    resample_file_bars,
)
from shared.pipeline.timeframes import timeframe_delta
from shared.spec import DEFAULT_LIMITS, FuzzySetSpec, IndicatorSpec

__all__ = ["METADATA_NAME", "PredictionError", "load_predictor", "predict", "predict_file"]

METADATA_NAME = "metadata.json"


class PredictionError(ValueError):
    """Bars or a model directory a prediction cannot use; the message says what to change."""


class Predictor:
    """A model directory, loaded once, ready to turn bars into signals."""

    def __init__(self, model: LoadedModel, metadata: Mapping[str, Any]) -> None:
        recipe = metadata.get("reproduce")
        if not isinstance(recipe, dict):
            raise PredictionError(
                "this model's metadata has no 'reproduce' section (it was trained by an older "
                "trainwire): retrain it to predict from bars"
            )
        self.model = model
        self.metadata = metadata
        self.recipe = recipe
        self.timeframes: list[str] = list(recipe["bars"]["timeframes"])
        self.base_timeframe: str = recipe["bars"]["base_timeframe"]
        self.finest_timeframe: str = recipe["bars"]["finest_timeframe"]
        data = metadata.get("data")
        self.synthetic = isinstance(data, dict) and data.get("source") == "synthetic"
        names = [f["name"] for f in recipe["features"]]
        if tuple(names) != model.feature_names:
            raise PredictionError(
                "metadata.json does not describe these weights (its features differ from the "
                "artifact's): download the model again"
            )

    def signals(self, bars: pd.DataFrame) -> pd.DataFrame:
        """Signals per base bar (see the module docstring)."""
        finest = _normalise(bars)
        frames = {tf: self._resampled(finest, tf) for tf in self.timeframes}
        base_index = frames[self.base_timeframe].index
        columns: dict[str, np.ndarray] = {}
        for tf in self.timeframes:
            memberships = self._memberships(frames[tf], tf)
            if memberships.columns.size:
                aligned = align_to_base(memberships, tf, base_index, self.base_timeframe)
                columns.update({str(c): aligned[c].to_numpy() for c in aligned.columns})
        matrix = np.column_stack([columns[name] for name in self.model.feature_names])
        known = np.isfinite(matrix).all(axis=1)
        probabilities = (
            self.model.predict_proba(matrix[known])
            if known.any()
            else np.empty((0, len(self.model.classes)), dtype=np.float32)
        )
        times = base_index[known]
        out = pd.DataFrame(
            {
                "time": times,
                "known_at": times + timeframe_delta(self.base_timeframe),
                "signal": [self.model.classes[i] for i in probabilities.argmax(axis=1)],
            }
        )
        for j, name in enumerate(self.model.classes):
            out[f"prob_{name}"] = probabilities[:, j].astype(np.float64)
        return out

    def base_bars(self, bars: pd.DataFrame) -> pd.DataFrame:
        """``bars`` (at the finest timeframe) as the base-timeframe bars ``signals`` rows are."""
        return self._resampled(_normalise(bars), self.base_timeframe)

    def _resampled(self, bars: pd.DataFrame, timeframe: str) -> pd.DataFrame:
        if timeframe == self.finest_timeframe:
            return bars
        resample = resample_bars if self.synthetic else resample_file_bars
        return resample(bars, self.finest_timeframe, timeframe)

    def _memberships(self, bars: pd.DataFrame, timeframe: str) -> pd.DataFrame:
        outputs: dict[str, pd.DataFrame] = {}
        for ind in self.recipe["indicators"]:
            spec = IndicatorSpec(id=ind["id"], type=ind["type"], params=dict(ind["params"]))
            outputs[spec.id] = compute_indicator(spec, bars)
        columns = {}
        for feature in self.recipe["features"]:
            if feature["timeframe"] != timeframe:
                continue
            values = outputs[feature["indicator"]][feature["output"]].to_numpy()
            fuzzy = FuzzySetSpec(
                input=f"{feature['indicator']}.{feature['output']}",
                name=feature["name"],
                shape=feature["shape"],
                params=tuple(float(p) for p in feature["params"]),
            )
            columns[feature["name"]] = fuzzify(fuzzy, values)
        return pd.DataFrame(columns, index=bars.index)


def load_predictor(model_dir: Path) -> Predictor:
    """The model in ``model_dir`` (``model.safetensors``, and ``metadata.json`` when present);
    ``model_dir`` may also be the ``.safetensors`` file itself."""
    path = Path(model_dir)
    weights = path if path.is_file() else path / ARTIFACT_NAME
    if not weights.is_file():
        raise PredictionError(
            f"no {ARTIFACT_NAME} in {path}: download the model first "
            "(trainwire models download NAME --dest DIR)"
        )
    try:
        model = load_model(weights)
    except ArtifactError as exc:
        raise PredictionError(f"{weights}: {exc}") from exc
    metadata: Mapping[str, Any] = model.metadata
    beside = weights.parent / METADATA_NAME
    if beside.is_file():
        try:
            metadata = json.loads(beside.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PredictionError(f"{beside}: unreadable ({exc})") from exc
        if not isinstance(metadata, dict):
            raise PredictionError(f"{beside}: not a JSON object")
    return Predictor(model, metadata)


def predict(model_dir: Path, bars: pd.DataFrame) -> pd.DataFrame:
    """Signals of the model in ``model_dir`` on ``bars`` (the module docstring has both)."""
    return load_predictor(model_dir).signals(bars)


def predict_file(
    model_dir: Path,
    data_file: Path,
    *,
    timezone: str = "",
    max_bars: int = DEFAULT_LIMITS.max_bars,
) -> pd.DataFrame:
    """``predict`` on a CSV or Parquet file, read and cleaned as the trainer reads market files
    (naive timestamps taken in ``timezone``, UTC when empty). Bars finer than the model's finest
    timeframe are resampled to it first."""
    predictor = load_predictor(model_dir)
    path = Path(data_file)
    if not path.is_file():
        raise PredictionError(f"no such data file: {path}")
    try:
        read = read_market_file(path, timezone=timezone, max_bars=max_bars)
    except DataError as exc:
        raise PredictionError(f"{path.name}: {exc.problem}") from exc
    wanted = predictor.finest_timeframe
    bars = read.frame
    if read.timeframe != wanted:
        have, need = timeframe_delta(read.timeframe), timeframe_delta(wanted)
        if need % have != pd.Timedelta(0):
            raise PredictionError(
                f"{path.name} holds {read.timeframe} bars; this model needs {wanted} bars "
                f"(or a finer timeframe that divides {wanted})"
            )
        bars = resample_file_bars(bars, read.timeframe, wanted)
    return predictor.signals(bars)


def _normalise(bars: pd.DataFrame) -> pd.DataFrame:
    """OHLCV float64 columns on a sorted UTC index; ``PredictionError`` saying what is wrong."""
    if not isinstance(bars, pd.DataFrame):
        raise PredictionError(f"bars must be a pandas DataFrame, not {type(bars).__name__}")
    if not isinstance(bars.index, pd.DatetimeIndex):
        raise PredictionError("bars must be indexed by bar open time (a DatetimeIndex)")
    frame = bars.rename(columns={c: str(c).strip().lower() for c in bars.columns})
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise PredictionError(f"bars lack column(s) {', '.join(missing)}")
    index = frame.index
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    if not index.is_monotonic_increasing or index.has_duplicates:
        raise PredictionError("bars must be in time order without repeated timestamps")
    try:
        values = frame[list(COLUMNS)].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PredictionError(f"bars hold non-numeric OHLCV values: {exc}") from exc
    return pd.DataFrame(values, index=index.rename("timestamp"), columns=list(COLUMNS))
