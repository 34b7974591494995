"""What goes into the artifact's metadata, gathered in one place.

Keys (all JSON): ``format_version`` (added on write), ``strategy`` (the full spec),
``strategy_name``, ``symbols``, ``timeframes``, ``base_timeframe``, ``feature_names``,
``scaler`` {``mean``, ``std``}, ``classes`` (``["SELL", "HOLD", "BUY"]``), ``labels`` (method,
threshold *used*, lookahead, auto_threshold; with the labels step's report also
requested_threshold, calibrated, suggested_threshold, target_share, training_rows),
``model`` (type, input_dim, n_classes, hidden_layers, activation, dropout),
``train_metrics``, ``history`` (per epoch), ``stopped_early``, ``test_metrics``,
``confusion_matrix`` (rows true, columns predicted), ``test_support``, ``feature_importance``,
``seed``, ``samples`` {total, train, validation, test}, ``data`` (the data spec),
``data_range`` {start, end, symbols: {SYM: {start, end, samples}}}, ``device`` {kind, name,
torch_device}, ``versions`` {trainwire, torch, numpy, python}.

``assessment``: the test split beside always predicting the training split's majority class
(``shared.jobs.ModelAssessment``: accuracy, macro_f1, class_support, baseline_class,
baseline_accuracy, lift_points, beats_baseline, verdict). ``provenance``: where the bars came
from (``shared.jobs.DataProvenance``: source, location, timezone, series [{symbol, timeframe,
file, start, end, rows, resampled_from}]), when the load step recorded it.

``reproduce``: how to turn bars into this model's signal without trainwire
(``reproduce_section``; ``docs/reproduce_prediction.md`` follows it with numpy + safetensors):

- ``steps``: the chain in one line; ``bars``: columns, the bar-open UTC index, ``timeframes``,
  ``base_timeframe``, ``finest_timeframe``, the resampling rule, how much history to give;
- ``smoothing``: SMA, EMA (alpha 2/(n+1), seeded with the mean of the first n valid values) and
  Wilder (alpha 1/n, the same seed);
- ``indicators``: [{id, type (canonical), params (every one resolved, defaults filled in),
  outputs {name: definition}}] — ``percent_b``, ``distance``, ``histogram_pct``, ``relative``
  and the rest stated as formulas;
- ``features``: [{name, timeframe, indicator, output, shape, params}] in the model's input
  order; ``feature_naming``, ``alignment`` (on bar close), ``membership`` (the formulas of the
  triangular, trapezoidal and gaussian shapes, shoulders included), ``warmup``;
- ``scaler``: (x - mean) / std in float64, then float32;
- ``network``: ``layers`` [{weight, bias (safetensors tensor names), in, out, activation}] in
  order (none after the last: logits), ``linear`` (y = x @ weight.T + bias), the activation's
  formula, ``dropout`` (none at inference);
- ``output``: class order, softmax, argmax (first class on ties), when the signal is known.

The document is deterministic for a given request, data and device (no wall-clock times), so
retraining the same request on the same machine gives a byte-identical artifact.
"""

from __future__ import annotations

import platform
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from shared import __version__
from shared.artifacts.artifact import to_jsonable
from shared.device import DeviceInfo
from shared.jobs import ModelAssessment
from shared.pipeline import fuzzy, indicators
from shared.pipeline.evaluate import Evaluation
from shared.pipeline.features import Dataset, Splits, resolve_features
from shared.pipeline.labels import CLASSES, LabelReport
from shared.pipeline.model import ACTIVATION_DEFINITIONS, layer_layout
from shared.pipeline.timeframes import finest_timeframe
from shared.pipeline.training import TrainingResult
from shared.results import BacktestSummary
from shared.spec import TrainingRequest


