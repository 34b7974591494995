"""Search-space values, constraint parsing, walk-forward windows and the overfit rule."""

from __future__ import annotations

import math
import random

import pytest

from shared.errors import InvalidArgumentError
from shared.optimize import Objective, ParamRange, WalkForward, parse_constraint
from shared.optimize.space import distribution, grid_points, grid_size, random_point, values
from shared.optimize.walk_forward import is_overfit, mean_stats, windows


def test_int_range_steps_up_to_high_and_snaps_an_off_step_high() -> None:
    assert values(ParamRange(name="a", type="int", low=5, high=30, step=5)) == (
        5,
        10,
        15,
        20,
        25,
        30,
    )
    assert values(ParamRange(name="a", type="int", low=5, high=32, step=5))[-1] == 30
    assert values(ParamRange(name="a", type="int", low=3, high=6)) == (3, 4, 5, 6)


def test_float_range_on_a_step_lands_on_round_values() -> None:
    got = values(ParamRange(name="a", type="float", low=0.1, high=0.5, step=0.1))
    assert got == (0.1, 0.2, 0.3, 0.4, 0.5)


def test_grid_is_the_product_of_the_ranges() -> None:
    space = (
        ParamRange(name="a", type="int", low=1, high=3),
        ParamRange(name="m", type="categorical", choices=("sma", "ema")),
    )
    points = list(grid_points(space))
    assert grid_size(space) == 6 == len(points)
    assert {(p["a"], p["m"]) for p in points} == {(a, m) for a in (1, 2, 3) for m in ("sma", "ema")}
    assert grid_size((ParamRange(name="x", type="float", low=0, high=1),)) is None


def test_distributions_follow_type_step_and_log() -> None:
    d = distribution(ParamRange(name="a", type="int", low=2, high=11, step=3))
    assert (d.low, d.high, d.step) == (2, 11, 3)  # type: ignore[attr-defined]
    f = distribution(ParamRange(name="b", type="float", low=0.01, high=1.0, log=True))
    assert f.log  # type: ignore[attr-defined]


def test_random_points_stay_inside_the_ranges() -> None:
    space = (
        ParamRange(name="a", type="int", low=2, high=50, step=2),
        ParamRange(name="b", type="float", low=0.01, high=10.0, log=True),
    )
    rng = random.Random(1)
    for _ in range(200):
        p = random_point(space, rng)
        assert isinstance(p["a"], int) and 2 <= p["a"] <= 50 and p["a"] % 2 == 0
        assert isinstance(p["b"], float) and 0.01 <= p["b"] <= 10.0


@pytest.mark.parametrize(
    ("text", "params", "holds"),
    [
        ("fast < slow", {"fast": 5, "slow": 20}, True),
        ("fast<slow", {"fast": 20, "slow": 20}, False),
        ("fast <= slow", {"fast": 20, "slow": 20}, True),
        ("slow >= 30", {"slow": 30}, True),
        ("x != 0.5", {"x": 0.5}, False),
        ("x == -2", {"x": -2}, True),
        ("x > 1e-3", {"x": 0.01}, True),
    ],
)
def test_constraints_compare_names_and_numbers(
    text: str, params: dict[str, object], holds: bool
) -> None:
    assert parse_constraint(text).holds(params) is holds


@pytest.mark.parametrize(
    "text",
    ["fast * 2 < slow", "fast < slow < 3", "__import__('os') < 1", "fast < fast", "", "1 < x"],
)
def test_malformed_constraints_name_their_position(text: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        parse_constraint(text, 3)
    assert caught.value.field == "constraints[3]"


def test_rolling_windows_slide_by_the_test_span_with_the_gap() -> None:
    got = windows(WalkForward(train_bars=100, test_bars=50, gap_bars=10), 330)
    assert [(w.train, w.test) for w in got] == [
        ((0, 100), (110, 160)),
        ((50, 150), (160, 210)),
        ((100, 200), (210, 260)),
        ((150, 250), (260, 310)),
    ]


def test_anchored_windows_grow_from_the_first_bar() -> None:
    got = windows(WalkForward(train_bars=100, test_bars=50, anchored=True), 250)
    assert [(w.train, w.test) for w in got] == [
        ((0, 100), (100, 150)),
        ((0, 150), (150, 200)),
        ((0, 200), (200, 250)),
    ]


def test_windows_that_do_not_fit_say_how_many_bars_they_need() -> None:
    with pytest.raises(InvalidArgumentError, match="160 bars") as caught:
        windows(WalkForward(train_bars=100, test_bars=50, gap_bars=10), 159)
    assert caught.value.field == "walk_forward.train_bars"
    with pytest.raises(InvalidArgumentError) as bad:
        windows(WalkForward(train_bars=100, test_bars=0), 1000)
    assert bad.value.field == "walk_forward.test_bars"


MAX = Objective(stat="Sharpe Ratio")
MIN = Objective(stat="Volatility (Ann.) [%]", direction="minimize")


@pytest.mark.parametrize(
    ("objective", "in_sample", "out_of_sample", "overfit"),
    [
        (MAX, 2.0, 1.2, False),  # kept 60 %
        (MAX, 2.0, 0.9, True),  # under half
        (MAX, 1.0, -0.1, True),  # sign flip
        (MAX, -1.0, -1.4, False),  # poor in-sample, a little worse
        (MAX, -1.0, -1.6, True),
        (MAX, 0.0, -0.01, True),
        (MAX, 2.0, math.nan, False),  # no trades out of sample: nothing to compare
        (MIN, 10.0, 14.0, False),
        (MIN, 10.0, 16.0, True),
    ],
)
def test_overfit_rule(
    objective: Objective, in_sample: float, out_of_sample: float, overfit: bool
) -> None:
    assert is_overfit(in_sample, out_of_sample, objective) is overfit


def test_mean_stats_skip_values_that_are_not_numbers() -> None:
    got = mean_stats([{"a": 1.0, "b": math.nan}, {"a": 3.0, "b": math.nan}, {"a": math.nan}])
    assert got["a"] == 2.0 and math.isnan(got["b"])
