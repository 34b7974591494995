"""Turns pipeline milestones into ``ProgressUpdate``s: weighted, monotonic, throttled.

- Twelve weighted steps; the overall percentage is the weight of the finished steps
  plus the current step's weight times its fraction, clamped so it never goes back.
- STEP and EPOCH updates are always emitted. DETAIL updates (pre-training symbol / timeframe /
  indicator / fuzzy set) are coalesced to at most one per ``detail_interval``; the first DETAIL
  of each step always goes out.
- BATCH updates use an adaptive stride: the first goes out after ``initial_stride`` batches;
  at each one the time since the previous BATCH update (or since training began) is compared
  with ``target_interval`` (300 ms). Within half to 1.5 times of it the stride stays; outside,
  it is set to the number of batches that would have taken ``target_interval`` at the pace just
  measured (at most 64 times larger in one go), so the cadence settles after one update rather
  than after a series of doublings. Only batch updates count: an EPOCH or STEP update in
  between does not restart the interval, or short epochs would keep shrinking the measured
  interval and growing the stride until batch updates stopped altogether. The countdown runs
  on across epochs, so when an epoch is shorter than the interval, batch updates still come
  about every 300 ms, at whatever batch of whichever epoch falls due. The training loop asks
  ``batch_due()`` (one integer decrement) before it computes any batch metric, so batches that
  are not reported cost nothing. The last batch of an epoch is not forced out: the EPOCH
  update that follows it carries ``batch == total_batches``.
- Positions during training: a BATCH update's ``epoch`` is the epoch in progress (1-based) and
  ``batch`` the batches finished in it; an EPOCH update's ``epoch`` is the epoch just finished,
  with ``batch == total_batches``. ``step_percentage`` is the training step's progress,
  ``((epoch - 1) * total_batches + batch) / (total_epochs * total_batches)``, which is also the
  fraction of the epochs done (a run that stops early jumps to 100 when the step finishes);
  ``percentage`` is the whole job's.
- ETA (``eta_seconds``): during training, the training step's time left: seconds per batch
  so far (validation included) x batches left, so a client can show it on the step and, scaled
  by the share of those batches in the current epoch, on the epoch; the short steps after
  training are not counted until training ends. Before and after training, the job's time left:
  elapsed time scaled by the remaining weight. None until there is something to extrapolate
  from.

The clock is injectable so tests drive the throttling with a fake one.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from shared.progress.update import (
    ItemCounter,
    PreprocessContext,
    ProgressSink,
    ProgressUpdate,
    UpdateKind,
)
from shared.results import OptimizerProgress

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Step:
    name: str
    weight: float


TRAINING_STEPS: tuple[Step, ...] = (
    Step("Loading market data", 3),
    Step("Computing indicators", 5),
    Step("Computing fuzzy memberships", 3),
    Step("Building features", 2),
    Step("Generating labels", 2),
    Step("Combining symbols", 1),
    Step("Splitting data", 1),
    Step("Creating model", 1),
    Step("Training model", 75),
    Step("Evaluating model", 3),
    Step("Computing feature importance", 2),
    Step("Packaging artifact", 2),
)
"""The pipeline's steps, 1-based in updates; weights sum to 100."""


class TrainingStep(enum.IntEnum):
    """The 1-based index of each of ``TRAINING_STEPS``, by name."""

    LOAD_DATA = 1
    INDICATORS = 2
    FUZZY = 3
    FEATURES = 4
    LABELS = 5
    COMBINE = 6
    SPLIT = 7
    CREATE_MODEL = 8
    TRAIN = 9
    EVALUATE = 10
    IMPORTANCE = 11
    PACKAGE = 12


assert len(TrainingStep) == len(TRAINING_STEPS)

_MAX_STRIDE = 1 << 20
_MAX_GROWTH = 64
_MIN_ETA_PERCENT = 0.5


def render_context(context: PreprocessContext) -> str:
    """``Processing AAPL (2/5) [1h] - Computing RSI (15/40)``; missing parts are left out."""
    parts: list[str] = []
    if context.symbol:
        symbol = f"Processing {context.symbol}"
        if context.symbol_total:
            symbol += f" ({context.symbol_index}/{context.symbol_total})"
        parts.append(symbol)
    if context.timeframe:
        parts.append(f"[{context.timeframe}]")
    head = " ".join(parts)
    if context.detail:
        detail = context.detail
        if context.detail_total:
            detail += f" ({context.detail_index}/{context.detail_total})"
        head = f"{head} - {detail}" if head else detail
    return head


