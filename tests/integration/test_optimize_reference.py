"""Our grid optimization against backtesting.py's ``Backtest.optimize`` on real data.

The same grid of an SMA crossover's ``fast``/``slow`` with ``fast < slow``, GOOG daily, 0.2 %
commission, whole shares, maximizing ``Return [%]``; the strategy aligned to backtesting.py's
warm-up and end (``benchmarks.optimize.AlignedSmaCrossover``) so both make the same trades.
Every grid point's score must agree, hence the argmax too.
"""

from __future__ import annotations

import pytest

from benchmarks.optimize import feasible_points, ours, reference_frame, theirs
from shared.backtest import BacktestSettings, Costs
from shared.cancellation import CancellationToken
from shared.optimize import (
    Objective,
    OptimizationCancelled,
    OptimizerSettings,
    ParamRange,
    WalkForward,
    parse_constraint,
    run_optimization,
)
from shared.pipeline.market import read_market_file
from shared.strategies import get_strategy
from tests.support.market_files import real_file

pytest.importorskip("backtesting")


def test_grid_scores_and_best_params_match_backtesting_py() -> None:
    bars = read_market_file(real_file("GOOG.csv")).frame
    fast, slow = range(5, 35, 5), range(10, 70, 10)
    outcome = ours(bars, fast, slow)
    best, heatmap = theirs(reference_frame(bars), fast, slow)

    complete = [t for t in outcome.trials if t.state == "complete"]
    assert len(complete) == feasible_points(fast, slow) == len(heatmap)
    assert all(t.params["fast"] < t.params["slow"] for t in complete)  # type: ignore[operator]
    for trial in complete:
        point = (int(trial.params["fast"]), int(trial.params["slow"]))  # type: ignore[call-overload]
        assert trial.score == pytest.approx(heatmap[point], rel=1e-9, abs=1e-9), point
    assert outcome.best_params == best
    assert outcome.best_score == pytest.approx(max(heatmap.values()), rel=1e-9)


class _CancelInTrial:
    """Cancels the token at the first candle report of trial ``at`` (1-based)."""

    def __init__(self, token: CancellationToken, at: int) -> None:
        self.token, self.at, self.finished = token, at, 0
        self.stages: list[str] = []

    def trial_finished(self, **kw: object) -> None:
        self.finished += 1

    def candles(self, stage: str, done: int, total: int) -> None:
        self.stages.append(stage)
        if self.finished == self.at - 1:
            self.token.cancel("user cancelled")

    def phase(self, name: str, fraction: float) -> None:
        pass


SMA = get_strategy("sma_crossover")
SPACE = (
    ParamRange(name="fast", type="int", low=5, high=30, step=5),
    ParamRange(name="slow", type="int", low=10, high=100, step=10),
)
COSTS = BacktestSettings(costs=Costs(commission_pct=0.002))


def test_cancel_inside_a_real_trial_keeps_the_finished_ones() -> None:
    bars = read_market_file(real_file("GOOG.csv")).frame
    token = CancellationToken()
    reporter = _CancelInTrial(token, at=4)
    with pytest.raises(OptimizationCancelled) as caught:
        run_optimization(
            bars, SMA, SPACE, [parse_constraint("fast < slow")], Objective(),
            OptimizerSettings(sampler="grid", trials=None, seed=2), COSTS,
            reporter=reporter, cancel=token,
        )  # fmt: skip
    partial = caught.value.partial
    scored = [t for t in partial.trials if t.state in ("complete", "failed")]
    assert len(scored) == 3 and partial.best_params in [t.params for t in scored]
    assert {"signals", "trades"} <= set(reporter.stages)


def test_tpe_with_walk_forward_repeats_with_the_seed_on_real_data() -> None:
    bars = read_market_file(real_file("EURUSD.csv")).frame
    settings = OptimizerSettings(
        sampler="tpe",
        trials=15,
        seed=11,
        walk_forward=WalkForward(train_bars=2000, test_bars=1000, gap_bars=20, trials_per_window=8),
    )
    runs = [
        run_optimization(
            bars,
            SMA,
            SPACE,
            [parse_constraint("fast < slow")],
            Objective(stat="Return [%]"),
            settings,
            COSTS,
        )
        for _ in range(2)
    ]
    a, b = runs
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert a.best_params == b.best_params and a.best_score == b.best_score
    assert len(a.windows) == 2 and [w.best_params for w in a.windows] == [
        w.best_params for w in b.windows
    ]
    assert a.out_of_sample["Return [%]"] == pytest.approx(
        sum(w.out_of_sample["Return [%]"] for w in a.windows) / 2
    )
