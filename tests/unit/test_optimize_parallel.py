"""Parallel trials in spawned worker processes: the same grid results, and a prompt cancel."""

from __future__ import annotations

import multiprocessing

import pytest

from shared.cancellation import CancellationToken
from shared.optimize import OptimizationCancelled, OptimizerSettings
from tests.unit.test_optimize_loop import Recorder, ToyEvaluator, run, scored


def test_parallel_grid_gives_the_sequential_results() -> None:
    sequential = run(OptimizerSettings(sampler="grid", trials=None, seed=1), constraints=("x > 1",))
    parallel = run(
        OptimizerSettings(sampler="grid", trials=None, seed=1, parallelism=2),
        constraints=("x > 1",),
    )
    assert sorted(scored(parallel)) == sorted(scored(sequential))
    assert len(scored(parallel)) == 6 * 5
    assert parallel.best_params == sequential.best_params == {"x": 7, "y": 20}
    assert sum(t.state == "infeasible" for t in parallel.trials) == 5
    assert not multiprocessing.active_children()


def test_cancel_stops_parallel_trials_and_their_workers_promptly() -> None:
    token = CancellationToken()

    class CancelAfterFirst(Recorder):
        def trial_finished(self, **kw: object) -> None:
            super().trial_finished(**kw)
            token.cancel("stop")

    reporter = CancelAfterFirst()
    with pytest.raises(OptimizationCancelled) as caught:
        run(
            OptimizerSettings(sampler="grid", trials=None, seed=1, parallelism=2),
            evaluator=ToyEvaluator(delay_s=2.0),
            reporter=reporter,
            cancel=token,
        )
    # Workers evaluate two trials at once; the first to finish cancels the job. The others
    # (2 s each, and 33 more queued) must not run to their end.
    finished = [t for t in caught.value.partial.trials if t.state != "infeasible"]
    assert 1 <= len(finished) <= 2 and caught.value.partial.best_params
    # The workers were killed, not left running their 2 s trials or the queue (35 trials).
    assert not multiprocessing.active_children()
