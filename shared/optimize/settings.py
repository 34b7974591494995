"""What an optimization is asked to do: the objective, the sampler and budget, walk-forward."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SAMPLERS: tuple[str, ...] = ("grid", "random", "tpe", "gp", "cmaes")


@dataclass(frozen=True, kw_only=True)
class Objective:
    """The backtest stat a trial is scored by."""

    stat: str = "Sharpe Ratio"
    """One of the backtest's stat names (``shared.backtest.STAT_NAMES``)."""
    direction: Literal["maximize", "minimize"] = "maximize"


@dataclass(frozen=True, kw_only=True)
class WalkForward:
    """Train/test windows over the bars for out-of-sample validation.

    Window ``k`` trains on ``train_bars`` bars (rolling) or on every bar from the first
    (anchored), skips ``gap_bars``, then tests on the next ``test_bars``; the next window starts
    ``test_bars`` later, so the test spans tile the bars without overlapping. Windows are made
    while a whole test span fits.
    """

    train_bars: int
    test_bars: int
    gap_bars: int = 0
    """Bars left out between a window's train and test spans (indicator warm-up, leakage)."""
    anchored: bool = False
    """Every train span starts at the first bar and grows by ``test_bars`` a window."""
    trials_per_window: int | None = None
    """Trials of each window's optimization; the settings' ``trials`` when unset."""


@dataclass(frozen=True, kw_only=True)
class OptimizerSettings:
    """How to search: the sampler, the budget, the seed, the parallelism."""

    sampler: Literal["grid", "random", "tpe", "gp", "cmaes"] = "tpe"
    trials: int | None = 50
    """Scored trials (complete or failed); infeasible points do not count. With ``grid``, None
    means the whole grid and a number takes that many of its points."""
    timeout_s: float | None = None
    """Stop asking for trials after this many seconds of the optimize phase; a running trial
    finishes. Walk-forward windows share the same budget again, split evenly between them."""
    seed: int | None = None
    """Same seed and request, sequential trials: the same trials and best parameters."""
    parallelism: int = 1
    """Trials run at once, each in its own worker process (1: in this process)."""
    walk_forward: WalkForward | None = None
