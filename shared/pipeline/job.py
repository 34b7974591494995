"""What every step of a run shares: the request, the progress tracker, the cancellation token.

``JobContext.step(i)`` checks cancellation, emits the step's start, runs the body and emits its
end (not on an exception); ``JobContext.items(...)`` counts pre-training items for DETAIL
updates and checks cancellation before each one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from shared.cancellation import CancellationToken
from shared.progress.tracker import ProgressTracker
from shared.progress.update import ItemCounter, PreprocessContext
from shared.spec import MarketRequest, TrainingRequest


class ItemProgress:
    """Counts the items of one pre-training step (indicators, fuzzy sets, series...)."""

    def __init__(self, job: JobContext[Any], name: str, total: int) -> None:
        self._job, self._name, self._total = job, name, total
        self._done = 0

    def next(self, context: PreprocessContext) -> None:
        """Item ``done + 1`` starts: check cancellation, then report where we are."""
        self._job.cancel.raise_if_cancelled()
        self._job.tracker.detail(
            self._done / max(1, self._total),
            context=context,
            items=ItemCounter(name=self._name, current=self._done + 1, total=self._total),
        )
        self._done += 1


R = TypeVar("R", bound=MarketRequest)


@dataclass(frozen=True)
class JobContext(Generic[R]):
    request: R
    """The job's request: a ``TrainingRequest`` in the training pipeline; the steps that only
    load data read no more than the market it names."""
    tracker: ProgressTracker
    cancel: CancellationToken

    @contextmanager
    def step(self, index: int) -> Iterator[None]:
        self.cancel.raise_if_cancelled()
        self.tracker.start_step(index)
        yield
        self.tracker.finish_step()

    def items(self, name: str, total: int) -> ItemProgress:
        return ItemProgress(self, name, total)

    def context(
        self,
        symbol_index: int,
        timeframe_index: int | None = None,
        detail: str = "",
        detail_index: int = 0,
        detail_total: int = 0,
    ) -> PreprocessContext:
        """Where pre-training work is, from 0-based symbol/timeframe positions."""
        symbols, timeframes = self.request.symbols, self.request.timeframes
        has_tf = timeframe_index is not None
        return PreprocessContext(
            symbol=symbols[symbol_index],
            symbol_index=symbol_index + 1,
            symbol_total=len(symbols),
            timeframe=timeframes[timeframe_index] if timeframe_index is not None else "",
            timeframe_index=timeframe_index + 1 if timeframe_index is not None else 0,
            timeframe_total=len(timeframes) if has_tf else 0,
            detail=detail,
            detail_index=detail_index,
            detail_total=detail_total,
        )


TrainingJob = JobContext[TrainingRequest]
"""The training pipeline's context."""
