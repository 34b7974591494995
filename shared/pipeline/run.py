"""``run_training``: the one entry point every trainer calls.

It validates the request, runs the twelve steps of ``shared.progress.tracker.TRAINING_STEPS``
(1-6 in ``shared.pipeline.preprocess``, 7-12 here) with progress, checks cancellation between
steps, between pre-training items and at every batch, and writes ``work_dir/model.safetensors``
atomically as its very last action: a cancelled or failed run leaves no artifact behind (an
artifact from an earlier run in the same folder is not touched).

Errors: ``SpecError`` (the request, including a requested device this machine lacks),
``DataError`` (the data), ``CancelledError`` (the token); anything else is a bug.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from shared.artifacts.artifact import ARTIFACT_NAME, ArtifactInfo, write_artifact
from shared.cancellation import CancellationToken
from shared.device import DeviceInfo, select_device
from shared.jobs import DataProvenance, ModelAssessment
from shared.pipeline.evaluate import (
    Evaluation,
    assess,
    evaluate_model,
    iter_permutation_importance,
    predict_classes,
)
from shared.pipeline.features import Dataset, Splits, split_dataset, split_rows
from shared.pipeline.job import JobContext, TrainingJob
from shared.pipeline.labels import CLASSES, LabelReport, label_balance_problem
from shared.pipeline.market import DataError
from shared.pipeline.model import architecture, build_model
from shared.pipeline.model_backtest import test_split_backtest
from shared.pipeline.packaging import build_metadata
from shared.pipeline.preprocess import prepare_dataset
from shared.pipeline.training import TrainingData, TrainingResult, train_model
from shared.pipeline.validation import validate_request
from shared.progress.tracker import ProgressTracker, TrainingStep
from shared.progress.update import ItemCounter, ProgressSink
from shared.results import BacktestSummary
from shared.spec import DEFAULT_LIMITS, JobLimits, SpecError, TrainingRequest

__all__ = ["TrainingOutcome", "run_training", "validate_request"]

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingOutcome:
    artifact_path: Path
    sha256: str
    size_bytes: int
    device: str
    """The torch device that trained: ``cpu``, ``cuda:0``, ``mps``."""
    train_metrics: Mapping[str, float]
    """Of the kept epoch: loss, accuracy, val_loss, val_accuracy, learning_rate, epochs_run,
    best_epoch."""
    test_metrics: Mapping[str, float]
    """accuracy, precision_/recall_/f1_<CLASS>, macro_f1."""
    feature_importance: Mapping[str, float]
    """Feature name → test accuracy lost when that feature is permuted."""
    feature_names: tuple[str, ...]
    samples: int
    """Usable rows across all symbols (train + validation + test + purged)."""
    data: DataProvenance | None = None
    """Where the bars came from."""
    assessment: ModelAssessment | None = None
    """Test-split quality beside the majority-class baseline."""
    backtest: BacktestSummary | None = None
    """The model's signals on the test split, backtested, beside buy-and-hold."""


def _choose_device(request: TrainingRequest, override: str) -> DeviceInfo:
    """The trainer's override, else the request's, else the best device here.

    A device the request asked for and this machine lacks is the request's problem
    (``SpecError`` on ``placement.device``); a bad trainer override stays a ``ValueError``.
    """
    wanted = override or request.placement.device
    try:
        return select_device(wanted)
    except ValueError as exc:
        if wanted.strip() and wanted == request.placement.device:
            raise SpecError("placement.device", str(exc)) from exc
        raise


def _create_model(job: TrainingJob, dataset: Dataset, device: DeviceInfo) -> nn.Sequential:
    """Step 8."""
    strategy = job.request.strategy
    n_features = len(dataset.feature_names)
    with job.step(TrainingStep.CREATE_MODEL):
        generator = torch.Generator().manual_seed(strategy.training.seed)
        model = build_model(n_features, len(CLASSES), strategy.model, generator=generator)
        layers = "→".join(str(n) for n in (n_features, *strategy.model.hidden_layers, len(CLASSES)))
        job.tracker.detail(1.0, message=f"MLP {layers} on {device.torch_device} ({device.name})")
    return model


def _label_report(request: TrainingRequest, dataset: Dataset) -> LabelReport | None:
    """What the labels step decided (``Dataset.labelling``, set by ``prepare_dataset``)."""
    if dataset.labelling is None and request.strategy.labels.auto_threshold:
        raise RuntimeError("the labels step reported no calibrated threshold")
    return dataset.labelling


