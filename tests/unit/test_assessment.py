"""Every result beside its baseline: always predicting the training split's majority class."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import shared.pipeline.run as run_module
from shared.artifacts.artifact import load_artifact, to_jsonable
from shared.artifacts.metadata import assessment_from_json, check_metadata, provenance_from_json
from shared.cancellation import CancellationToken
from shared.jobs import DataProvenance, SeriesProvenance
from shared.pipeline.evaluate import assess, classification_report, majority_class
from shared.pipeline.features import Dataset
from shared.pipeline.labels import BUY, CLASSES, HOLD, SELL
from shared.pipeline.preprocess import prepare_dataset
from shared.pipeline.run import run_training
from shared.progress.update import ProgressUpdate
from shared.spec import DataSpec, TrainingRequest, TrainingSpec, default_strategy

# Test split: 2 SELL, 5 HOLD, 3 BUY; the model gets 7 of 10 right.
_TRUTH = [SELL, SELL, HOLD, HOLD, HOLD, HOLD, HOLD, BUY, BUY, BUY]
_PREDICTED = [SELL, HOLD, HOLD, HOLD, HOLD, HOLD, SELL, BUY, BUY, HOLD]


def test_a_model_that_beats_the_majority_class_says_by_how_much() -> None:
    evaluation = classification_report(_TRUTH, _PREDICTED, 3)
    result = assess(evaluation, [HOLD, HOLD, HOLD, BUY, SELL], CLASSES)

    assert result.accuracy == pytest.approx(0.7)
    assert result.macro_f1 == pytest.approx(evaluation.macro_f1)
    assert dict(result.class_support) == {"SELL": 2, "HOLD": 5, "BUY": 3}
    assert result.baseline_class == "HOLD"
    assert result.baseline_accuracy == pytest.approx(0.5)
    assert result.lift_points == pytest.approx(20.0)
    assert result.beats_baseline is True
    assert result.verdict == "beats always predicting HOLD by 20.0 points (0.700 vs 0.500)"


def test_the_baseline_is_the_training_majority_scored_on_the_test_split() -> None:
    """Training mostly BUY: the baseline predicts BUY, which is right 3 times in 10 here."""
    evaluation = classification_report(_TRUTH, [HOLD] * 4 + [BUY] * 6, 3)
    result = assess(evaluation, [BUY, BUY, BUY, HOLD, SELL], CLASSES)

    assert result.baseline_class == "BUY"
    assert result.baseline_accuracy == pytest.approx(0.3)
    assert result.accuracy == pytest.approx(0.5)
    assert result.beats_baseline and result.lift_points == pytest.approx(20.0)
    assert result.verdict == "beats always predicting BUY by 20.0 points (0.500 vs 0.300)"


def test_a_model_below_its_baseline_says_it_does_not_beat_it() -> None:
    evaluation = classification_report(_TRUTH, [SELL] * 10, 3)
    result = assess(evaluation, [HOLD, HOLD, SELL], CLASSES)

    assert result.beats_baseline is False
    assert result.lift_points == pytest.approx(-30.0)
    assert result.verdict == "does not beat always predicting HOLD (0.200 vs 0.500)"


def test_equal_lift_is_not_beating() -> None:
    evaluation = classification_report(_TRUTH, [HOLD] * 10, 3)
    result = assess(evaluation, [HOLD], CLASSES)
    assert result.lift_points == 0.0 and not result.beats_baseline
    assert result.verdict.startswith("does not beat always predicting HOLD (0.500 vs 0.500)")


def test_a_shifted_class_mix_names_the_better_constant() -> None:
    """Beating the training majority is not much when the test period's majority scores more."""
    evaluation = classification_report(_TRUTH, [SELL] * 7 + [BUY, SELL, SELL], 3)
    result = assess(evaluation, [SELL, SELL, HOLD], CLASSES)

    assert result.baseline_class == "SELL" and result.beats_baseline
    assert result.verdict == (
        "beats always predicting SELL by 10.0 points (0.300 vs 0.200); "
        "the test split's own majority, HOLD, would score 0.500"
    )


def test_majority_ties_go_to_the_first_class() -> None:
    assert majority_class([BUY, SELL, BUY, SELL], 3) == SELL
    assert majority_class([BUY], 3) == BUY


def _request() -> TrainingRequest:
    strategy = dataclasses.replace(
        default_strategy(), training=TrainingSpec(epochs=2, batch_size=64, seed=5)
    )
    return TrainingRequest(
        symbols=("SYNTH",), timeframes=("1h",), strategy=strategy, data=DataSpec(bars=1200)
    )


def test_a_run_reports_its_assessment_in_the_outcome_metadata_and_events(tmp_path: Path) -> None:
    updates: list[ProgressUpdate] = []
    outcome = run_training(
        _request(), work_dir=tmp_path, progress=updates.append, cancel=CancellationToken()
    )
    result = outcome.assessment
    assert result is not None

    test = outcome.test_metrics
    support = {c: int(test[f"support_{c}"]) for c in CLASSES}
    assert dict(result.class_support) == support
    assert result.accuracy == test["accuracy"] and result.macro_f1 == test["macro_f1"]
    assert result.baseline_accuracy == pytest.approx(
        support[result.baseline_class] / sum(support.values())
    )
    assert result.lift_points == pytest.approx(100 * (result.accuracy - result.baseline_accuracy))
    assert result.beats_baseline == (result.lift_points > 0)
    assert result.verdict.startswith("beats" if result.beats_baseline else "does not beat")

    _, metadata = load_artifact(outcome.artifact_path)
    assert assessment_from_json(metadata["assessment"]) == result
    assert check_metadata(metadata).assessment == result
    assert metadata["assessment"] == to_jsonable(result)

    evaluating = [u.message for u in updates if u.step_index == 10]
    assert any(result.verdict in m and "macro F1" in m for m in evaluating), evaluating


def test_the_baseline_class_is_the_training_majority_of_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, object] = {}
    real_assess = assess

    def spy(evaluation, y_train, classes):  # type: ignore[no-untyped-def]
        seen["train"] = list(y_train)
        return real_assess(evaluation, y_train, classes)

    monkeypatch.setattr(run_module, "assess", spy)
    outcome = run_training(
        _request(), work_dir=tmp_path, progress=lambda u: None, cancel=CancellationToken()
    )
    train = seen["train"]
    assert isinstance(train, list)
    counts = {c: train.count(i) for i, c in enumerate(CLASSES)}
    assert outcome.assessment is not None
    assert outcome.assessment.baseline_class == max(counts, key=lambda c: counts[c])
    assert sum(counts.values()) == load_artifact(outcome.artifact_path)[1]["samples"]["train"]


def test_the_metadata_names_where_the_bars_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    provenance = DataProvenance(
        source="directory",
        location="fx",
        timezone="UTC",
        series=(
            SeriesProvenance(
                symbol="SYNTH", timeframe="1h", file="SYNTH_1h.csv", start=1.0, end=2.0, rows=3
            ),
        ),
    )
    real = prepare_dataset

    def with_provenance(*args, **kwargs) -> Dataset:  # type: ignore[no-untyped-def]
        return dataclasses.replace(real(*args, **kwargs), provenance=provenance)

    monkeypatch.setattr(run_module, "prepare_dataset", with_provenance)
    outcome = run_training(
        _request(), work_dir=tmp_path, progress=lambda u: None, cancel=CancellationToken()
    )
    _, metadata = load_artifact(outcome.artifact_path)
    assert provenance_from_json(metadata["provenance"]) == provenance == outcome.data
