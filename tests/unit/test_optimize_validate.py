"""``validate_space``: every bad request is refused with the field to fix and what to change."""

from __future__ import annotations

import importlib.util

import pytest

from shared.errors import FailedPreconditionError, InvalidArgumentError
from shared.optimize import (
    Objective,
    OptimizerSettings,
    ParamRange,
    WalkForward,
    parse_constraint,
    validate_space,
)
from shared.strategies import get_strategy

SMA = get_strategy("sma_crossover")
FAST = ParamRange(name="fast", type="int", low=5, high=30, step=5)
SLOW = ParamRange(name="slow", type="int", low=10, high=60, step=10)
GRID = OptimizerSettings(sampler="grid", trials=None)
SHARPE = Objective()


def refused(
    space: tuple[ParamRange, ...] = (FAST, SLOW),
    constraints: tuple[str, ...] = (),
    objective: Objective = SHARPE,
    settings: OptimizerSettings = GRID,
) -> InvalidArgumentError:
    with pytest.raises(InvalidArgumentError) as caught:
        validate_space(
            SMA,
            space,
            [parse_constraint(c, i) for i, c in enumerate(constraints)],
            objective,
            settings,
        )
    return caught.value


def test_a_good_request_passes() -> None:
    validate_space(SMA, (FAST, SLOW), [parse_constraint("fast < slow")], Objective(), GRID)
    tpe = OptimizerSettings(sampler="tpe", trials=20, seed=1)
    validate_space(
        SMA,
        (FAST, SLOW, ParamRange(name="ma", type="categorical", choices=("sma", "ema"))),
        [],
        Objective(stat="Return [%]"),
        tpe,
    )


def test_empty_space_lists_the_strategy_parameters() -> None:
    error = refused(space=())
    assert error.field == "space" and "fast, slow, ma" in error.message


def test_unknown_parameter_names_its_range_and_the_known_ones() -> None:
    error = refused(space=(FAST, ParamRange(name="slw", type="int", low=10, high=60)))
    assert error.field == "space[1].name"
    assert "'slw'" in error.message and "known: fast, slow, ma" in error.message


def test_inverted_range() -> None:
    error = refused(space=(ParamRange(name="fast", type="int", low=30, high=5), SLOW))
    assert error.field == "space[0].low" and "inverted" in error.message


def test_range_outside_the_strategy_bounds() -> None:
    error = refused(space=(FAST, ParamRange(name="slow", type="int", low=10, high=5000, step=10)))
    assert error.field == "space[1].high" and "2000" in error.message
    error = refused(space=(ParamRange(name="fast", type="int", low=1, high=9), SLOW))
    assert error.field == "space[0].low"


def test_step_must_be_positive() -> None:
    error = refused(space=(ParamRange(name="fast", type="int", low=5, high=30, step=0), SLOW))
    assert error.field == "space[0].step"


def test_log_needs_a_positive_low_and_no_step() -> None:
    tpe = OptimizerSettings(sampler="tpe", trials=10)
    bb = get_strategy("bollinger_breakout")
    floats = [p for p in bb.params if p.type == "float"]
    assert floats, "bollinger_breakout has a float parameter to search"
    spec = floats[0]
    assert spec.low is not None and spec.high is not None
    with pytest.raises(InvalidArgumentError) as caught:
        validate_space(
            bb,
            (
                ParamRange(
                    name=spec.name, type="float", low=spec.low, high=spec.high, step=0.5, log=True
                ),
            ),
            [],
            Objective(),
            tpe,
        )
    assert caught.value.field == "space[0].step"
    error = refused(
        space=(ParamRange(name="fast", type="int", low=5, high=30, step=5, log=True), SLOW),
        settings=tpe,
    )
    assert error.field == "space[0].step" and "log" in error.message
    validate_space(
        SMA,
        (ParamRange(name="fast", type="int", low=5, high=30, log=True), SLOW),
        [],
        Objective(),
        tpe,
    )


