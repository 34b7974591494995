"""The ask/tell loop over one span of the bars: ask a point, backtest it, tell the score.

Rules the loop keeps:

- A point that breaks a constraint (the request's, or the strategy's own check) is told to
  Optuna as pruned without a backtest, recorded ``infeasible`` and not counted against the
  trial budget. Samplers see pruned trials as bad, so they learn to avoid the region. After
  ``MAX_INFEASIBLE_STREAK`` infeasible points in a row the loop stops asking.
- A backtest whose objective is not a number (no trades, so no ratio) is recorded ``failed``
  with the worst score and counts against the budget; Optuna is told it was pruned, so that a
  sampler steers away from it (a failed Optuna trial would be invisible to the sampler).
- A point already backtested in this study is not backtested again: its stats are reused.
- Every asked trial is told before the loop returns or raises, so no trial stays RUNNING.
- ``trials`` counts scored trials; with the grid, the loop asks each grid point once (the
  sampler's seeded order) until ``trials`` are scored or the grid is done. ``timeout_s`` stops
  asking; trials already running finish.
- Sequential trials get the caller's token and candle reporter; parallel trials run in a
  ``TrialPool`` (no candle progress; cancel kills the workers).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field

import optuna
from optuna.trial import TrialState

from shared.cancellation import CancellationToken
from shared.optimize.constraints import Constraint, feasible
from shared.optimize.evaluate import Evaluator, Span, better, score, worst
from shared.optimize.pool import TrialPool
from shared.optimize.results import OptimizationReporter, TrialRecord
from shared.optimize.samplers import create_study, make_sampler
from shared.optimize.settings import Objective
from shared.optimize.space import (
    ParamValue,
    SearchSpace,
    distributions,
    grid_distributions,
    grid_points,
    grid_size,
    key,
)

_LOGGER = logging.getLogger(__name__)

MAX_INFEASIBLE_STREAK = 1000
POLL_S = 0.02
"""How often a parallel loop wakes to check the cancellation token while trials run."""

PrepareFn = Callable[[Mapping[str, object]], dict[str, object] | None]
"""Optuna's point → the strategy's resolved parameters, or None when the point is infeasible."""


@dataclass(frozen=True, kw_only=True)
class StudyPlan:
    space: SearchSpace
    constraints: tuple[Constraint, ...]
    objective: Objective
    sampler: str
    trials: int | None
    timeout_s: float | None
    seed: int | None
    span: Span
    window: int | None = None


@dataclass
class StudyLoop:
    """One study; ``records`` and ``best`` hold what finished, also after a cancel."""

    plan: StudyPlan
    evaluator: Evaluator
    prepare: PrepareFn
    reporter: OptimizationReporter | None = None
    cancel: CancellationToken | None = None
    pool: TrialPool | None = None
    on_progress: Callable[[float], None] | None = None
    records: list[TrialRecord] = field(default_factory=list)
    best: TrialRecord | None = None
    total: int | None = None
    _cache: dict[tuple[tuple[str, object], ...], dict[str, float]] = field(default_factory=dict)
    _scored: int = 0
    _asked: int = 0
    _streak: int = 0
    _started: float = 0.0

    def run(self) -> list[TrialRecord]:
        plan = self.plan
        self.study = create_study(
            plan.objective.direction, make_sampler(plan.sampler, plan.space, plan.seed)
        )
        grid = plan.sampler == "grid"
        self._grid_size = grid_size(plan.space) if grid else None
        self._dists = grid_distributions(plan.space) if grid else distributions(plan.space)
        self.total = self._total()
        self._started = time.monotonic()
        if self.pool is None:
            self._run_sequential()
        else:
            self._run_parallel(self.pool)
        return self.records

    def _total(self) -> int | None:
        if self._grid_size is None:
            return self.plan.trials
        feasible_points = sum(1 for p in grid_points(self.plan.space) if self._feasible(p))
        return (
            feasible_points if self.plan.trials is None else min(self.plan.trials, feasible_points)
        )

    def _feasible(self, point: Mapping[str, ParamValue]) -> bool:
        return feasible(self.plan.constraints, point) and self.prepare(point) is not None

    def _may_ask(self, in_flight: int = 0) -> bool:
        plan = self.plan
        if self.cancel is not None and self.cancel.cancelled:
            return False
        if self._grid_size is not None and self._asked >= self._grid_size:
            return False
        budget = self.total if self._grid_size is not None else plan.trials
        if budget is not None and self._scored + in_flight >= budget:
            return False
        if plan.timeout_s is not None and time.monotonic() - self._started >= plan.timeout_s:
            return False
        if self._streak >= MAX_INFEASIBLE_STREAK:
            _LOGGER.warning("stopping: %d infeasible points in a row", self._streak)
            return False
        return True

    def _ask(self) -> tuple[optuna.Trial, dict[str, object] | None]:
        """Ask a point; infeasible ones are told and recorded here (returned params None)."""
        trial = self.study.ask(self._dists)
        self._asked += 1
        raw: dict[str, ParamValue] = dict(trial.params)
        params = self.prepare(raw) if feasible(self.plan.constraints, raw) else None
        if params is None:
            self.study.tell(trial, state=TrialState.PRUNED)
            self._streak += 1
            self.records.append(
                TrialRecord(trial.number, dict(raw), math.nan, {}, "infeasible", 0.0)
            )
        else:
            self._streak = 0
        return trial, params

    def _finish(
        self, trial: optuna.Trial, params: dict[str, object], stats: dict[str, float], took: float
    ) -> None:
        objective = self.plan.objective
        value = score(stats, objective)
        params = {r.name: params[r.name] for r in self.plan.space}
        if math.isnan(value):
            self.study.tell(trial, state=TrialState.PRUNED)
            record = TrialRecord(trial.number, params, worst(objective), stats, "failed", took)
        else:
            self.study.tell(trial, value)
            record = TrialRecord(trial.number, params, value, stats, "complete", took)
            if self.best is None or better(value, self.best.score, objective):
                self.best = record
        self._scored += 1
        self.records.append(record)
        if self.reporter is not None:
            best = self.best
            self.reporter.trial_finished(
                iteration=self._scored,
                total=self.total,
                score=record.score,
                best_score=best.score if best is not None else math.nan,
                best_params=dict(best.params) if best is not None else {},
                params=params,
                window=self.plan.window,
            )
        self._progress()

    def _progress(self) -> None:
        if self.on_progress is None:
            return
        fractions = [0.0]
        if self.total:
            fractions.append(self._scored / self.total)
        if self.plan.timeout_s:
            fractions.append((time.monotonic() - self._started) / self.plan.timeout_s)
        self.on_progress(min(1.0, max(fractions)))

    def _cached(self, trial: optuna.Trial, params: dict[str, object]) -> bool:
        stats = self._cache.get(key(params))
        if stats is None:
            return False
        self._finish(trial, params, stats, 0.0)
        return True

    def _run_sequential(self) -> None:
        candles = CandleForwarder(self.reporter) if self.reporter is not None else None
        while self._may_ask():
            trial, params = self._ask()
            if params is None or self._cached(trial, params):
                continue
            started = time.perf_counter()
            try:
                stats = self.evaluator.evaluate(
                    params, self.plan.span, reporter=candles, cancel=self.cancel
                )
            except BaseException:
                self.study.tell(trial, state=TrialState.FAIL)
                raise
            self._cache[key(params)] = stats
            self._finish(trial, params, stats, time.perf_counter() - started)
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()

    def _run_parallel(self, pool: TrialPool) -> None:
        running: dict[
            Future[tuple[dict[str, float], float]], tuple[optuna.Trial, dict[str, object]]
        ]
        running = {}
        try:
            while True:
                while len(running) < pool.workers and self._may_ask(len(running)):
                    trial, params = self._ask()
                    if params is not None and not self._cached(trial, params):
                        running[pool.submit(params, self.plan.span)] = (trial, params)
                if not running:
                    break
                done, _ = wait(running, timeout=POLL_S, return_when=FIRST_COMPLETED)
                if self.cancel is not None:
                    self.cancel.raise_if_cancelled()
                for future in sorted(done, key=lambda f: running[f][0].number):
                    trial, params = running.pop(future)
                    try:
                        stats, took = future.result()
                    except BaseException:
                        self.study.tell(trial, state=TrialState.FAIL)
                        raise
                    self._cache[key(params)] = stats
                    self._finish(trial, params, stats, took)
            if self.cancel is not None:
                self.cancel.raise_if_cancelled()
        except BaseException:
            for trial, _ in running.values():
                self.study.tell(trial, state=TrialState.FAIL)
            raise


class CandleForwarder:
    """Passes a trial's candle progress on to the optimization's reporter."""

    __slots__ = ("_reporter",)

    def __init__(self, reporter: OptimizationReporter) -> None:
        self._reporter = reporter

    def candles(self, stage: str, done: int, total: int) -> None:
        self._reporter.candles(stage, done, total)
