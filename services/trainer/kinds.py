"""What a trainer runs for each job kind: the seam between the job runner and the runners.

A job kind is a request type, a runner and a result: ``RUNNERS`` maps each request type to the
function the job runner calls on its worker thread, and ``KindOutcome`` is what comes back.
Training returns a ``TrainingOutcome`` whose artifact the job runner uploads before the job
succeeds; the backtest and optimization kinds return their result dataclasses, carried by the
terminal event. Adding a kind is adding its request type, its runner and one line here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.cancellation import CancellationToken
from shared.job_requests import BacktestRequest, JobRequest, OptimizationRequest
from shared.job_validation import validate_backtest, validate_optimization
from shared.pipeline.run import TrainingOutcome
from shared.progress.update import ProgressSink
from shared.results import BacktestSummary, OptimizationSummary
from shared.spec import DEFAULT_LIMITS, JobLimits, TrainingRequest

KindOutcome = TrainingOutcome | BacktestSummary | OptimizationSummary


@dataclass(frozen=True, kw_only=True)
class RunContext:
    """Everything a runner gets besides its request."""

    work_dir: Path
    progress: ProgressSink
    cancel: CancellationToken
    data_dir: Path | None
    dataset_dir: Path | None
    device: str
    limits: JobLimits = DEFAULT_LIMITS
    model_dir: Path | None = None
    """A model backtest's model, fetched from the orchestrator into the job's directory."""


PipelineFn = Callable[..., TrainingOutcome]
"""Training's runner (``shared.pipeline.run.run_training`` or a test's stand-in)."""


def run_kind(request: JobRequest, ctx: RunContext, pipeline: PipelineFn) -> KindOutcome:
    """Run ``request`` with its kind's runner (on the caller's thread)."""
    market: dict[str, Any] = {
        "progress": ctx.progress,
        "cancel": ctx.cancel,
        "data_dir": ctx.data_dir,
        "dataset_dir": ctx.dataset_dir,
    }
    if isinstance(request, BacktestRequest) and request.model:
        from shared.runs.model_backtest import run_model_backtest_job

        if ctx.model_dir is None:
            raise ValueError("a model backtest needs its model fetched first")
        return run_model_backtest_job(request, model_dir=ctx.model_dir, limits=ctx.limits, **market)
    if isinstance(request, BacktestRequest):
        from shared.runs.backtest import run_backtest_job

        return run_backtest_job(request, limits=ctx.limits, **market)
    if isinstance(request, OptimizationRequest):
        from shared.runs.optimize import run_optimization_job

        return run_optimization_job(request, limits=ctx.limits, **market)
    return pipeline(request, work_dir=ctx.work_dir, device=ctx.device, **market)


def validate_kind(
    request: JobRequest,
    training: Callable[[TrainingRequest], None],
    limits: JobLimits = DEFAULT_LIMITS,
) -> None:
    """Refuse a request its runner cannot run (before the job is admitted)."""
    if isinstance(request, BacktestRequest):
        validate_backtest(request, limits=limits)
    elif isinstance(request, OptimizationRequest):
        validate_optimization(request, limits=limits)
    else:
        training(request)


def success_message(outcome: Any) -> str:
    """The terminal event's message for a kind that carries its result in the event."""
    if isinstance(outcome, BacktestSummary):
        from shared.runs.backtest import render_stats_line

        return f"Backtest done: {render_stats_line(outcome)}"
    if isinstance(outcome, OptimizationSummary):
        params = ", ".join(f"{k}={v}" for k, v in outcome.best_params.items()) or "none"
        stored = f"; stored as {outcome.configuration.name}" if outcome.configuration else ""
        return (
            f"Optimization done: {len(outcome.trials)} trials, best {outcome.objective} "
            f"{outcome.best_score:.4g} with {params}{stored}"
        )
    return "Done"
