"""The training loop: Adam, cross-entropy, shuffled mini-batches, validation, early stopping.

Per batch the loop does what a bare PyTorch loop does plus a cancellation check (so a cancel
stops the job at the next batch), keeping the batch's detached logits, and one integer
decrement (``reporter.batch_due()``). Losses and logits stay on the device and are reduced once
per epoch, so no batch forces a device sync unless it is reported; the reported ones (the
tracker spaces them about 300 ms apart) read their loss and accuracy then.

Early stopping (``early_stopping_patience`` > 0): after each epoch whose validation loss is the
lowest so far the weights are copied; ``patience`` epochs without a new lowest stop the run.
Either way, stopped early or not, the model ends holding its best epoch's weights, and
``TrainingResult.kept_epoch`` says which epoch that was. With patience 0 the last epoch's
weights are kept.

Determinism: shuffling uses a CPU ``torch.Generator`` seeded from ``spec.seed`` and dropout a
generator on the training device seeded from ``spec.seed + 1``; no global RNG is touched, so the
same data and spec give bit-identical weights on a CPU, run after run.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from shared.cancellation import CancellationToken
from shared.pipeline.model import attach_generator
from shared.spec import TrainingSpec

_LOGGER = logging.getLogger(__name__)
_EVAL_CHUNK = 65_536


class TrainingReporter(Protocol):
    """What the loop reports to (``ProgressTracker`` implements it)."""

    def begin_training(self, total_epochs: int, total_batches: int) -> None: ...

    def batch_due(self) -> bool: ...

    def batch(
        self,
        *,
        epoch: int,
        total_epochs: int,
        batch: int,
        total_batches: int,
        metrics: dict[str, float],
    ) -> None: ...

    def epoch(
        self, *, epoch: int, total_epochs: int, total_batches: int, metrics: dict[str, float]
    ) -> None: ...


@dataclass(frozen=True)
class TrainingData:
    x_train: npt.NDArray[np.float32]
    y_train: npt.NDArray[np.int64]
    x_val: npt.NDArray[np.float32]
    y_val: npt.NDArray[np.int64]


@dataclass(frozen=True)
class EpochMetrics:
    epoch: int
    loss: float
    accuracy: float
    val_loss: float
    val_accuracy: float
    learning_rate: float

    def as_dict(self) -> dict[str, float]:
        return {
            "loss": self.loss,
            "accuracy": self.accuracy,
            "val_loss": self.val_loss,
            "val_accuracy": self.val_accuracy,
            "learning_rate": self.learning_rate,
        }


@dataclass(frozen=True)
class TrainingResult:
    history: tuple[EpochMetrics, ...]
    kept_epoch: int
    """The epoch whose weights the model holds: the best one when early stopping is on."""
    stopped_early: bool

    @property
    def epochs_run(self) -> int:
        return len(self.history)

    def final_metrics(self) -> dict[str, float]:
        """Metrics of the kept epoch, plus ``epochs_run`` and ``best_epoch``."""
        kept = self.history[self.kept_epoch - 1]
        return {
            **kept.as_dict(),
            "epochs_run": float(self.epochs_run),
            "best_epoch": float(self.kept_epoch),
        }


def evaluate_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` (in eval mode) on ``x``/``y``."""
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.int64)
    with torch.no_grad():
        for start in range(0, len(y), _EVAL_CHUNK):
            logits = model(x[start : start + _EVAL_CHUNK])
            target = y[start : start + _EVAL_CHUNK]
            total_loss += F.cross_entropy(logits, target, reduction="sum")
            correct += (logits.argmax(dim=1) == target).sum()
    model.train(was_training)
    n = max(1, len(y))
    return float(total_loss.item()) / n, float(correct.item()) / n