def _check_classes(request: TrainingRequest, splits: Splits, report: LabelReport | None) -> None:
    """``DataError`` when a class is (nearly) absent from a split: a model trained on it would
    score well by predicting the one class there is. The message gives the class counts of
    every split and a threshold that gives usable classes on this data."""
    problem = label_balance_problem(
        {"train": splits.y_train, "validation": splits.y_val, "test": splits.y_test}
    )
    if problem is None:
        return
    spec = request.strategy.labels
    used = report.threshold if report is not None else spec.threshold
    made = f"{spec.method.value} labels at threshold {used:g} over {spec.lookahead} bars"
    suggested = report.suggested_threshold if report is not None else None
    if report is not None and report.calibrated:
        advice = (
            "the calibrated threshold still leaves a class short: train on more bars, or raise "
            "strategy.training.validation_split / test_split"
        )
    elif suggested is not None and report is not None:
        advice = (
            f"threshold {suggested:g} would label about {report.target_share:.0%} of the "
            f"{report.training_rows:,} training rows BUY or SELL on this data: set "
            "strategy.labels.threshold to it, or set strategy.labels.auto_threshold "
            "(threshold: auto in a strategy file) to calibrate it from the training rows"
        )
    else:
        advice = (
            "set strategy.labels.auto_threshold (threshold: auto in a strategy file) to "
            "calibrate the threshold from the training rows"
        )
    symbol = request.symbols[0] if len(request.symbols) == 1 else ""
    raise DataError(symbol, request.timeframes[0], f"unusable labels: {made}; {problem}; {advice}")


def _assessment_message(assessment: ModelAssessment) -> str:
    """``Test accuracy 0.672, macro F1 0.581 (SELL 40, HOLD 61, BUY 52): beats ...``."""
    support = ", ".join(f"{c} {n}" for c, n in assessment.class_support.items())
    return (
        f"Test accuracy {assessment.accuracy:.3f}, macro F1 {assessment.macro_f1:.3f} "
        f"({support}): {assessment.verdict}"
    )


def _feature_importance(
    job: TrainingJob, model: nn.Module, x: torch.Tensor, y: torch.Tensor, names: tuple[str, ...]
) -> dict[str, float]:
    """Step 11."""
    importance: dict[str, float] = {}
    with job.step(TrainingStep.IMPORTANCE):
        seed = job.request.strategy.training.seed
        for j, drop in iter_permutation_importance(model, x, y, seed=seed):
            job.cancel.raise_if_cancelled()
            job.tracker.detail(
                (j + 1) / len(names),
                message=f"Permuting {names[j]}",
                items=ItemCounter(name="features", current=j + 1, total=len(names)),
            )
            importance[names[j]] = drop
    return importance


def _backtest(
    job: TrainingJob, dataset: Dataset, model: nn.Module, x_test: torch.Tensor
) -> BacktestSummary | None:
    """The model's test-split signals backtested beside buy-and-hold (first symbol)."""
    spec = job.request.strategy.training
    purge = job.request.strategy.labels.lookahead
    _, _, test_rows = split_rows(dataset, spec.validation_split, spec.test_split, purge)
    predicted = predict_classes(model, x_test).cpu().numpy().astype(np.int64)
    return test_split_backtest(
        dataset,
        test_rows,
        predicted,
        timeframe=job.request.timeframes[0],
        model_name=job.request.strategy.name,
        cancel=job.cancel,
    )


def _trading(summary: BacktestSummary) -> str:
    """``return 4.2 % vs buy & hold 6.3 % on GOOG 1d (41 trades): below holding``."""
    ours = summary.stats.get("Return [%]", float("nan"))
    hold = summary.stats.get("Buy & Hold Return [%]", float("nan"))
    verdict = "beats holding" if ours > hold else "below holding"
    if ours != ours or hold != hold:
        verdict = "no comparison"
    return (
        f"return {ours:.2f} % vs buy & hold {hold:.2f} % on {summary.symbol} "
        f"{summary.timeframe} ({summary.trades_total} trades): {verdict}"
    )


