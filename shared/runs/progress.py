"""Candle progress of a backtest as the tracker's detail updates."""

from __future__ import annotations

from shared.backtest import STAGES
from shared.progress.tracker import ProgressTracker
from shared.progress.update import ItemCounter


def render_candles(stage: str, done: int, total: int) -> str:
    """``candle 1,500/10,000 (15%) [trades]``."""
    percent = 100.0 * done / total if total else 100.0
    return f"candle {done:,}/{total:,} ({percent:.0f}%) [{stage}]"


class StepCandles:
    """A ``BacktestReporter`` that moves the tracker's current step: the backtest's two stages
    (signals, then trades) each fill half of the span ``[start, start + span]`` of the step.
    The engine already throttles its reports; the tracker coalesces detail updates again."""

    def __init__(
        self, tracker: ProgressTracker, *, start: float = 0.0, span: float = 1.0, prefix: str = ""
    ) -> None:
        self._tracker = tracker
        self._start, self._span, self._prefix = start, span, prefix

    def candles(self, stage: str, done: int, total: int) -> None:
        index = STAGES.index(stage) if stage in STAGES else 0
        within = (index + (done / total if total else 1.0)) / len(STAGES)
        self._tracker.detail(
            self._start + self._span * within,
            items=ItemCounter(name="candles", current=done, total=total),
            stage=stage,
            message=self._prefix + render_candles(stage, done, total),
        )
