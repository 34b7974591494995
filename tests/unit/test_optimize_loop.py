"""The ask/tell loop with a tiny objective: seeds, the grid, constraints, failures, cancel,
progress and walk-forward."""

from __future__ import annotations

import importlib.util
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pytest
from optuna.trial import TrialState

from shared.backtest import BacktestReporter
from shared.cancellation import CancellationToken
from shared.optimize import (
    Objective,
    OptimizationCancelled,
    OptimizationOutcome,
    OptimizerSettings,
    ParamRange,
    WalkForward,
    parse_constraint,
)
from shared.optimize.evaluate import Span
from shared.optimize.runner import optimize
from shared.optimize.samplers import SAMPLER_PACKAGES, require_sampler
from shared.optimize.strategy_params import Prepare
from shared.optimize.study_loop import StudyLoop, StudyPlan
from shared.strategies import ParamSpec

ROWS = 1000
TIMES = np.arange(ROWS, dtype=np.float64) * 3600.0 + 1.7e9


class Toy:
    """A strategy with two whole-number parameters and a rule that x differs from 13."""

    name = "toy"
    description = "a bowl with its top at x=7, y=20"
    params = (
        ParamSpec(name="x", type="int", default=5, low=1, high=40),
        ParamSpec(name="y", type="int", default=10, low=1, high=60),
        ParamSpec(name="mode", type="categorical", default="a", choices=("a", "b")),
    )

    def signals(self, bars: pd.DataFrame, params: Mapping[str, object]) -> np.ndarray:
        raise AssertionError("the toy is scored by ToyEvaluator, not backtested")


class ToyEvaluator:
    """Sharpe = a bowl in (x, y); NaN (no trades) at x == 3; negated on spans starting after
    ``flip_after`` (so walk-forward windows tested there look overfit)."""

    def __init__(self, flip_after: int | None = None, delay_s: float = 0.0) -> None:
        self.flip_after = flip_after
        self.delay_s = delay_s
        self.calls: list[tuple[dict[str, object], Span]] = []

    def evaluate(
        self,
        params: Mapping[str, object],
        span: Span,
        *,
        reporter: BacktestReporter | None = None,
        cancel: CancellationToken | None = None,
    ) -> dict[str, float]:
        self.calls.append((dict(params), span))
        for chunk in range(1, 11):
            if cancel is not None:
                cancel.raise_if_cancelled()
            if self.delay_s:
                time.sleep(self.delay_s / 10)
            if reporter is not None:
                reporter.candles("trades", chunk * 10, 100)
        x, y = float(params["x"]), float(params["y"])  # type: ignore[arg-type]
        if x == 3:
            return {"Sharpe Ratio": math.nan, "# Trades": 0.0, "Return [%]": 0.0}
        value = 10.0 - (x - 7) ** 2 / 4 - (y - 20) ** 2 / 25 + (0.5 if params["mode"] == "b" else 0)
        if self.flip_after is not None and span[0] >= self.flip_after:
            value = -abs(value)
        return {"Sharpe Ratio": value, "# Trades": 5.0, "Return [%]": value * 2}


@dataclass
class Recorder:
    trials: list[dict[str, object]] = field(default_factory=list)
    candle_reports: list[tuple[str, int, int]] = field(default_factory=list)
    phases: list[tuple[str, float]] = field(default_factory=list)
    cancel_at: tuple[int, CancellationToken] | None = None

    def trial_finished(self, **kw: object) -> None:
        self.trials.append(kw)

    def candles(self, stage: str, done: int, total: int) -> None:
        self.candle_reports.append((stage, done, total))
        if self.cancel_at is not None and len(self.trials) >= self.cancel_at[0] and done >= 50:
            self.cancel_at[1].cancel("user asked")

    def phase(self, name: str, fraction: float) -> None:
        self.phases.append((name, fraction))


X = ParamRange(name="x", type="int", low=1, high=13, step=2)  # 1, 3, ..., 13
Y = ParamRange(name="y", type="int", low=10, high=30, step=5)
MODE = ParamRange(name="mode", type="categorical", choices=("a", "b"))


def run(
    settings: OptimizerSettings,
    space: tuple[ParamRange, ...] = (X, Y),
    constraints: tuple[str, ...] = (),
    evaluator: ToyEvaluator | None = None,
    reporter: Recorder | None = None,
    cancel: CancellationToken | None = None,
) -> OptimizationOutcome:
    return optimize(
        evaluator or ToyEvaluator(),
        Prepare(Toy()),
        TIMES,
        space,
        tuple(parse_constraint(c, i) for i, c in enumerate(constraints)),
        Objective(),
        settings,
        reporter=reporter,
        cancel=cancel,
    )


