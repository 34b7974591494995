"""The optimization job: load the bars, search the strategy's parameters, validate walk-forward,
build the best configuration.

Steps and default weights: loading market data 25, optimizing 50, validating walk-forward 20,
saving the configuration 5; without walk-forward the validation step is left out and the
others renormalised (so the bar still ends at 100). Every finished trial is one TRIAL update
carrying ``optimizer`` (iteration i/n, current and best score, best parameters); inside a
sequential trial the candle counter moves the bar between trials. Messages follow
``Trial 30/50 · best Sharpe Ratio 1.85 · current 1.42 — candle 1,500/10,000 (15%) [trades]``.

The configuration is JSON with sorted keys (strategy, parameters, data range, settings,
in-sample and out-of-sample stats): its sha256 is the sha256 of exactly those bytes, which the
orchestrator recomputes before it stores them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Literal

import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from shared.cancellation import CancellationToken, CancelledError
from shared.job_requests import OptimizationRequest
from shared.job_validation import validate_optimization
from shared.optimize import (
    OptimizationCancelled,
    OptimizationOutcome,
    parse_constraints,
    run_optimization,
)
from shared.optimize.walk_forward import windows
from shared.pipeline.job import JobContext
from shared.pipeline.preprocess import load_data
from shared.progress.tracker import ProgressTracker, Step
from shared.progress.update import ItemCounter, ProgressSink
from shared.provenance import DataProvenance
from shared.results import (
    OptimizationSummary,
    OptimizerProgress,
    TrialSummary,
    WindowSummary,
    render_params,
)
from shared.runs.fixed import with_fixed_params
from shared.runs.progress import render_candles
from shared.runs.summary import settings_numbers
from shared.spec import DEFAULT_LIMITS, JobLimits
from shared.strategies import get_strategy

_LOGGER = logging.getLogger(__name__)


class OptimizationJobCancelled(CancelledError):
    """The job was cancelled; ``summary`` is the result of the trials finished before."""

    def __init__(self, reason: str, summary: OptimizationSummary) -> None:
        super().__init__(reason)
        self.summary = summary


LOAD, OPTIMIZE, VALIDATE = 1, 2, 3
"""Step indices; the save step follows validation (3 without walk-forward, 4 with it)."""


def optimization_steps(walk_forward: bool) -> tuple[Step, ...]:
    steps = [Step("Loading market data", 25), Step("Optimizing", 50)]
    if walk_forward:
        steps.append(Step("Validating walk-forward", 20))
    steps.append(Step("Saving configuration", 5))
    return tuple(steps)


def _score(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.4g}"


class _Reporter:
    """Turns the optimizer's reports into tracker updates for the current step."""

    def __init__(self, tracker: ProgressTracker, objective: str, has_validation: bool) -> None:
        self._tracker = tracker
        self._objective = objective
        self._has_validation = has_validation
        self._phase: Literal["optimize", "validate"] = "optimize"
        self._fraction = 0.0
        self._last = OptimizerProgress(iteration=0, objective=objective)
        self._windows = 0

    def set_windows(self, count: int) -> None:
        self._windows = count

    def _enter(self, name: Literal["optimize", "validate"]) -> None:
        if name == self._phase or name != "validate" or not self._has_validation:
            return
        self._tracker.finish_step()
        self._tracker.start_step(VALIDATE)
        self._phase, self._fraction = name, 0.0

    def trial_finished(
        self,
        *,
        iteration: int,
        total: int | None,
        score: float,
        best_score: float,
        best_params: Mapping[str, object],
        params: Mapping[str, object],
        window: int | None,
    ) -> None:
        if window is not None:
            self._enter("validate")
        number = window + 1 if window is not None else 0  # the optimizer counts windows from 0
        progress = OptimizerProgress(
            iteration=iteration,
            total_iterations=total or 0,
            current_score=score,
            best_score=best_score,
            best_params=render_params(best_params),
            current_params=render_params(params),
            objective=self._objective,
            window=number,
            total_windows=self._windows if number else 0,
        )
        self._last = progress
        if total:
            inner = iteration / total
            if number and self._windows:
                inner = (number - 1 + inner) / self._windows
            self._fraction = max(self._fraction, min(1.0, inner))
        self._tracker.trial(self._fraction, progress, self._message())

    def _message(self) -> str:
        p = self._last
        where = f"Window {p.window}/{p.total_windows} · " if p.window else ""
        of = f"/{p.total_iterations}" if p.total_iterations else ""
        return (
            f"{where}Trial {p.iteration}{of} · best {self._objective} {_score(p.best_score)}"
            f" · current {_score(p.current_score)}"
        )

    def candles(self, stage: str, done: int, total: int) -> None:
        self._tracker.detail(
            self._fraction,
            items=None if total <= 0 else _candles(done, total),
            stage=stage,
            message=f"{self._message()} — {render_candles(stage, done, total)}",
        )

    def phase(self, name: Literal["optimize", "validate"], fraction: float) -> None:
        self._enter(name)
        if name == self._phase:
            self._fraction = max(self._fraction, min(1.0, fraction))


def _candles(done: int, total: int) -> ItemCounter:
    return ItemCounter(name="candles", current=done, total=total)


