"""A parameter search space: ranges, their Optuna distributions, their grid and random points.

Every function here takes a space that ``validate_space`` accepted (integral int bounds, a step
on every float range a grid enumerates, ``low <= high``); it does not repeat the checks.

A range with a step covers ``low, low + step, ...`` up to the last value not above ``high``:
``high`` itself is included only when ``high - low`` is a multiple of ``step``. Floats on a
step are rounded to 12 significant digits so ``0.1 + 0.2`` lands on ``0.3``.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

ParamValue = int | float | str
"""A value Optuna suggests: an int, a float or one of a categorical range's choices."""

MAX_GRID_POINTS = 20_000
"""The most points a grid (the product of every range's values) may have. Optuna's grid
sampler scans every earlier trial on each ask, so a grid's bookkeeping grows with the square
of its size: at 20,000 points it is about as long as the backtests themselves."""


@dataclass(frozen=True, kw_only=True)
class ParamRange:
    """The values one strategy parameter may take during a search."""

    name: str
    """The strategy parameter's name."""
    type: Literal["int", "float", "categorical"]
    low: float | None = None
    """Smallest value (int and float ranges)."""
    high: float | None = None
    """Largest value (int and float ranges), included when on the step."""
    step: float | None = None
    """Spacing of the values; int ranges default to 1, float ranges without one are continuous
    (and cannot be enumerated by the grid sampler)."""
    log: bool = False
    """Sample on a log scale (random, TPE, GP, CMA-ES); needs ``low > 0`` and no step."""
    choices: tuple[str, ...] = ()
    """The values of a categorical range, as text; converted to the parameter's type."""


SearchSpace = tuple[ParamRange, ...]


def _round(value: float) -> float:
    return float(f"{value:.12g}")


def _steps(r: ParamRange, step: float) -> int:
    """How many steps above ``low`` fit below ``high``."""
    assert r.low is not None and r.high is not None
    return math.floor((r.high - r.low) / step + 1e-9)


def top(r: ParamRange) -> float:
    """The largest value a stepped range reaches (``high`` snapped down onto the step)."""
    assert r.low is not None and r.high is not None
    if r.step is None and r.type == "float":
        return r.high
    step = r.step if r.step is not None else 1.0
    value = r.low + _steps(r, step) * step
    return round(value) if r.type == "int" else _round(value)


def values(r: ParamRange) -> tuple[ParamValue, ...]:
    """Every value of a stepped or categorical range, in order."""
    if r.type == "categorical":
        return tuple(r.choices)
    assert r.low is not None and r.high is not None
    if r.type == "int":
        step_int = int(r.step) if r.step is not None else 1
        return tuple(range(int(r.low), int(top(r)) + 1, step_int))
    if r.step is None:
        raise ValueError(f"float range {r.name!r} has no step to enumerate")
    return tuple(_round(r.low + k * r.step) for k in range(_steps(r, r.step) + 1))


def count(r: ParamRange) -> int | None:
    """How many values a range has; None for a continuous float range."""
    if r.type == "float" and r.step is None:
        return None
    if r.type == "categorical":
        return len(r.choices)
    assert r.low is not None
    return _steps(r, r.step if r.step is not None else 1.0) + 1


def grid_size(space: SearchSpace) -> int | None:
    """Points in the grid of the whole space; None when a range is continuous."""
    total = 1
    for r in space:
        n = count(r)
        if n is None:
            return None
        total *= n
    return total


def grid(space: SearchSpace) -> dict[str, list[ParamValue]]:
    """Each range's values, as Optuna's ``GridSampler`` takes them."""
    return {r.name: list(values(r)) for r in space}


def grid_points(space: SearchSpace) -> Iterator[dict[str, ParamValue]]:
    """Every point of the grid, in row-major order of the ranges."""
    names = [r.name for r in space]
    for combo in itertools.product(*(values(r) for r in space)):
        yield dict(zip(names, combo, strict=True))


def distribution(r: ParamRange) -> BaseDistribution:
    """The Optuna distribution a sampler draws the range's values from."""
    if r.type == "categorical":
        return CategoricalDistribution(list(r.choices))
    assert r.low is not None and r.high is not None
    if r.type == "int":
        step = int(r.step) if r.step is not None else 1
        return IntDistribution(int(r.low), int(top(r)), log=r.log, step=step)
    if r.step is None:
        return FloatDistribution(float(r.low), float(r.high), log=r.log)
    return FloatDistribution(float(r.low), float(top(r)), step=float(r.step))


def distributions(space: SearchSpace) -> dict[str, BaseDistribution]:
    return {r.name: distribution(r) for r in space}


def grid_distributions(space: SearchSpace) -> dict[str, BaseDistribution]:
    """The grid as categorical distributions: the grid sampler then suggests exact values."""
    return {name: CategoricalDistribution(vals) for name, vals in grid(space).items()}


def random_point(space: SearchSpace, rng: random.Random) -> dict[str, ParamValue]:
    """One point drawn uniformly (log-uniformly for log ranges) from the space."""
    point: dict[str, ParamValue] = {}
    for r in space:
        n = count(r)
        if r.log and r.low is not None and r.high is not None:
            value = math.exp(rng.uniform(math.log(r.low), math.log(top(r))))
            point[r.name] = round(value) if r.type == "int" else value
        elif n is None:
            assert r.low is not None and r.high is not None
            point[r.name] = rng.uniform(r.low, r.high)
        else:
            point[r.name] = values(r)[rng.randrange(n)] if n <= 10_000 else _nth(r, rng, n)
    return point


def _nth(r: ParamRange, rng: random.Random, n: int) -> ParamValue:
    """A random value of a long stepped range without listing it."""
    assert r.low is not None
    k = rng.randrange(n)
    step = r.step if r.step is not None else 1.0
    return int(r.low) + k * int(step) if r.type == "int" else _round(r.low + k * step)


def key(params: Mapping[str, object]) -> tuple[tuple[str, object], ...]:
    """A hashable key for a point, to recognise a point seen before."""
    return tuple(sorted(params.items()))
