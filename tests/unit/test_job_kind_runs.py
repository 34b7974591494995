"""The backtest and optimization runners a trainer calls: steps, candle and trial progress,
results, cancellation, bad input (shared/runs)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from shared.cancellation import CancellationToken, CancelledError
from shared.errors import InvalidArgumentError
from shared.job_requests import BacktestRequest, OptimizationRequest
from shared.optimize import OptimizerSettings, ParamRange, WalkForward
from shared.progress.update import ProgressUpdate, UpdateKind
from shared.runs.backtest import run_backtest_job
from shared.runs.optimize import (
    OptimizationJobCancelled,
    configuration_sha256,
    run_optimization_job,
)
from shared.spec import DataSource, DataSpec, SpecError

SYNTH = DataSpec(source=DataSource.SYNTHETIC, bars=6000)


def _backtest(**changes: object) -> BacktestRequest:
    fields: dict[str, object] = {
        "symbols": ("SYNTH",),
        "timeframes": ("1h",),
        "strategy": "sma_crossover",
        "params": {"fast": "10", "slow": "30"},
        "data": SYNTH,
    }
    fields.update(changes)
    return BacktestRequest(**fields)  # type: ignore[arg-type]


def _grid(**changes: object) -> OptimizationRequest:
    fields: dict[str, object] = {
        "symbols": ("SYNTH",),
        "timeframes": ("1h",),
        "strategy": "sma_crossover",
        "space": (
            ParamRange(name="fast", type="int", low=5, high=15, step=5),
            ParamRange(name="slow", type="int", low=20, high=40, step=10),
        ),
        "constraints": ("fast < slow",),
        "optimizer": OptimizerSettings(sampler="grid", trials=None, seed=3),
        "data": SYNTH,
    }
    fields.update(changes)
    return OptimizationRequest(**fields)  # type: ignore[arg-type]


def test_a_backtest_reports_its_steps_and_candles_and_names_its_data() -> None:
    updates: list[ProgressUpdate] = []
    summary = run_backtest_job(_backtest(), progress=updates.append, cancel=CancellationToken())
    names = [u.step_name for u in updates if u.kind is UpdateKind.STEP]
    assert names[0] == "Loading market data" and names[-1] == "Summarising"
    candles = [u for u in updates if u.items is not None and u.items.name == "candles"]
    assert candles, "candle progress is reported"
    assert {u.stage for u in candles} <= {"signals", "trades"}
    assert all(u.items is not None and u.items.total == 6000 for u in candles)
    percentages = [u.percentage for u in updates]
    assert percentages == sorted(percentages) and percentages[-1] == 100.0
    assert summary.symbol == "SYNTH" and summary.timeframe == "1h"
    assert summary.params == {"fast": "10", "slow": "30", "ma": "sma"} or "fast" in summary.params
    assert summary.data is not None and summary.data.source == "synthetic"
    assert summary.candles == 6000
    assert summary.trades_total == len(summary.trades) > 0
    assert "Buy & Hold Return [%]" in summary.stats and "Sharpe Ratio" in summary.stats
    assert 0 < len(summary.equity) <= 1000
    assert summary.equity[-1][0] == max(t for t, _ in summary.equity)


def test_a_cancel_once_the_backtest_started_stops_it() -> None:
    token = CancellationToken()

    def sink(update: ProgressUpdate) -> None:
        if update.stage:
            token.cancel("stop")

    data = DataSpec(source=DataSource.SYNTHETIC, bars=200_000)
    with pytest.raises(CancelledError):
        run_backtest_job(_backtest(data=data), progress=sink, cancel=token)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"strategy": "no_such"}, "strategy"),
        ({"params": {"fast": "40", "slow": "30"}}, "params.fast"),
        ({"params": {"speed": "3"}}, "params.speed"),
        ({"symbols": ("SYNTH", "SYNTH2")}, "symbols"),
        (
            {"data": DataSpec(source=DataSource.SYNTHETIC, bars=6000, start="2030-01-01")},
            "data.start",
        ),
    ],
)
def test_bad_backtest_input_names_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises((InvalidArgumentError, SpecError)) as info:
        run_backtest_job(_backtest(**changes), progress=lambda u: None, cancel=CancellationToken())
    assert getattr(info.value, "field", "").startswith(field.split(".")[0])


def test_an_optimization_reports_every_trial_and_stores_a_verifiable_configuration() -> None:
    updates: list[ProgressUpdate] = []
    summary = run_optimization_job(_grid(), progress=updates.append, cancel=CancellationToken())
    steps = [u.step_name for u in updates if u.kind is UpdateKind.STEP]
    assert "Validating walk-forward" not in steps  # no walk-forward: its weight is left out
    trials = [u for u in updates if u.kind is UpdateKind.TRIAL]
    complete = [t for t in summary.trials if t.state in ("complete", "failed")]
    assert len(trials) == len(complete) == 9  # 3 x 3 grid, every point has fast < slow
    last = trials[-1].optimizer
    assert last is not None and last.iteration == last.total_iterations == 9
    assert last.best_params == summary.best_params
    assert trials[-1].message.startswith("Trial 9/9 · best Sharpe Ratio")
    percentages = [u.percentage for u in updates]
    assert percentages == sorted(percentages) and percentages[-1] == 100.0
    document = json.loads(summary.configuration_json)
    assert document["strategy"] == "sma_crossover"
    assert document["params"] == dict(summary.best_params)
    assert len(configuration_sha256(summary.configuration_json)) == 64
    scores = [t.score for t in summary.trials if math.isfinite(t.score)]
    assert summary.best_score == max(scores)


def test_the_same_seed_gives_the_same_best_parameters() -> None:
    tpe = OptimizerSettings(sampler="tpe", trials=8, seed=11)
    space = (
        ParamRange(name="fast", type="int", low=3, high=20),
        ParamRange(name="slow", type="int", low=21, high=80),
    )
    runs = [
        run_optimization_job(
            _grid(optimizer=tpe, space=space), progress=lambda u: None, cancel=CancellationToken()
        )
        for _ in range(2)
    ]
    assert runs[0].best_params == runs[1].best_params
    assert [t.params for t in runs[0].trials] == [t.params for t in runs[1].trials]


def test_walk_forward_adds_its_step_and_windows() -> None:
    walk = OptimizerSettings(
        sampler="grid", trials=None, walk_forward=WalkForward(train_bars=3000, test_bars=1000)
    )
    updates: list[ProgressUpdate] = []
    summary = run_optimization_job(
        _grid(optimizer=walk), progress=updates.append, cancel=CancellationToken()
    )
    assert "Validating walk-forward" in [u.step_name for u in updates]
    assert len(summary.windows) == 3
    assert all(w.train_end < w.test_start for w in summary.windows)
    windowed = [u.optimizer for u in updates if u.optimizer is not None and u.optimizer.window]
    assert windowed and windowed[-1].total_windows == 3
    assert {o.window for o in windowed} == {1, 2, 3}  # 1-based, every window reported
    validating = [
        u
        for u in updates
        if u.kind is UpdateKind.TRIAL and u.step_name == "Validating walk-forward"
    ]
    assert validating[0].message.startswith("Window 1/3 · Trial 1/")
    fractions = [u.step_percentage for u in validating]
    assert fractions == sorted(fractions) and fractions[0] < 100 / 3


def test_a_cancelled_optimization_keeps_the_trials_it_finished() -> None:
    token = CancellationToken()

    def sink(update: ProgressUpdate) -> None:
        if update.optimizer is not None and update.optimizer.iteration >= 3:
            token.cancel("enough")

    with pytest.raises(OptimizationJobCancelled) as info:
        run_optimization_job(_grid(), progress=sink, cancel=token)
    kept = info.value.summary
    assert 3 <= len(kept.trials) < 9
    assert kept.best_params


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"space": ()}, "space"),
        ({"space": (ParamRange(name="fast", type="int", low=20, high=5, step=1),)}, "space"),
        ({"strategy": "nope"}, "strategy"),
        ({"optimizer": OptimizerSettings(sampler="grid", trials=0)}, "trials"),
        ({"constraints": ("fast > 100",)}, "constraints"),
        ({"fixed_params": {"colour": "red"}}, "fixed_params"),
    ],
)
def test_bad_optimization_input_names_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises((InvalidArgumentError, SpecError)) as info:
        run_optimization_job(_grid(**changes), progress=lambda u: None, cancel=CancellationToken())
    assert getattr(info.value, "field", "").startswith(field)


def test_fixed_parameters_are_held_and_reported(tmp_path: Path) -> None:
    space = (ParamRange(name="fast", type="int", low=5, high=10, step=5),)
    summary = run_optimization_job(
        _grid(space=space, constraints=(), fixed_params={"slow": "50"}),
        progress=lambda u: None,
        cancel=CancellationToken(),
    )
    assert summary.best_params["slow"] == "50"
    assert {t.params["fast"] for t in summary.trials} == {"5", "10"}
