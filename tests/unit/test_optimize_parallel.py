"""Parallel trials in spawned worker processes: the same grid results, and a prompt cancel."""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass, field

import pytest

from shared.cancellation import CancellationToken
from shared.optimize import OptimizationCancelled, OptimizerSettings, WalkForward
from tests.unit.test_optimize_loop import Recorder, ToyEvaluator, run, scored


def test_parallel_grid_gives_the_sequential_results() -> None:
    walk = WalkForward(train_bars=500, test_bars=150)
    sequential = run(
        OptimizerSettings(sampler="grid", trials=None, seed=1, walk_forward=walk),
        constraints=("x > 1",),
        evaluator=ToyEvaluator(flip_after=600),
    )
    parallel = run(
        OptimizerSettings(sampler="grid", trials=None, seed=1, parallelism=2, walk_forward=walk),
        constraints=("x > 1",),
        evaluator=ToyEvaluator(flip_after=600),
    )
    assert parallel.windows == sequential.windows and len(parallel.windows) == 3
    assert [w.overfit for w in parallel.windows] == [False, True, True]
    assert sorted(scored(parallel)) == sorted(scored(sequential))
    assert len(scored(parallel)) == 6 * 5
    assert parallel.best_params == sequential.best_params == {"x": 7, "y": 20}
    assert sum(t.state == "infeasible" for t in parallel.trials) == 5
    assert not multiprocessing.active_children()


def test_cancel_stops_parallel_trials_and_their_workers_promptly() -> None:
    token = CancellationToken()

    @dataclass
    class CancelAfterFirst(Recorder):
        workers: list[multiprocessing.process.BaseProcess] = field(default_factory=list)

        def trial_finished(self, **kw: object) -> None:
            super().trial_finished(**kw)
            self.workers = multiprocessing.active_children()  # the pool's, while it runs
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
    # The workers were killed by a signal (exit code < 0), not left to finish their 2 s trials
    # and exit cleanly, nor to run the queue (35 trials).
    workers = reporter.workers
    assert len(workers) == 2
    for process in workers:
        process.join(timeout=30)
    assert all(p.exitcode is not None and p.exitcode < 0 for p in workers)