def scored(outcome: OptimizationOutcome) -> list[tuple[tuple[tuple[str, object], ...], float]]:
    return [
        (tuple(sorted(t.params.items())), t.score)
        for t in outcome.trials
        if t.state in ("complete", "failed")
    ]


def test_grid_backtests_every_point_exactly_once() -> None:
    evaluator = ToyEvaluator()
    out = run(OptimizerSettings(sampler="grid", trials=None, seed=3), evaluator=evaluator)
    points = [tuple(sorted(t.params.items())) for t in out.trials]
    assert len(points) == 7 * 5 == len(set(points)) == len(evaluator.calls)
    assert out.best_params == {"x": 7, "y": 20} and out.best_score == 10.0


def test_grid_with_fewer_trials_takes_that_many_distinct_points() -> None:
    out = run(OptimizerSettings(sampler="grid", trials=6, seed=3))
    assert len(out.trials) == 6 == len({tuple(t.params.items()) for t in out.trials})


@pytest.mark.parametrize("sampler", ["random", "tpe", "gp", "cmaes"])
def test_same_seed_same_trials_and_best(sampler: str) -> None:
    settings = OptimizerSettings(sampler=sampler, trials=12, seed=42)  # type: ignore[arg-type]
    missing = [p for p in SAMPLER_PACKAGES.get(sampler, ()) if importlib.util.find_spec(p) is None]
    assert not missing, f"{sampler} needs {missing}: they are project dependencies"
    require_sampler(sampler)
    space = (X, ParamRange(name="y", type="int", low=1, high=60), MODE)
    a, b = run(settings, space), run(settings, space)
    assert scored(a) == scored(b) and len(scored(a)) == 12
    assert a.best_params == b.best_params and a.best_score == b.best_score
    other = run(OptimizerSettings(sampler=sampler, trials=12, seed=43), space)  # type: ignore[arg-type]
    assert scored(other) != scored(a)


def test_tpe_finds_the_top_of_the_bowl() -> None:
    out = run(OptimizerSettings(sampler="tpe", trials=60, seed=0), (X, Y))
    assert out.best_score >= 9.0


def test_constraints_are_never_backtested_nor_counted() -> None:
    evaluator = ToyEvaluator()
    out = run(
        OptimizerSettings(sampler="grid", trials=None, seed=1),
        constraints=("x >= 5", "y != 25"),
        evaluator=evaluator,
    )
    assert all(p["x"] >= 5 and p["y"] != 25 for p, _ in evaluator.calls)  # type: ignore[operator]
    infeasible = [t for t in out.trials if t.state == "infeasible"]
    assert len(infeasible) == 35 - 5 * 4 and all(math.isnan(t.score) for t in infeasible)
    assert len(evaluator.calls) == 5 * 4


def test_sampled_budget_counts_scored_trials_only() -> None:
    out = run(OptimizerSettings(sampler="random", trials=10, seed=5), constraints=("x > 9",))
    assert len(scored(out)) == 10
    assert all(t.params["x"] > 9 for t in out.trials if t.state != "infeasible")  # type: ignore[operator]
    assert any(t.state == "infeasible" for t in out.trials)


def test_no_trades_is_a_failed_trial_with_the_worst_score() -> None:
    reporter = Recorder()
    out = run(OptimizerSettings(sampler="grid", trials=None, seed=1), reporter=reporter)
    failed = [t for t in out.trials if t.state == "failed"]
    assert len(failed) == 5 and all(t.params["x"] == 3 and t.score == -math.inf for t in failed)
    assert out.best_params["x"] != 3
    assert len(reporter.trials) == 35 and reporter.trials[-1]["iteration"] == 35


def test_reporter_sees_every_trial_candles_and_monotonic_phase() -> None:
    reporter = Recorder()
    evaluator = ToyEvaluator()
    out = run(
        OptimizerSettings(sampler="tpe", trials=8, seed=2), evaluator=evaluator, reporter=reporter
    )
    assert [t["iteration"] for t in reporter.trials] == list(range(1, 9))
    assert all(t["total"] == 8 and t["window"] is None for t in reporter.trials)
    best = max(reporter.trials, key=lambda t: t["score"])  # type: ignore[arg-type, return-value]
    assert reporter.trials[-1]["best_score"] == best["score"] == out.best_score
    assert len(reporter.candle_reports) == 10 * len(evaluator.calls)  # repeated points: none
    fractions = [f for name, f in reporter.phases if name == "optimize"]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


