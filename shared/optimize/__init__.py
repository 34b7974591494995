"""Strategy optimization: Optuna searches a rule strategy's parameters, each trial a backtest.

``run_optimization(bars, strategy, space, constraints, objective, settings, backtest)`` runs an
ask/tell loop the caller owns (grid, random, TPE, GP or CMA-ES samplers), in this process or in
a pool of worker processes, then optionally validates walk-forward. It is pure and synchronous
like the backtest: progress goes to an ``OptimizationReporter``, a ``CancellationToken`` stops
it, and a cancel raises ``OptimizationCancelled`` carrying the trials finished so far.
"""

from shared.optimize.constraints import Constraint, parse_constraint, parse_constraints
from shared.optimize.results import (
    OptimizationCancelled,
    OptimizationOutcome,
    OptimizationReporter,
    TrialRecord,
    WindowResult,
)
from shared.optimize.runner import run_optimization
from shared.optimize.settings import SAMPLERS, Objective, OptimizerSettings, WalkForward
from shared.optimize.space import MAX_GRID_POINTS, ParamRange, SearchSpace
from shared.optimize.validate import validate_space

__all__ = [
    "MAX_GRID_POINTS",
    "SAMPLERS",
    "Constraint",
    "Objective",
    "OptimizationCancelled",
    "OptimizationOutcome",
    "OptimizationReporter",
    "OptimizerSettings",
    "ParamRange",
    "SearchSpace",
    "TrialRecord",
    "WalkForward",
    "WindowResult",
    "parse_constraint",
    "parse_constraints",
    "run_optimization",
    "validate_space",
]