def train_model(
    model: nn.Module,
    data: TrainingData,
    spec: TrainingSpec,
    *,
    reporter: TrainingReporter,
    cancel: CancellationToken,
    device: torch.device | None = None,
) -> TrainingResult:
    """Train ``model`` in place on ``device``; returns the history and which epoch was kept."""
    device = device or torch.device("cpu")
    model.to(device)
    shuffle_gen = torch.Generator().manual_seed(spec.seed)
    attach_generator(model, torch.Generator(device=device).manual_seed(spec.seed + 1))
    x = torch.as_tensor(data.x_train, device=device)
    y = torch.as_tensor(data.y_train, device=device)
    x_val = torch.as_tensor(data.x_val, device=device)
    y_val = torch.as_tensor(data.y_val, device=device)
    n = len(data.y_train)
    if n == 0 or len(data.y_val) == 0:
        raise ValueError("training and validation sets must not be empty")
    batch_size = min(spec.batch_size, n)
    n_batches = math.ceil(n / batch_size)
    sizes = torch.full((n_batches,), float(batch_size), device=device)
    sizes[-1] = float(n - batch_size * (n_batches - 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=spec.learning_rate)
    learning_rate = float(optimizer.param_groups[0]["lr"])
    patience = spec.early_stopping_patience
    history: list[EpochMetrics] = []
    best_loss = math.inf
    best_state: dict[str, torch.Tensor] | None = None
    kept_epoch, waited, stopped_early = 0, 0, False

    reporter.begin_training(spec.epochs, n_batches)
    # Bound once: the per-batch path is a bare loop's plus the calls below.
    raise_if_cancelled, batch_due = cancel.raise_if_cancelled, reporter.batch_due
    zero_grad, step = optimizer.zero_grad, optimizer.step
    model.train()
    for epoch in range(1, spec.epochs + 1):
        perm = torch.randperm(n, generator=shuffle_gen).to(device)
        losses: list[torch.Tensor] = []
        outputs: list[torch.Tensor] = []
        keep_loss, keep_output = losses.append, outputs.append
        for b in range(n_batches):
            raise_if_cancelled()
            idx = perm[b * batch_size : (b + 1) * batch_size]
            xb, yb = x[idx], y[idx]
            zero_grad(set_to_none=True)
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            loss.backward()  # type: ignore[no-untyped-call, unused-ignore]
            step()
            keep_loss(loss.detach())
            keep_output(logits.detach())
            if batch_due():
                batch_correct = (logits.detach().argmax(dim=1) == yb).sum()
                metrics = {
                    "loss": float(loss.item()),
                    "accuracy": int(batch_correct.item()) / len(yb),
                    "learning_rate": learning_rate,
                }
                reporter.batch(
                    epoch=epoch,
                    total_epochs=spec.epochs,
                    batch=b + 1,
                    total_batches=n_batches,
                    metrics=metrics,
                )
        # The epoch's loss and accuracy: reduced on the device, read once each.
        epoch_loss = float(((torch.stack(losses) * sizes).sum() / n).item())
        correct = (torch.cat(outputs).argmax(dim=1) == y[perm]).sum()
        epoch_acc = int(correct.item()) / n
        val_loss, val_acc = evaluate_loss(model, x_val, y_val)
        record = EpochMetrics(epoch, epoch_loss, epoch_acc, val_loss, val_acc, learning_rate)
        history.append(record)
        cancel.raise_if_cancelled()
        reporter.epoch(
            epoch=epoch,
            total_epochs=spec.epochs,
            total_batches=n_batches,
            metrics=record.as_dict(),
        )
        if epoch % 10 == 0:
            _LOGGER.info(
                "epoch %d/%d: loss %.4f val_loss %.4f", epoch, spec.epochs, epoch_loss, val_loss
            )
        if patience <= 0:
            kept_epoch = epoch
            continue
        if val_loss < best_loss:
            best_loss, kept_epoch, waited = val_loss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
            if waited >= patience:
                stopped_early = True
                _LOGGER.info("early stopping after epoch %d (best %d)", epoch, kept_epoch)
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    kept_epoch = kept_epoch or len(history)
    attach_generator(model, None)
    model.eval()
    return TrainingResult(tuple(history), kept_epoch, stopped_early)
