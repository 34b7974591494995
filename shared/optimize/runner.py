"""``run_optimization``: optimize over all the bars, then validate walk-forward.

The optimize phase searches the space over every bar; its best trial gives ``best_params``
and ``in_sample``. With walk-forward, the validate phase then runs one optimization per window
on the window's train span (``trials_per_window`` trials, seed ``seed + 1 + window``) and
backtests that window's best parameters on its test span: the windows judge the *procedure*
(does optimizing on the past pick parameters that hold up next?), while the stored
configuration is the optimize phase's best.

``best_params`` and each trial's ``params`` hold the searched parameters only, typed as the
strategy takes them; ``resolve_params(strategy, best_params)`` completes them with defaults.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from shared.backtest import BacktestSettings
from shared.backtest.engine import bar_times
from shared.cancellation import CancellationToken, CancelledError
from shared.optimize import walk_forward as wf
from shared.optimize.constraints import Constraint
from shared.optimize.evaluate import BacktestEvaluator, Evaluator, score
from shared.optimize.pool import TrialPool
from shared.optimize.results import (
    OptimizationCancelled,
    OptimizationOutcome,
    OptimizationReporter,
    TrialRecord,
    WindowResult,
)
from shared.optimize.settings import Objective, OptimizerSettings
from shared.optimize.space import SearchSpace
from shared.optimize.strategy_params import Prepare
from shared.optimize.study_loop import CandleForwarder, PrepareFn, StudyLoop, StudyPlan
from shared.optimize.validate import validate_space
from shared.strategies.params import RuleStrategy


def run_optimization(
    bars: pd.DataFrame,
    strategy: RuleStrategy,
    space: SearchSpace,
    constraints: Sequence[Constraint],
    objective: Objective,
    settings: OptimizerSettings,
    backtest: BacktestSettings,
    *,
    reporter: OptimizationReporter | None = None,
    cancel: CancellationToken | None = None,
) -> OptimizationOutcome:
    """Search ``space`` for the parameters of ``strategy`` that best meet ``objective``.

    Raises ``InvalidArgumentError`` on a bad request (before any backtest) and
    ``OptimizationCancelled`` (with the trials finished so far) when ``cancel`` fires.
    """
    validate_space(strategy, space, constraints, objective, settings)
    times = bar_times(bars)
    if settings.walk_forward is not None:
        wf.windows(settings.walk_forward, len(bars))  # refuse windows that do not fit, first
    return optimize(
        BacktestEvaluator(bars, strategy, backtest),
        Prepare(strategy),
        times,
        space,
        tuple(constraints),
        objective,
        settings,
        reporter=reporter,
        cancel=cancel,
    )


@dataclass
class _Phases:
    """Forwards phase progress, never letting it go back."""

    reporter: OptimizationReporter | None
    reached: dict[str, float] = field(default_factory=dict)

    def within(
        self, name: Literal["optimize", "validate"], part: int, parts: int
    ) -> Callable[[float], None]:
        """Progress of part ``part`` of ``parts`` equal parts of a phase."""
        return lambda fraction: self(name, (part + fraction) / parts)

    def __call__(self, name: Literal["optimize", "validate"], fraction: float) -> None:
        fraction = min(1.0, max(fraction, self.reached.get(name, 0.0)))
        if self.reporter is not None and fraction > self.reached.get(name, -1.0):
            self.reached[name] = fraction
            self.reporter.phase(name, fraction)


def optimize(
    evaluator: Evaluator,
    prepare: PrepareFn,
    times: np.ndarray,
    space: SearchSpace,
    constraints: tuple[Constraint, ...],
    objective: Objective,
    settings: OptimizerSettings,
    *,
    reporter: OptimizationReporter | None = None,
    cancel: CancellationToken | None = None,
) -> OptimizationOutcome:
    """``run_optimization`` on a validated request, with any evaluator (tests use tiny ones)."""
    rows = len(times)
    windows = wf.windows(settings.walk_forward, rows) if settings.walk_forward else ()
    phases = _Phases(reporter)
    pool = TrialPool(evaluator, settings.parallelism) if settings.parallelism > 1 else None

    def plan(
        span: tuple[int, int],
        trials: int | None,
        timeout: float | None,
        seed: int | None,
        window: int | None,
    ) -> StudyPlan:
        return StudyPlan(
            space=space,
            constraints=constraints,
            objective=objective,
            sampler=settings.sampler,
            trials=trials,
            timeout_s=timeout,
            seed=seed,
            span=span,
            window=window,
        )

    main = StudyLoop(
        plan((0, rows), settings.trials, settings.timeout_s, settings.seed, None),
        evaluator,
        prepare,
        reporter,
        cancel,
        pool,
        on_progress=lambda f: phases("optimize", f),
    )
    done: list[WindowResult] = []

    def outcome() -> OptimizationOutcome:
        return _outcome(main.records, main.best, done, objective, settings)

    with pool if pool is not None else nullcontext():
        try:
            phases("optimize", 0.0)
            main.run()
            phases("optimize", 1.0)
            walk = settings.walk_forward
            if walk is not None:
                phases("validate", 0.0)
                per_window = walk.trials_per_window or settings.trials
                timeout = settings.timeout_s / len(windows) if settings.timeout_s else None
                for w in windows:
                    seed = None if settings.seed is None else (settings.seed + 1 + w.index) % 2**32
                    n = len(windows)
                    loop = StudyLoop(
                        plan(w.train, per_window, timeout, seed, w.index),
                        evaluator,
                        prepare,
                        reporter,
                        cancel,
                        pool,
                        on_progress=phases.within("validate", w.index, n),
                    )
                    loop.run()
                    done.append(
                        _validate(
                            w, loop.best, evaluator, prepare, times, objective, reporter, cancel
                        )
                    )
                    phases("validate", (w.index + 1) / n)
        except CancelledError as error:
            raise OptimizationCancelled(error.reason, outcome()) from error
    return outcome()


def _validate(
    w: wf.Window,
    best: TrialRecord | None,
    evaluator: Evaluator,
    prepare: PrepareFn,
    times: np.ndarray,
    objective: Objective,
    reporter: OptimizationReporter | None,
    cancel: CancellationToken | None,
) -> WindowResult:
    """Backtest a window's best parameters on its test span."""
    out_of_sample: dict[str, float] = {}
    overfit = False
    resolved = prepare(best.params) if best is not None else None
    if best is not None and resolved is not None:
        candles = CandleForwarder(reporter) if reporter is not None else None
        out_of_sample = evaluator.evaluate(resolved, w.test, reporter=candles, cancel=cancel)
        overfit = wf.is_overfit(best.score, score(out_of_sample, objective), objective)
    return WindowResult(
        index=w.index,
        train_start=float(times[w.train[0]]),
        train_end=float(times[w.train[1] - 1]),
        test_start=float(times[w.test[0]]),
        test_end=float(times[w.test[1] - 1]),
        best_params=dict(best.params) if best is not None else {},
        in_sample=dict(best.stats) if best is not None else {},
        out_of_sample=out_of_sample,
        overfit=overfit,
    )


def _outcome(
    trials: list[TrialRecord],
    best: TrialRecord | None,
    windows: list[WindowResult],
    objective: Objective,
    settings: OptimizerSettings,
) -> OptimizationOutcome:
    judged = [w for w in windows if w.out_of_sample]
    is_scores = [score(w.in_sample, objective) for w in judged]
    oos_scores = [score(w.out_of_sample, objective) for w in judged]
    pairs = [(a, b) for a, b in zip(is_scores, oos_scores, strict=True) if math.isfinite(a + b)]
    overfit = bool(pairs) and wf.is_overfit(
        math.fsum(a for a, _ in pairs) / len(pairs),
        math.fsum(b for _, b in pairs) / len(pairs),
        objective,
    )
    return OptimizationOutcome(
        trials=tuple(trials),
        best_params=dict(best.params) if best is not None else {},
        best_score=best.score if best is not None else math.nan,
        in_sample=dict(best.stats) if best is not None else {},
        windows=tuple(windows),
        out_of_sample=wf.mean_stats([w.out_of_sample for w in judged]) if judged else {},
        overfit=overfit,
        objective=objective,
        sampler=settings.sampler,
        seed=settings.seed,
    )
