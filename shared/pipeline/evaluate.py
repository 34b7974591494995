"""Test-set evaluation and permutation feature importance.

Metrics: accuracy, per-class precision / recall / F1 (0 where undefined, e.g. a class never
predicted), macro F1, and the confusion matrix (rows = true class, columns = predicted).

The assessment (``assess``) puts a model beside the simplest rule that needs no model: always
predict the most frequent class of the *training* split. Its accuracy on the test split is that
class's share there; the model's lift is ``accuracy - baseline_accuracy`` in percentage points,
and it beats the baseline only when the lift is positive. The verdict says so in words, and
adds the test split's own majority class when that constant would have scored better than both
(the class mix shifted between the periods).

Permutation importance: for each feature, shuffle that column of the test set once (a
permutation drawn from a generator seeded with ``seed`` and the feature's position) and record
the drop in accuracy; positive means the model relies on the feature. It is an iterator so the
pipeline can report progress and check cancellation between features.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from shared.jobs import ModelAssessment

_CHUNK = 65_536


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    f1: tuple[float, ...]
    support: tuple[int, ...]
    confusion: tuple[tuple[int, ...], ...]

    @property
    def macro_f1(self) -> float:
        return float(np.mean(self.f1)) if self.f1 else 0.0

    def metrics(self, classes: Sequence[str]) -> dict[str, float]:
        """Per-class precision/recall/F1/support, accuracy, macro F1, and the confusion matrix.

        Keys: ``accuracy``, ``precision_<C>``, ``recall_<C>``, ``f1_<C>``, ``support_<C>``,
        ``macro_f1``, ``confusion_<TRUE>_<PREDICTED>`` (counts). A flat map, so the terminal
        event's ``test_metrics`` carries all of it, as the artifact does.
        """
        out = {"accuracy": self.accuracy}
        for i, name in enumerate(classes):
            out[f"precision_{name}"] = self.precision[i]
            out[f"recall_{name}"] = self.recall[i]
            out[f"f1_{name}"] = self.f1[i]
            out[f"support_{name}"] = float(self.support[i])
        out["macro_f1"] = self.macro_f1
        for i, true in enumerate(classes):
            for j, predicted in enumerate(classes):
                out[f"confusion_{true}_{predicted}"] = float(self.confusion[i][j])
        return out


def majority_class(labels: npt.ArrayLike, n_classes: int) -> int:
    """The most frequent class index (the lowest index among equals)."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n_classes)
    return int(np.argmax(counts))


def assess(
    evaluation: Evaluation, y_train: npt.ArrayLike, classes: Sequence[str]
) -> ModelAssessment:
    """The test-split result beside always predicting the training split's majority class."""
    baseline = majority_class(y_train, len(classes))
    tested = sum(evaluation.support)
    baseline_accuracy = evaluation.support[baseline] / tested if tested else 0.0
    lift = 100.0 * (evaluation.accuracy - baseline_accuracy)
    beats = lift > 0.0
    name = classes[baseline]
    scores = f"{evaluation.accuracy:.3f} vs {baseline_accuracy:.3f}"
    if beats:
        verdict = f"beats always predicting {name} by {lift:.1f} points ({scores})"
    else:
        verdict = f"does not beat always predicting {name} ({scores})"
    hindsight = int(np.argmax(evaluation.support))
    hindsight_accuracy = evaluation.support[hindsight] / tested if tested else 0.0
    if hindsight != baseline and hindsight_accuracy > max(evaluation.accuracy, baseline_accuracy):
        verdict += (
            f"; the test split's own majority, {classes[hindsight]}, would score "
            f"{hindsight_accuracy:.3f}"
        )
    return ModelAssessment(
        accuracy=evaluation.accuracy,
        macro_f1=evaluation.macro_f1,
        class_support={c: int(n) for c, n in zip(classes, evaluation.support, strict=True)},
        baseline_class=name,
        baseline_accuracy=baseline_accuracy,
        lift_points=lift,
        beats_baseline=beats,
        verdict=verdict,
    )


def predict_classes(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Class indices for ``x`` (eval mode, no grad, chunked)."""
    was_training = model.training
    model.eval()
    parts: list[torch.Tensor] = []
    with torch.no_grad():
        for start in range(0, len(x), _CHUNK):
            parts.append(model(x[start : start + _CHUNK]).argmax(dim=1))
    model.train(was_training)
    if not parts:
        return torch.empty(0, dtype=torch.int64, device=x.device)
    return torch.cat(parts)


def classification_report(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, n_classes: int
) -> Evaluation:
    truth = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (truth, pred), 1)
    tp = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0).astype(np.float64)
    actual = confusion.sum(axis=1).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    total = int(confusion.sum())
    return Evaluation(
        accuracy=float(tp.sum() / total) if total else 0.0,
        precision=tuple(float(v) for v in precision),
        recall=tuple(float(v) for v in recall),
        f1=tuple(float(v) for v in f1),
        support=tuple(int(v) for v in actual),
        confusion=tuple(tuple(int(v) for v in row) for row in confusion),
    )


def evaluate_model(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_classes: int
) -> Evaluation:
    predicted = predict_classes(model, x)
    return classification_report(y.cpu().numpy(), predicted.cpu().numpy(), n_classes)


def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict_classes(model, x) == y).float().mean().item()) if len(y) else 0.0


def iter_permutation_importance(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, seed: int
) -> Iterator[tuple[int, float]]:
    """Yield ``(feature index, accuracy drop)`` for every feature, one permutation each."""
    baseline = _accuracy(model, x, y)
    shuffled = x.clone()
    for j in range(x.shape[1]):
        generator = torch.Generator().manual_seed((seed * 1_000_003 + j) % (1 << 63))
        perm = torch.randperm(len(y), generator=generator).to(x.device)
        shuffled[:, j] = x[perm, j]
        yield j, baseline - _accuracy(model, shuffled, y)
        shuffled[:, j] = x[:, j]
