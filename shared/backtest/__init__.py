"""Candle-by-candle backtests of trading signals: pure, synchronous, compiled.

``run_backtest(bars, signals, settings)`` simulates the positions ``signals`` ask for (filled at
the next bar's open) with commissions, slippage, sizing and optional stops, and returns the
trades, the equity curve and backtesting.py-named stats. ``run_strategy`` computes a rule
strategy's signals first (``shared.strategies``). Both report candle progress to a
``BacktestReporter`` and honour a ``CancellationToken``. Call ``warm_up()`` once at process
start (trainers do) so the first backtest does not pay the compile.
"""

from shared.backtest.engine import run_backtest
from shared.backtest.simulate import warm_up
from shared.backtest.stats import STAT_NAMES, compute_stats
from shared.backtest.strategy_run import run_strategy
from shared.backtest.types import (
    EXIT_REASONS,
    STAGES,
    BacktestReporter,
    BacktestResult,
    BacktestSettings,
    Costs,
    Sizing,
    Trade,
)

__all__ = [
    "EXIT_REASONS",
    "STAGES",
    "STAT_NAMES",
    "BacktestReporter",
    "BacktestResult",
    "BacktestSettings",
    "Costs",
    "Sizing",
    "Trade",
    "compute_stats",
    "run_backtest",
    "run_strategy",
    "warm_up",
]
