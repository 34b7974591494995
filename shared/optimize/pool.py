"""Worker processes for parallel trials: backtests are CPU-bound, so threads would share a GIL.

Workers start with ``spawn`` (never ``fork``: the trainer runs threads, and a forked child
inherits their locks in whatever state they were). Each worker receives the evaluator (with
its bars) once, through the pool's initializer, and then only ``(params, span)`` per trial.

Optuna cannot stop a running trial, and a worker has no cancellation token of the caller's: on
cancel the pool cancels the trials not yet started and terminates the workers, which stops the
running ones at once (they hold no state worth keeping). A worker's candle progress is not
forwarded; the caller sees each trial when it finishes.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Mapping
from concurrent.futures import Future, ProcessPoolExecutor

from shared.optimize.evaluate import Evaluator, Span

_evaluator: Evaluator | None = None


def _initialize(evaluator: Evaluator) -> None:
    global _evaluator
    _evaluator = evaluator
    try:
        from shared.backtest import warm_up

        warm_up()  # compile once per worker, before the first trial is timed
    except ImportError:  # pragma: no cover - the backtest package is part of the tree
        pass


def _run(params: Mapping[str, object], span: Span) -> tuple[dict[str, float], float]:
    assert _evaluator is not None, "worker used before its initializer ran"
    start = time.perf_counter()
    stats = _evaluator.evaluate(params, span)
    return stats, time.perf_counter() - start


class TrialPool:
    """``workers`` processes evaluating trials with one evaluator."""

    def __init__(self, evaluator: Evaluator, workers: int) -> None:
        self.workers = workers
        self._executor = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_initialize,
            initargs=(evaluator,),
        )

    def submit(
        self, params: Mapping[str, object], span: Span
    ) -> Future[tuple[dict[str, float], float]]:
        return self._executor.submit(_run, dict(params), span)

    def close(self) -> None:
        """Wait for submitted trials and stop the workers."""
        self._executor.shutdown(wait=True)

    def terminate(self) -> None:
        """Drop queued trials and kill the workers now (running trials are lost)."""
        # ProcessPoolExecutor has no public way to stop a running task before Python 3.14
        # (terminate_workers); its process table is the only handle on the workers.
        processes = list(getattr(self._executor, "_processes", {}).values())
        self._executor.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5.0)
            if process.is_alive():  # pragma: no cover - SIGTERM ignored
                process.kill()
                process.join(timeout=5.0)

    def __enter__(self) -> TrialPool:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self.terminate()