def _window_summaries(outcome: OptimizationOutcome) -> tuple[WindowSummary, ...]:
    return tuple(
        WindowSummary(
            index=w.index,
            train_start=w.train_start,
            train_end=w.train_end,
            test_start=w.test_start,
            test_end=w.test_end,
            best_params=render_params(w.best_params),
            in_sample=dict(w.in_sample),
            out_of_sample=dict(w.out_of_sample),
            overfit=w.overfit,
        )
        for w in outcome.windows
    )


def summarise_outcome(
    request: OptimizationRequest,
    outcome: OptimizationOutcome,
    data: DataProvenance | None,
    bars: pd.DataFrame | None,
) -> OptimizationSummary:
    """The job result of ``outcome``; ``bars`` (when the run got that far) date the data."""
    trials = tuple(
        TrialSummary(
            number=t.number,
            params=render_params(t.params),
            score=t.score,
            state=t.state,
            duration_s=t.duration_s,
        )
        for t in outcome.trials
    )
    return OptimizationSummary(
        strategy=request.strategy,
        best_params={**dict(request.fixed_params), **render_params(outcome.best_params)},
        best_score=outcome.best_score,
        objective=request.objective.stat,
        minimize=request.objective.direction == "minimize",
        sampler=outcome.sampler,
        in_sample=dict(outcome.in_sample),
        out_of_sample=dict(outcome.out_of_sample),
        windows=_window_summaries(outcome),
        overfit=outcome.overfit,
        trials=trials,
        data=data,
        seed=outcome.seed,
    )


def configuration_json(request: OptimizationRequest, summary: OptimizationSummary) -> str:
    """What the repository stores for the best configuration: canonical JSON."""
    data = summary.data
    document = {
        "kind": "trainwire.configuration",
        "version": 1,
        "strategy": request.strategy,
        "params": dict(summary.best_params),
        "objective": {"stat": summary.objective, "minimize": summary.minimize},
        "score": {"in_sample": _finite(summary.best_score), "out_of_sample": _oos(summary)},
        "symbols": list(request.symbols),
        "timeframes": list(request.timeframes),
        "data": {
            "source": data.source if data else "",
            "location": data.location if data else "",
            "start": data.start if data else None,
            "end": data.end if data else None,
            "rows": data.rows if data else 0,
        },
        "settings": settings_numbers(request.settings),
        "sampler": summary.sampler,
        "seed": summary.seed,
        "trials": len(summary.trials),
        "in_sample": {k: _finite(v) for k, v in summary.in_sample.items()},
        "out_of_sample": {k: _finite(v) for k, v in summary.out_of_sample.items()},
        "overfit": summary.overfit,
        "walk_forward_windows": len(summary.windows),
    }
    return json.dumps(document, sort_keys=True, indent=2, allow_nan=False) + "\n"


def _finite(value: float) -> float | None:
    return value if isinstance(value, int | float) and math.isfinite(value) else None


def _oos(summary: OptimizationSummary) -> float | None:
    return _finite(summary.out_of_sample.get(summary.objective, math.nan))


def configuration_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def run_optimization_job(
    request: OptimizationRequest,
    *,
    progress: ProgressSink,
    cancel: CancellationToken,
    data_dir: Path | None = None,
    dataset_dir: Path | None = None,
    limits: JobLimits = DEFAULT_LIMITS,
) -> OptimizationSummary:
    """Optimize ``request``; a cancel raises ``OptimizationJobCancelled`` with the job result
    of the trials finished so far."""
    validate_optimization(request, limits=limits)
    walk = request.optimizer.walk_forward is not None
    tracker = ProgressTracker(progress, optimization_steps(walk))
    job = JobContext(request, tracker, cancel)
    bars, provenance = load_data(job, data_dir, dataset_dir=dataset_dir, max_bars=limits.max_bars)
    frame = bars[(request.symbols[0], request.timeframes[0])]
    strategy = with_fixed_params(get_strategy(request.strategy), request.fixed_params)
    reporter = _Reporter(tracker, request.objective.stat, walk)
    if request.optimizer.walk_forward is not None:
        reporter.set_windows(len(windows(request.optimizer.walk_forward, len(frame))))
    cancel.raise_if_cancelled()
    tracker.start_step(OPTIMIZE)
    try:
        outcome = run_optimization(
            frame,
            strategy,
            request.space,
            parse_constraints(request.constraints),
            request.objective,
            request.optimizer,
            request.settings,
            reporter=reporter,
            cancel=cancel,
        )
    except OptimizationCancelled as exc:
        partial = summarise_outcome(request, exc.partial, provenance, frame)
        raise OptimizationJobCancelled(exc.reason, partial) from exc
    tracker.finish_step()
    save = VALIDATE + 1 if walk else VALIDATE
    with job.step(save):
        summary = summarise_outcome(request, outcome, provenance, frame)
        text = configuration_json(request, summary)
        summary = replace(summary, configuration_json=text)
        tracker.detail(
            1.0,
            message=f"Best {summary.objective} {_score(summary.best_score)} with "
            + ", ".join(f"{k}={v}" for k, v in summary.best_params.items()),
        )
    _LOGGER.info(
        "optimized %s: %d trials, best %s %s",
        request.strategy,
        len(summary.trials),
        summary.objective,
        _score(summary.best_score),
    )
    return summary
