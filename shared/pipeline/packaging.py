"""What goes into the artifact's metadata, gathered in one place.

Keys (all JSON): ``format_version`` (added on write), ``strategy`` (the full spec),
``strategy_name``, ``symbols``, ``timeframes``, ``base_timeframe``, ``feature_names``,
``scaler`` {``mean``, ``std``}, ``classes`` (``["SELL", "HOLD", "BUY"]``), ``labels`` (method,
threshold, lookahead), ``model`` (type, input_dim, n_classes, hidden_layers, activation, dropout),
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
from shared.pipeline.evaluate import Evaluation
from shared.pipeline.features import Dataset, Splits
from shared.pipeline.labels import CLASSES, LabelReport
from shared.pipeline.training import TrainingResult
from shared.spec import TrainingRequest


def versions() -> dict[str, str]:
    return {
        "trainwire": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
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
    return document