def test_grid_needs_a_step_on_float_ranges() -> None:
    bb = get_strategy("bollinger_breakout")
    spec = next(p for p in bb.params if p.type == "float")
    assert spec.low is not None and spec.high is not None
    with pytest.raises(InvalidArgumentError) as caught:
        validate_space(
            bb,
            (ParamRange(name=spec.name, type="float", low=spec.low, high=spec.high),),
            [],
            Objective(),
            GRID,
        )
    assert caught.value.field == "space[0].step" and "step" in caught.value.message


def test_float_range_on_an_int_parameter() -> None:
    error = refused(space=(ParamRange(name="fast", type="float", low=5, high=30, step=5), SLOW))
    assert error.field == "space[0].type"


def test_categorical_choices_must_be_the_parameter_choices() -> None:
    error = refused(space=(FAST, SLOW, ParamRange(name="ma", type="categorical", choices=("wma",))))
    assert error.field == "space[2].choices" and "'wma'" in error.message


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        (OptimizerSettings(sampler="tpe", trials=0), "trials"),
        (OptimizerSettings(sampler="tpe", trials=-3), "trials"),
        (OptimizerSettings(sampler="random", trials=None, timeout_s=None), "trials"),
        (OptimizerSettings(sampler="tpe", trials=10, timeout_s=0.0), "timeout_s"),
        (OptimizerSettings(sampler="tpe", trials=10, parallelism=0), "parallelism"),
        (OptimizerSettings(sampler="tpe", trials=10, seed=-1), "seed"),
        (OptimizerSettings(sampler="bayes", trials=10), "sampler"),  # type: ignore[arg-type]
        (
            OptimizerSettings(trials=10, walk_forward=WalkForward(train_bars=0, test_bars=10)),
            "walk_forward.train_bars",
        ),
        (
            OptimizerSettings(
                trials=10,
                walk_forward=WalkForward(train_bars=10, test_bars=10, trials_per_window=0),
            ),
            "walk_forward.trials_per_window",
        ),
    ],
)
def test_bad_budgets_and_settings(settings: OptimizerSettings, field: str) -> None:
    assert refused(settings=settings).field == field


def test_grid_without_trials_is_the_whole_grid() -> None:
    validate_space(
        SMA, (FAST, SLOW), [], Objective(), OptimizerSettings(sampler="grid", trials=None)
    )


def test_unknown_objective_lists_the_stats() -> None:
    error = refused(objective=Objective(stat="Sharpe"))
    assert error.field == "objective.stat" and "Sharpe Ratio" in error.message


def test_impossible_constraints_on_a_grid() -> None:
    error = refused(constraints=("fast > slow",))
    assert error.field == "constraints" and "no point of the grid" in error.message


def test_impossible_constraints_when_sampling() -> None:
    error = refused(
        constraints=("fast >= 40",), settings=OptimizerSettings(sampler="tpe", trials=10)
    )
    assert error.field == "constraints" and "random points" in error.message


def test_the_strategy_own_rule_can_make_a_space_impossible() -> None:
    space = (
        ParamRange(name="fast", type="int", low=50, high=60),
        ParamRange(name="slow", type="int", low=10, high=40),
    )
    assert refused(space=space).field == "space"


def test_constraint_on_a_parameter_without_a_range() -> None:
    error = refused(space=(FAST,), constraints=("fast < slow",))
    assert error.field == "constraints[0]" and "'slow'" in error.message


@pytest.mark.parametrize("sampler", ["gp", "cmaes"])
def test_the_samplers_with_extra_packages_are_available(sampler: str) -> None:
    settings = OptimizerSettings(sampler=sampler, trials=10)  # type: ignore[arg-type]
    validate_space(SMA, (FAST, SLOW), [], Objective(), settings)


def test_a_sampler_whose_package_is_missing_is_a_failed_precondition(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "cmaes" else real(name, *a)
    )
    settings = OptimizerSettings(sampler="cmaes", trials=10)
    with pytest.raises(FailedPreconditionError) as caught:
        validate_space(SMA, (FAST, SLOW), [], Objective(), settings)
    assert caught.value.field == "sampler" and "'cmaes'" in caught.value.message