def versions() -> dict[str, str]:
    return {
        "trainwire": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def reproduce_section(request: TrainingRequest, architecture: Mapping[str, Any]) -> dict[str, Any]:
    """Everything needed to recompute a prediction from bars without trainwire (``reproduce``)."""
    strategy = request.strategy
    timeframes = list(request.timeframes)
    by_id = {ind.id: ind for ind in strategy.indicators}
    features = []
    for feature in resolve_features(strategy, request.timeframes):
        indicator_id, _, output = feature.fuzzy.input.partition(".")
        kind = indicators.canonical_type(by_id[indicator_id].type)
        features.append(
            {
                "name": feature.column,
                "timeframe": feature.timeframe,
                "indicator": indicator_id,
                "output": output or indicators.INDICATOR_OUTPUTS[kind][0],
                "shape": feature.fuzzy.shape,
                "params": [float(p) for p in feature.fuzzy.params],
            }
        )
    activation = str(architecture["activation"])
    return {
        "steps": (
            "bars -> indicators per timeframe -> fuzzy memberships (the features) -> aligned to "
            "the base timeframe -> scaled -> MLP -> softmax; the signal is the argmax class"
        ),
        "bars": {
            "columns": ["open", "high", "low", "close", "volume"],
            "index": "bar open time, UTC; a bar covers [open time, open time + timeframe)",
            "timeframes": timeframes,
            "base_timeframe": timeframes[0],
            "finest_timeframe": finest_timeframe(request.timeframes),
            "resampling": (
                "a coarser timeframe's bar aggregates the finer bars of [T, T + timeframe), T a "
                "whole multiple of the timeframe since 1970-01-01 UTC: open first, high max, "
                "low min, close last, volume sum; incomplete bins are dropped"
            ),
            "history": (
                "indicators run over the bars given, oldest first, so the first rows of any "
                "series are warm-up (NaN); give at least as much history as the longest warm-up"
            ),
        },
        "smoothing": dict(indicators.SMOOTHING_RULES),
        "indicators": [indicators.describe_indicator(ind) for ind in strategy.indicators],
        "features": features,
        "feature_naming": (
            "{fuzzy set}:{membership}, the fuzzy set being the membership's set_id or else its "
            "input (rsi_14:oversold, macd_12_26_9.histogram_pct:positive); with more than one "
            "timeframe, @{timeframe} is appended (rsi_14:oversold@4h). The model's input order "
            "is feature_names (= the features list here)"
        ),
        "alignment": (
            "a feature of timeframe tf at the base bar opening at t is the membership of the "
            "last tf bar that has closed by the base bar's close: the latest tf bar with "
            "open + tf <= t + base timeframe (NaN before the first such bar); the base "
            "timeframe's own features are those of the same bar"
        ),
        "membership": dict(fuzzy.DEFINITIONS),
        "warmup": "a base bar with any NaN feature gets no signal",
        "scaler": (
            "x_scaled = (x - scaler.mean) / scaler.std per feature, in float64, then cast to "
            "float32 (std is 1 where the training feature was constant)"
        ),
        "network": {
            "layers": layer_layout(architecture),
            "linear": "y = x @ weight.T + bias (weight has shape [out, in]), float32",
            "activation": ACTIVATION_DEFINITIONS[activation],
            "dropout": "none at inference (dropout only acts while training)",
        },
        "output": {
            "classes": list(CLASSES),
            "probabilities": "softmax of the last layer's outputs, in the order of classes",
            "signal": "classes[argmax(probabilities)] (the first class on a tie)",
            "known_at": "the close of the base bar: its open time + the base timeframe",
        },
    }


def _labels(request: TrainingRequest, report: LabelReport | None) -> dict[str, Any]:
    """The label spec with the threshold the labels were made with, and how it was chosen."""
    spec = request.strategy.labels
    out: dict[str, Any] = {
        "method": spec.method.value,
        "threshold": spec.threshold,
        "lookahead": spec.lookahead,
        "auto_threshold": spec.auto_threshold,
    }
    if report is not None:
        out.update(
            threshold=report.threshold,
            requested_threshold=report.requested_threshold,
            calibrated=report.calibrated,
            suggested_threshold=report.suggested_threshold,
            target_share=report.target_share,
            training_rows=report.training_rows,
        )
    return out


def build_metadata(
    *,
    request: TrainingRequest,
    dataset: Dataset,
    splits: Splits,
    architecture: Mapping[str, Any],
    training: TrainingResult,
    evaluation: Evaluation,
    feature_importance: Mapping[str, float],
    device: DeviceInfo,
    assessment: ModelAssessment | None = None,
    labelling: LabelReport | None = None,
    backtest: BacktestSummary | None = None,
) -> dict[str, Any]:
    """The JSON-able metadata document of an artifact (``format_version`` is added on write)."""
    strategy = request.strategy
    document: dict[str, Any] = {
        "strategy": strategy,
        "strategy_name": strategy.name,
        "symbols": list(request.symbols),
        "timeframes": list(request.timeframes),
        "base_timeframe": request.timeframes[0],
        "feature_names": list(dataset.feature_names),
        "scaler": {"mean": splits.scaler.mean, "std": splits.scaler.std},
        "classes": list(CLASSES),
        "labels": _labels(request, labelling),
        "model": dict(architecture),
        "train_metrics": training.final_metrics(),
        "history": list(training.history),
        "stopped_early": training.stopped_early,
        "test_metrics": evaluation.metrics(CLASSES),
        "confusion_matrix": evaluation.confusion,
        "test_support": evaluation.support,
        "feature_importance": dict(feature_importance),
        "reproduce": reproduce_section(request, architecture),
        "seed": strategy.training.seed,
        "samples": {
            "total": dataset.samples,
            "train": len(splits.y_train),
            "validation": len(splits.y_val),
            "test": len(splits.y_test),
        },
        "data": request.data,
        "data_range": {
            "start": min(seg.first for seg in dataset.segments),
            "end": max(seg.last for seg in dataset.segments),
            "symbols": {
                seg.symbol: {"start": seg.first, "end": seg.last, "samples": seg.stop - seg.start}
                for seg in dataset.segments
            },
        },
        "device": {"kind": device.kind, "name": device.name, "torch_device": device.torch_device},
        "versions": versions(),
    }
    if assessment is not None:
        document["assessment"] = to_jsonable(assessment)
    if dataset.provenance is not None:
        document["provenance"] = to_jsonable(dataset.provenance)
    if backtest is not None:
        document["backtest"] = {
            "what": "the model's test-split signals (BUY long, SELL short, HOLD flat), filled "
            "at the next bar's open, beside buy-and-hold over the same bars",
            "symbol": backtest.symbol,
            "timeframe": backtest.timeframe,
            "candles": backtest.candles,
            "trades": backtest.trades_total,
            "settings": dict(backtest.settings),
            "stats": dict(backtest.stats),
        }
    return document
