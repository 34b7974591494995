"""The MLP, the training loop (determinism, reporting, early stopping) and evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shared.cancellation import CancellationToken, CancelledError
from shared.pipeline.evaluate import (
    classification_report,
    evaluate_model,
    iter_permutation_importance,
)
from shared.pipeline.model import SeededDropout, build_model
from shared.pipeline.training import TrainingData, evaluate_loss, train_model
from shared.spec import ModelSpec, TrainingSpec


class Reporter:
    """Counts what the loop reports; due every ``every`` batches."""

    def __init__(self, every: int = 3) -> None:
        self.every = every
        self.asked = 0
        self.batches: list[tuple[int, int, dict[str, float]]] = []
        self.epochs: list[tuple[int, dict[str, float]]] = []
        self.on_batch: object = None

    def begin_training(self, total_epochs: int, total_batches: int) -> None:
        self.total = (total_epochs, total_batches)

    def batch_due(self) -> bool:
        self.asked += 1
        return self.asked % self.every == 0

    def batch(
        self,
        *,
        epoch: int,
        total_epochs: int,
        batch: int,
        total_batches: int,
        metrics: dict[str, float],
    ) -> None:
        self.batches.append((epoch, batch, metrics))
        if callable(self.on_batch):
            self.on_batch()

    def epoch(
        self, *, epoch: int, total_epochs: int, total_batches: int, metrics: dict[str, float]
    ) -> None:
        self.epochs.append((epoch, metrics))


def _data(n: int = 400, features: int = 6, seed: int = 0, noise: bool = False) -> TrainingData:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = rng.integers(0, 3, n) if noise else np.digitize(x[:, 0] + 0.5 * x[:, 1], [-0.5, 0.5])
    split = int(n * 0.75)
    y = y.astype(np.int64)
    return TrainingData(x[:split], y[:split], x[split:], y[split:])


def _model(seed: int = 1, dropout: float = 0.2) -> torch.nn.Sequential:
    spec = ModelSpec(hidden_layers=(16, 8), activation="relu", dropout=dropout)
    return build_model(6, 3, spec, generator=torch.Generator().manual_seed(seed))


def test_model_shape_and_keys() -> None:
    model = _model()
    assert model(torch.zeros(4, 6)).shape == (4, 3)
    assert list(model.state_dict()) == [
        "0.weight",
        "0.bias",
        "3.weight",
        "3.bias",
        "6.weight",
        "6.bias",
    ]
    assert sum(isinstance(m, SeededDropout) for m in model) == 2
    for activation in ("tanh", "gelu", "leaky_relu", "sigmoid"):
        build_model(3, 2, ModelSpec(hidden_layers=(4,), activation=activation))
    with pytest.raises(ValueError):
        build_model(3, 2, ModelSpec(activation="swish"))


def test_seeded_init_is_deterministic() -> None:
    a, b, c = _model(1), _model(1), _model(2)
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())
    assert not torch.equal(a.state_dict()["0.weight"], c.state_dict()["0.weight"])


def test_training_learns_and_reports() -> None:
    model, reporter = _model(), Reporter(every=3)
    spec = TrainingSpec(epochs=8, batch_size=32, learning_rate=0.01)
    result = train_model(model, _data(), spec, reporter=reporter, cancel=CancellationToken())
    assert result.epochs_run == 8 and not result.stopped_early
    assert reporter.total == (8, 10)  # 300 rows / 32 -> 10 batches
    assert [e for e, _ in reporter.epochs] == list(range(1, 9))
    assert len(reporter.batches) == 80 // 3  # only due batches are reported
    assert set(reporter.batches[0][2]) == {"loss", "accuracy", "learning_rate"}
    metrics = result.final_metrics()
    assert set(metrics) >= {
        "loss",
        "accuracy",
        "val_loss",
        "val_accuracy",
        "learning_rate",
        "epochs_run",
    }
    assert metrics["val_accuracy"] > 0.7  # an easy, learnable target
    assert result.history[-1].loss < result.history[0].loss
    assert not model.training


def test_same_seed_gives_bit_identical_weights() -> None:
    spec = TrainingSpec(epochs=3, batch_size=16, seed=5)
    states = []
    for _ in range(2):
        model = _model(seed=5)
        train_model(model, _data(), spec, reporter=Reporter(), cancel=CancellationToken())
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    other = _model(seed=5)
    train_model(
        other,
        _data(),
        TrainingSpec(epochs=3, batch_size=16, seed=6),
        reporter=Reporter(),
        cancel=CancellationToken(),
    )
    assert not torch.equal(other.state_dict()["0.weight"], states[0]["0.weight"])


def test_cancel_stops_at_the_next_batch() -> None:
    token, reporter = CancellationToken(), Reporter(every=1)
    reporter.on_batch = lambda: token.cancel("user clicked cancel")
    with pytest.raises(CancelledError, match="user clicked cancel"):
        train_model(
            _model(),
            _data(),
            TrainingSpec(epochs=5, batch_size=32),
            reporter=reporter,
            cancel=token,
        )
    assert len(reporter.batches) == 1 and reporter.epochs == []


def test_early_stopping_restores_the_best_weights() -> None:
    model = _model(dropout=0.0)
    data = _data(n=200, noise=True)  # nothing to learn: validation loss soon rises
    spec = TrainingSpec(epochs=200, batch_size=16, learning_rate=0.01, early_stopping_patience=3)
    result = train_model(model, data, spec, reporter=Reporter(), cancel=CancellationToken())
    assert result.stopped_early and result.epochs_run < 200
    losses = [e.val_loss for e in result.history]
    assert result.kept_epoch == int(np.argmin(losses)) + 1
    assert result.epochs_run == result.kept_epoch + 3
    val_loss, _ = evaluate_loss(model, torch.from_numpy(data.x_val), torch.from_numpy(data.y_val))
    assert val_loss == pytest.approx(losses[result.kept_epoch - 1], rel=1e-5)
    assert result.final_metrics()["val_loss"] == losses[result.kept_epoch - 1]


def test_the_best_epoch_is_kept_when_the_run_ends_without_stopping() -> None:
    """Patience longer than the run: no early stop, but the model still holds the weights of
    its best validation epoch, not the last (overfitted) one."""
    model = _model(dropout=0.0)
    data = _data(n=200, noise=True)
    spec = TrainingSpec(epochs=25, batch_size=16, learning_rate=0.01, early_stopping_patience=50)
    result = train_model(model, data, spec, reporter=Reporter(), cancel=CancellationToken())
    assert not result.stopped_early and result.epochs_run == 25
    losses = [e.val_loss for e in result.history]
    assert result.kept_epoch == int(np.argmin(losses)) + 1 < 25
    val_loss, _ = evaluate_loss(model, torch.from_numpy(data.x_val), torch.from_numpy(data.y_val))
    assert val_loss == pytest.approx(losses[result.kept_epoch - 1], rel=1e-5)
    assert val_loss < losses[-1]
    metrics = result.final_metrics()
    assert metrics["best_epoch"] == result.kept_epoch and metrics["epochs_run"] == 25


def test_without_patience_the_last_epoch_is_kept() -> None:
    model = _model(dropout=0.0)
    data = _data(n=200, noise=True)
    spec = TrainingSpec(epochs=12, batch_size=16, learning_rate=0.01, early_stopping_patience=0)
    result = train_model(model, data, spec, reporter=Reporter(), cancel=CancellationToken())
    assert result.kept_epoch == result.epochs_run == 12 and not result.stopped_early
    val_loss, _ = evaluate_loss(model, torch.from_numpy(data.x_val), torch.from_numpy(data.y_val))
    assert val_loss == pytest.approx(result.history[-1].val_loss, rel=1e-5)


def test_classification_report_by_hand() -> None:
    # truth 0 0 1 1 2 2, predicted 0 1 1 1 2 0
    report = classification_report([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], 3)
    assert report.confusion == ((1, 1, 0), (0, 2, 0), (1, 0, 1))
    assert report.accuracy == pytest.approx(4 / 6)
    assert report.precision == pytest.approx((0.5, 2 / 3, 1.0))
    assert report.recall == pytest.approx((0.5, 1.0, 0.5))
    assert report.f1 == pytest.approx((0.5, 0.8, 2 / 3))
    metrics = report.metrics(("SELL", "HOLD", "BUY"))
    assert metrics["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    classes = ("SELL", "HOLD", "BUY")
    assert set(metrics) == {"accuracy", "macro_f1"} | {
        f"{m}_{c}" for m in ("precision", "recall", "f1", "support") for c in classes
    } | {f"confusion_{t}_{p}" for t in classes for p in classes}
    assert metrics["confusion_BUY_SELL"] == 1.0  # one true BUY predicted SELL
    assert metrics["confusion_HOLD_HOLD"] == 2.0
    assert metrics["support_SELL"] == 2.0
    never = classification_report([0, 1], [0, 0], 3)
    assert never.precision[2] == 0.0 and never.f1[1] == 0.0


def test_permutation_importance_finds_the_informative_feature() -> None:
    model = _model(dropout=0.0)
    data = _data(n=800)
    train_model(
        model,
        data,
        TrainingSpec(epochs=15, batch_size=32, learning_rate=0.01),
        reporter=Reporter(),
        cancel=CancellationToken(),
    )
    x, y = torch.from_numpy(data.x_val), torch.from_numpy(data.y_val)
    scores = dict(iter_permutation_importance(model, x, y, seed=3))
    assert scores == dict(iter_permutation_importance(model, x, y, seed=3))  # deterministic
    assert max(scores, key=lambda j: scores[j]) == 0
    assert scores[0] > 0.2 and abs(scores[5]) < 0.1
    assert evaluate_model(model, x, y, 3).accuracy > 0.7


def test_concurrent_jobs_do_not_disturb_each_other() -> None:
    """No global RNG: two jobs training at once in threads match a job trained alone."""
    import threading

    spec = TrainingSpec(epochs=2, batch_size=16, seed=9)

    def train() -> dict[str, torch.Tensor]:
        model = _model(seed=9)
        train_model(model, _data(), spec, reporter=Reporter(), cancel=CancellationToken())
        return model.state_dict()

    alone = train()
    results: list[dict[str, torch.Tensor]] = []
    threads = [threading.Thread(target=lambda: results.append(train())) for _ in range(2)]
    for thread in threads:
        thread.start()
    torch.rand(1000)  # the global RNG moving meanwhile changes nothing
    for thread in threads:
        thread.join()
    assert len(results) == 2
    for state in results:
        assert all(torch.equal(alone[k], state[k]) for k in alone)
