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
from shared.device import DeviceInfo
from shared.pipeline.evaluate import Evaluation
from shared.pipeline.features import Dataset, Splits
from shared.pipeline.labels import CLASSES
from shared.pipeline.training import TrainingResult
from shared.spec import TrainingRequest


def versions() -> dict[str, str]:
    return {
        "trainwire": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


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
) -> dict[str, Any]:
    """The JSON-able metadata document of an artifact (``format_version`` is added on write)."""
    strategy = request.strategy
    return {
        "strategy": strategy,
        "strategy_name": strategy.name,
        "symbols": list(request.symbols),
        "timeframes": list(request.timeframes),
        "base_timeframe": request.timeframes[0],
        "feature_names": list(dataset.feature_names),
        "scaler": {"mean": splits.scaler.mean, "std": splits.scaler.std},
        "classes": list(CLASSES),
        "labels": strategy.labels,
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