def render_batch(epoch: int, total_epochs: int, batch: int, total_batches: int) -> str:
    return f"Epoch {epoch}/{total_epochs} · Batch {batch}/{total_batches}"


def render_epoch(epoch: int, total_epochs: int, metrics: Mapping[str, float]) -> str:
    parts = [f"Epoch {epoch}/{total_epochs}"]
    for key, fmt in (
        ("loss", ".4f"),
        ("accuracy", ".3f"),
        ("val_loss", ".4f"),
        ("val_accuracy", ".3f"),
    ):
        if key in metrics:
            parts.append(f"{key} {metrics[key]:{fmt}}")
    return " · ".join(parts)


class ProgressTracker:
    """Reports one pipeline run to ``sink``; used from the training thread only."""

    def __init__(
        self,
        sink: ProgressSink,
        steps: Sequence[Step] = TRAINING_STEPS,
        *,
        clock: Callable[[], float] = time.monotonic,
        initial_stride: int = 10,
        target_interval: float = 0.3,
        detail_interval: float = 0.05,
    ) -> None:
        if not steps:
            raise ValueError("a tracker needs at least one step")
        self._sink = sink
        self._steps = tuple(steps)
        self._clock = clock
        self._target = target_interval
        self._detail_interval = detail_interval
        total = sum(s.weight for s in self._steps)
        self._offsets: list[float] = []
        acc = 0.0
        for step in self._steps:
            self._offsets.append(100.0 * acc / total)
            acc += step.weight
        self._shares = [100.0 * s.weight / total for s in self._steps]
        self._index = 0
        self._fraction = 0.0
        self._percentage = 0.0
        self._started = clock()
        self._step_started = self._started
        self._last_detail: float | None = None
        self._stride = max(1, initial_stride)
        self._countdown = self._stride
        self._last_batch = self._started
        self._batches_done = 0
        self._batches_total = 0

    # -- state ---------------------------------------------------------------------------------

    @property
    def percentage(self) -> float:
        return self._percentage

    @property
    def stride(self) -> int:
        """The current batch stride (for tests and benchmarks)."""
        return self._stride

    @property
    def step_index(self) -> int:
        return self._index

    @property
    def step_total(self) -> int:
        return len(self._steps)

    # -- steps ---------------------------------------------------------------------------------

    def start_step(self, index: int, message: str = "") -> None:
        """Enter step ``index`` (1-based, moving forward only) and emit a STEP update."""
        if not self._index < index <= len(self._steps):
            raise ValueError(f"cannot start step {index} after step {self._index}")
        self._index = index
        self._fraction = 0.0
        self._step_started = self._clock()
        self._last_detail = None
        self._batches_total = self._batches_done = 0
        name = self._steps[index - 1].name
        _LOGGER.info("step %d/%d: %s", index, len(self._steps), name)
        self._emit(UpdateKind.STEP, message or name)

    def finish_step(self, message: str = "") -> None:
        """Complete the current step (its whole weight) and emit a STEP update."""
        self._require_step()
        self._fraction = 1.0
        self._emit(UpdateKind.STEP, message or f"{self._steps[self._index - 1].name}: done")

    def detail(
        self,
        fraction: float,
        *,
        context: PreprocessContext | None = None,
        items: ItemCounter | None = None,
        message: str = "",
        stage: str = "",
    ) -> None:
        """Progress inside a step (pre-training symbols and indicators, a backtest's candles:
        ``items`` counts them, ``stage`` names the backtest stage); coalesced to one per
        ``detail_interval``."""
        self._require_step()
        self._fraction = max(self._fraction, min(1.0, max(0.0, fraction)))
        now = self._clock()
        if self._last_detail is not None and now - self._last_detail < self._detail_interval:
            return
        self._last_detail = now
        text = message or (render_context(context) if context else "")
        self._emit(
            UpdateKind.DETAIL,
            text or self._steps[self._index - 1].name,
            context=context,
            items=items,
            stage=stage,
        )

    def trial(self, fraction: float, optimizer: OptimizerProgress, message: str) -> None:
        """An optimization trial finished: a TRIAL update (never dropped) with where the search
        is, ``fraction`` being the current step's progress."""
        self._require_step()
        self._fraction = max(self._fraction, min(1.0, max(0.0, fraction)))
        self._emit(UpdateKind.TRIAL, message, optimizer=optimizer)

    def warning(self, message: str, *, counts: Mapping[str, float] | None = None) -> None:
        """Emit a WARNING update (never dropped), e.g. ``12 gaps in EURUSD 1h``; ``counts``
        go in its metrics (``{"gaps": 12}``) so clients need not parse the message."""
        self._require_step()
        _LOGGER.warning("%s", message)
        self._emit(UpdateKind.WARNING, message, metrics=counts)

    # -- training ------------------------------------------------------------------------------

    def begin_training(self, total_epochs: int, total_batches: int) -> None:
        """Tell the tracker how many batches the training step will run (for fraction and ETA)."""
        self._require_step()
        self._batches_total = max(1, total_epochs * total_batches)
        self._batches_done = 0
        self._step_started = self._last_batch = self._clock()
        self._countdown = self._stride

    def batch_due(self) -> bool:
        """Count one batch; True when this batch should be reported with ``batch(...)``."""
        self._countdown -= 1
        return self._countdown <= 0

    def batch(
        self,
        *,
        epoch: int,
        total_epochs: int,
        batch: int,
        total_batches: int,
        metrics: Mapping[str, float],
    ) -> None:
        """Emit a BATCH update (call it when ``batch_due()`` said so) and adapt the stride."""
        now = self._clock()
        interval = now - self._last_batch
        self._last_batch = now
        old = self._stride
        if not 0.5 * self._target <= interval <= 1.5 * self._target:
            # As many batches as took the target interval at this pace (a clock that did not
            # move counts as 64 times too fast).
            pace = old * self._target / max(interval, self._target / _MAX_GROWTH)
            self._stride = max(1, min(_MAX_STRIDE, round(pace)))
        if self._stride != old:
            _LOGGER.debug("batch updates %.3fs apart: stride %d -> %d", interval, old, self._stride)
        self._countdown = self._stride
        self._set_training_position(epoch, batch, total_batches)
        self._emit(
            UpdateKind.BATCH,
            render_batch(epoch, total_epochs, batch, total_batches),
            epoch=epoch,
            total_epochs=total_epochs,
            batch=batch,
            total_batches=total_batches,
            metrics=metrics,
            now=now,
        )

    def epoch(
        self, *, epoch: int, total_epochs: int, total_batches: int, metrics: Mapping[str, float]
    ) -> None:
        """Emit an EPOCH update (never dropped)."""
        self._set_training_position(epoch, total_batches, total_batches)
        self._emit(
            UpdateKind.EPOCH,
            render_epoch(epoch, total_epochs, metrics),
            epoch=epoch,
            total_epochs=total_epochs,
            batch=total_batches,
            total_batches=total_batches,
            metrics=metrics,
        )

    # -- internals -----------------------------------------------------------------------------

    def _require_step(self) -> None:
        if self._index == 0:
            raise RuntimeError("no step started: call start_step(index) first")

    def _set_training_position(self, epoch: int, batch: int, total_batches: int) -> None:
        self._batches_done = (epoch - 1) * total_batches + batch
        if self._batches_total:
            self._fraction = max(self._fraction, min(1.0, self._batches_done / self._batches_total))

    def _eta(self, now: float) -> float | None:
        if self._batches_total and 0 < self._batches_done < self._batches_total:
            spent = now - self._step_started
            return max(0.0, spent * (self._batches_total - self._batches_done) / self._batches_done)
        if self._percentage < _MIN_ETA_PERCENT:
            return None
        elapsed = now - self._started
        return max(0.0, elapsed * (100.0 - self._percentage) / self._percentage)

    def _emit(
        self,
        kind: UpdateKind,
        message: str,
        *,
        context: PreprocessContext | None = None,
        items: ItemCounter | None = None,
        epoch: int = 0,
        total_epochs: int = 0,
        batch: int = 0,
        total_batches: int = 0,
        metrics: Mapping[str, float] | None = None,
        now: float | None = None,
        stage: str = "",
        optimizer: OptimizerProgress | None = None,
    ) -> None:
        now = self._clock() if now is None else now
        i = self._index - 1
        overall = self._offsets[i] + self._shares[i] * self._fraction
        self._percentage = max(self._percentage, min(100.0, overall))
        if kind is UpdateKind.STEP and self._index == len(self._steps) and self._fraction == 1.0:
            self._percentage = 100.0
        self._sink(
            ProgressUpdate(
                kind=kind,
                percentage=self._percentage,
                message=message,
                step_index=self._index,
                step_total=len(self._steps),
                step_name=self._steps[i].name,
                step_percentage=100.0 * self._fraction,
                epoch=epoch,
                total_epochs=total_epochs,
                batch=batch,
                total_batches=total_batches,
                items=items,
                context=context,
                metrics=dict(metrics or {}),
                eta_seconds=self._eta(now),
                stage=stage,
                optimizer=optimizer,
            )
        )
