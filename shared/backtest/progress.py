"""How often a backtest tells its reporter about candles: rare enough to cost nothing.

Rules, per backtest (one ``ReportThrottle`` for all its stages):

- The last report of a stage (``done == total``) always goes out: a reader sees every stage end.
- Any other report goes out only when at least ``min_interval_s`` (200 ms) passed since the
  previous report *or since the throttle was made* (so a backtest that ends within 200 ms
  reports each stage once, at its end), and only when at least ``total / max_reports`` candles
  passed since the previous report of that stage (so at most ``max_reports`` + 1 per stage).

The clock is injectable so tests can drive time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from shared.backtest.types import BacktestReporter

MIN_INTERVAL_S = 0.2
MAX_REPORTS = 100


class ReportThrottle:
    """Decides which progress reports reach a ``BacktestReporter``."""

    __slots__ = ("_clock", "_last_done", "_last_stage", "_last_time", "max_reports", "min_interval")

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        min_interval_s: float = MIN_INTERVAL_S,
        max_reports: int = MAX_REPORTS,
    ) -> None:
        self._clock = clock
        self.min_interval = min_interval_s
        self.max_reports = max(1, max_reports)
        self._last_time = clock()
        self._last_stage = ""
        self._last_done = 0

    def due(self, stage: str, done: int, total: int) -> bool:
        """Whether a report of ``done``/``total`` candles in ``stage`` should go out now; a True
        answer counts as sent."""
        if stage != self._last_stage:
            self._last_stage, self._last_done = stage, 0
        final = done >= total
        if not final:
            if done - self._last_done < math.ceil(total / self.max_reports):
                return False
            if self._clock() - self._last_time < self.min_interval:
                return False
        self._last_time = self._clock()
        self._last_done = done
        return True


def throttled(reporter: BacktestReporter | None) -> ThrottledReporter | None:
    """``reporter`` behind a fresh throttle; one that is already a ``ThrottledReporter`` (a
    caller's own throttle, e.g. with another clock) is used as it is."""
    if reporter is None or isinstance(reporter, ThrottledReporter):
        return reporter
    return ThrottledReporter(reporter)


class ThrottledReporter:
    """A ``BacktestReporter`` in front of another, passing on what the throttle lets through."""

    __slots__ = ("_inner", "_throttle")

    def __init__(self, inner: BacktestReporter, throttle: ReportThrottle | None = None) -> None:
        self._inner = inner
        self._throttle = throttle or ReportThrottle()

    def candles(self, stage: str, done: int, total: int) -> None:
        if self._throttle.due(stage, done, total):
            self._inner.candles(stage, done, total)

    def force(self, stage: str, done: int, total: int) -> None:
        """Pass a report on regardless of the throttle (a stage's start, which is rare)."""
        self._inner.candles(stage, done, total)