def test_cancel_mid_trial_keeps_the_finished_trials_and_tells_every_trial() -> None:
    token = CancellationToken()
    reporter = Recorder(cancel_at=(3, token))
    evaluator = ToyEvaluator()
    with pytest.raises(OptimizationCancelled) as caught:
        run(
            OptimizerSettings(sampler="grid", trials=None, seed=1),
            evaluator=evaluator,
            reporter=reporter,
            cancel=token,
        )
    partial = caught.value.partial
    assert caught.value.reason == "user asked"
    assert len(scored(partial)) == 3 and len(evaluator.calls) == 4  # the 4th was stopped
    best = max((t for t in partial.trials if t.state == "complete"), key=lambda t: t.score)
    assert partial.best_params == best.params and partial.best_score == best.score


def test_a_cancelled_study_leaves_no_running_trial() -> None:
    token = CancellationToken()
    loop = StudyLoop(
        StudyPlan(
            space=(X, Y), constraints=(), objective=Objective(), sampler="tpe", trials=10,
            timeout_s=None, seed=0, span=(0, ROWS),
        ),
        ToyEvaluator(),
        Prepare(Toy()),
        Recorder(cancel_at=(2, token)),
        token,
    )  # fmt: skip
    with pytest.raises(Exception, match="user asked"):
        loop.run()
    states = [t.state for t in loop.study.trials]
    assert TrialState.RUNNING not in states and states[-1] == TrialState.FAIL
    assert len(loop.records) == 2


def test_timeout_stops_asking() -> None:
    out = run(
        OptimizerSettings(sampler="random", trials=None, timeout_s=0.3, seed=1),
        evaluator=ToyEvaluator(delay_s=0.05),
    )
    assert 1 <= len(out.trials) <= 10


def test_walk_forward_scores_each_window_out_of_sample() -> None:
    reporter = Recorder()
    walk = WalkForward(train_bars=400, test_bars=150, gap_bars=50, trials_per_window=None)
    out = run(
        OptimizerSettings(sampler="grid", trials=None, seed=1, walk_forward=walk),
        evaluator=ToyEvaluator(flip_after=600),
        reporter=reporter,
    )
    assert [w.index for w in out.windows] == [0, 1, 2]
    w0, w1, w2 = out.windows
    assert (w0.train_start, w0.train_end) == (TIMES[0], TIMES[399])
    assert (w0.test_start, w0.test_end) == (TIMES[450], TIMES[599])
    assert (w1.train_start, w1.train_end, w1.test_start) == (TIMES[150], TIMES[549], TIMES[600])
    assert (w2.train_start, w2.test_end) == (TIMES[300], TIMES[899])
    assert all(w.best_params == {"x": 7, "y": 20} for w in out.windows)
    assert [w.overfit for w in out.windows] == [False, True, True]  # tests from 600, 750 flip
    assert w0.out_of_sample["Sharpe Ratio"] == 10.0 and w1.out_of_sample["Sharpe Ratio"] == -10.0
    assert out.out_of_sample["Sharpe Ratio"] == pytest.approx(-10.0 / 3)
    assert out.overfit  # mean OOS -3.3 against mean IS 10
    assert {t["window"] for t in reporter.trials} == {None, 0, 1, 2}
    validate = [f for name, f in reporter.phases if name == "validate"]
    assert validate == sorted(validate) and validate[-1] == 1.0


def test_walk_forward_anchored_and_per_window_budget() -> None:
    walk = WalkForward(train_bars=500, test_bars=250, anchored=True, trials_per_window=4)
    reporter = Recorder()
    out = run(
        OptimizerSettings(sampler="tpe", trials=6, seed=1, walk_forward=walk), reporter=reporter
    )
    assert [(w.train_start, w.train_end) for w in out.windows] == [
        (TIMES[0], TIMES[499]),
        (TIMES[0], TIMES[749]),
    ]
    assert len(out.trials) == 6 and not out.overfit
    per_window = [t for t in reporter.trials if t["window"] == 1]
    assert len(per_window) == 4 and per_window[-1]["total"] == 4
