"""Scoring a point: a backtest of the strategy over a span of the bars, and its objective.

The loop only needs an ``Evaluator``: given resolved parameters and a span of bar indices,
the stats. ``BacktestEvaluator`` is the real one (``run_strategy`` on ``bars[start:stop]``);
it pickles with its bars, so a worker process receives the bars once, not per trial.
A span's indicators start from its first bar: each walk-forward window warms up inside itself,
as a live strategy started on that bar would.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol

import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from shared.backtest import BacktestReporter, BacktestSettings, run_strategy
from shared.cancellation import CancellationToken
from shared.optimize.settings import Objective
from shared.strategies.params import RuleStrategy

Span = tuple[int, int]
"""``(start, stop)`` row indices of the bars, as for slicing."""


class Evaluator(Protocol):
    def evaluate(
        self,
        params: Mapping[str, object],
        span: Span,
        *,
        reporter: BacktestReporter | None = None,
        cancel: CancellationToken | None = None,
    ) -> dict[str, float]:
        """The stats of ``params`` over ``span``; raises ``CancelledError`` when cancelled."""


class BacktestEvaluator:
    """Backtests a rule strategy over spans of one set of bars."""

    def __init__(self, bars: pd.DataFrame, strategy: RuleStrategy, settings: BacktestSettings):
        self.bars = bars
        self.strategy = strategy
        self.settings = settings

    def evaluate(
        self,
        params: Mapping[str, object],
        span: Span,
        *,
        reporter: BacktestReporter | None = None,
        cancel: CancellationToken | None = None,
    ) -> dict[str, float]:
        start, stop = span
        bars = self.bars if (start, stop) == (0, len(self.bars)) else self.bars.iloc[start:stop]
        result = run_strategy(
            bars, self.strategy, params, self.settings, reporter=reporter, cancel=cancel
        )
        return {name: float(value) for name, value in result.stats.items()}


def score(stats: Mapping[str, float], objective: Objective) -> float:
    """The objective stat; NaN when the backtest gave none (e.g. no trades for a ratio)."""
    value = stats.get(objective.stat, math.nan)
    return float(value) if math.isfinite(value) else math.nan


def worst(objective: Objective) -> float:
    return -math.inf if objective.direction == "maximize" else math.inf


def better(a: float, b: float, objective: Objective) -> bool:
    """Whether score ``a`` beats ``b`` (NaN never beats anything; anything beats NaN)."""
    if math.isnan(a):
        return False
    if math.isnan(b):
        return True
    return a > b if objective.direction == "maximize" else a < b