def _package(
    job: TrainingJob,
    work_dir: Path,
    model: nn.Module,
    parts: tuple[Dataset, Splits, TrainingResult, Evaluation, dict[str, float]],
    device: DeviceInfo,
    assessment: ModelAssessment,
    backtest: BacktestSummary | None = None,
) -> ArtifactInfo:
    """Step 12: the artifact, written atomically after a last cancellation check."""
    dataset, splits, result, evaluation, importance = parts
    strategy = job.request.strategy
    with job.step(TrainingStep.PACKAGE):
        metadata = build_metadata(
            request=job.request,
            dataset=dataset,
            splits=splits,
            architecture=architecture(len(dataset.feature_names), len(CLASSES), strategy.model),
            training=result,
            evaluation=evaluation,
            feature_importance=importance,
            device=device,
            assessment=assessment,
            labelling=_label_report(job.request, dataset),
            backtest=backtest,
        )
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        job.cancel.raise_if_cancelled()
        info = write_artifact(Path(work_dir) / ARTIFACT_NAME, state, metadata)
    return info


def run_training(
    request: TrainingRequest,
    *,
    work_dir: Path,
    progress: ProgressSink,
    cancel: CancellationToken,
    data_dir: Path | None = None,
    dataset_dir: Path | None = None,
    device: str = "",
    limits: JobLimits | None = DEFAULT_LIMITS,
) -> TrainingOutcome:
    """Train ``request`` and write its artifact to ``work_dir/model.safetensors``.

    ``device`` is the trainer's own override; when empty, ``request.placement.device`` or the
    best device here (CUDA > MPS > CPU) is used. ``limits`` bounds the job's size: the model's
    parameters and the synthetic bars before it starts (``SpecError``), the bars read from a
    data directory as they load (``DataError``); None bounds nothing.
    """
    validate_request(request, limits=limits)
    device_info = _choose_device(request, device)
    torch_device = device_info.as_torch()
    job = JobContext(request, ProgressTracker(progress), cancel)
    spec = request.strategy.training
    _LOGGER.info(
        "training %s on %s %s, device %s",
        request.strategy.name,
        ",".join(request.symbols),
        ",".join(request.timeframes),
        device_info.torch_device,
    )

    max_bars = limits.max_bars if limits is not None else sys.maxsize
    dataset = prepare_dataset(job, data_dir, dataset_dir=dataset_dir, max_bars=max_bars)
    labelling = _label_report(request, dataset)
    with job.step(TrainingStep.SPLIT):
        purge = request.strategy.labels.lookahead
        splits = split_dataset(dataset, spec.validation_split, spec.test_split, purge=purge)
        _check_classes(request, splits, labelling)
    model = _create_model(job, dataset, device_info)
    with job.step(TrainingStep.TRAIN):
        data = TrainingData(splits.x_train, splits.y_train, splits.x_val, splits.y_val)
        result = train_model(
            model, data, spec, reporter=job.tracker, cancel=cancel, device=torch_device
        )
    x_test = torch.as_tensor(splits.x_test, device=torch_device)
    y_test = torch.as_tensor(splits.y_test, device=torch_device)
    with job.step(TrainingStep.EVALUATE):
        evaluation = evaluate_model(model, x_test, y_test, len(CLASSES))
        assessment = assess(evaluation, splits.y_train, CLASSES)
        job.tracker.detail(0.5, message=_assessment_message(assessment))
        backtest = _backtest(job, dataset, model, x_test)
        if backtest is not None:
            job.tracker.detail(1.0, message=f"Backtest of the test split: {_trading(backtest)}")
    importance = _feature_importance(job, model, x_test, y_test, dataset.feature_names)
    parts = (dataset, splits, result, evaluation, importance)
    info = _package(job, work_dir, model, parts, device_info, assessment, backtest)

    test_metrics = evaluation.metrics(CLASSES)
    _LOGGER.info(
        "trained %s: %d samples, %d epochs, %s, artifact %s (%d bytes)",
        request.strategy.name,
        dataset.samples,
        result.epochs_run,
        _assessment_message(assessment),
        info.path,
        info.size_bytes,
    )
    return TrainingOutcome(
        artifact_path=info.path,
        sha256=info.sha256,
        size_bytes=info.size_bytes,
        device=device_info.torch_device,
        train_metrics=result.final_metrics(),
        test_metrics=test_metrics,
        feature_importance=importance,
        feature_names=dataset.feature_names,
        samples=dataset.samples,
        data=dataset.provenance,
        assessment=assessment,
        backtest=backtest,
    )
