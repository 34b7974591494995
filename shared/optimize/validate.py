"""``validate_space``: refuse a request the optimizer cannot run, naming the field to fix."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from shared.backtest import STAT_NAMES
from shared.errors import InvalidArgumentError
from shared.optimize import walk_forward
from shared.optimize.constraints import Constraint, feasible
from shared.optimize.samplers import require_sampler
from shared.optimize.settings import Objective, OptimizerSettings
from shared.optimize.space import (
    MAX_GRID_POINTS,
    ParamRange,
    SearchSpace,
    grid_points,
    grid_size,
    random_point,
)
from shared.optimize.strategy_params import Prepare, specs
from shared.strategies.params import ParamSpec, RuleStrategy, coerce

FEASIBILITY_SAMPLES = 1000
"""Random points tried to show that a non-grid space has one satisfying the constraints."""
MAX_PARALLELISM = 64
MAX_SEED = 2**32 - 1


def _fail(message: str, field: str) -> InvalidArgumentError:
    return InvalidArgumentError(message, field=field)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def validate_space(
    strategy: RuleStrategy,
    space: SearchSpace,
    constraints: Sequence[Constraint],
    objective: Objective,
    settings: OptimizerSettings,
) -> None:
    """Raise ``InvalidArgumentError`` (``FailedPreconditionError`` for a sampler this machine
    lacks a package for) on the first thing wrong, with the field and what to change."""
    _check_settings(settings)
    _check_objective(objective)
    if not space:
        raise _fail(
            f"the search space is empty; give at least one range over the parameters of "
            f"{strategy.name!r}: {', '.join(specs(strategy)) or 'none'}",
            "space",
        )
    known = specs(strategy)
    seen: set[str] = set()
    for i, r in enumerate(space):
        spec = known.get(r.name)
        if spec is None:
            raise _fail(
                f"strategy {strategy.name!r} has no parameter {r.name!r}; known: "
                f"{', '.join(known) or 'none'}",
                f"space[{i}].name",
            )
        if r.name in seen:
            raise _fail(f"parameter {r.name!r} has two ranges; keep one", f"space[{i}].name")
        seen.add(r.name)
        _check_range(i, r, spec, settings.sampler == "grid")
    if settings.sampler == "grid":
        size = grid_size(space)
        if size is not None and size > MAX_GRID_POINTS:
            raise _fail(
                f"the grid has {size:,} points, over the {MAX_GRID_POINTS:,} a grid search may "
                "have; widen the steps, narrow the ranges or use a sampler such as 'tpe'",
                "space",
            )
    _check_constraints(strategy, space, constraints, settings)


def _check_settings(settings: OptimizerSettings) -> None:
    require_sampler(settings.sampler)
    trials, timeout = settings.trials, settings.timeout_s
    if trials is not None and (
        isinstance(trials, bool) or not isinstance(trials, int) or trials < 1
    ):
        raise _fail(f"trials is a number of trials >= 1, not {trials!r}", "trials")
    if timeout is not None and not (_number(timeout) and timeout > 0):
        raise _fail(f"timeout_s is a number of seconds > 0, not {timeout!r}", "timeout_s")
    if trials is None and timeout is None and settings.sampler != "grid":
        raise _fail(
            f"sampler {settings.sampler!r} needs a budget: set trials (>= 1) or timeout_s",
            "trials",
        )
    p = settings.parallelism
    if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= MAX_PARALLELISM:
        raise _fail(
            f"parallelism is the number of trials run at once, 1 to {MAX_PARALLELISM}, not {p!r}",
            "parallelism",
        )
    seed = settings.seed
    if seed is not None and (
        isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED
    ):
        raise _fail(f"seed is a whole number in [0, {MAX_SEED}] or unset, not {seed!r}", "seed")
    if settings.walk_forward is not None:
        walk_forward.check(settings.walk_forward)


def _check_objective(objective: Objective) -> None:
    if objective.stat not in STAT_NAMES:
        raise _fail(
            f"objective stat {objective.stat!r} is not a backtest stat; one of: "
            f"{', '.join(STAT_NAMES)}",
            "objective.stat",
        )
    if objective.direction not in ("maximize", "minimize"):
        raise _fail(
            f"objective direction is 'maximize' or 'minimize', not {objective.direction!r}",
            "objective.direction",
        )


def _check_range(i: int, r: ParamRange, spec: ParamSpec, grid: bool) -> None:
    at = f"space[{i}]"
    if r.type not in ("int", "float", "categorical"):
        raise _fail(f"range type is 'int', 'float' or 'categorical', not {r.type!r}", f"{at}.type")
    if r.type == "categorical":
        _check_choices(at, r, spec)
        return
    if spec.type not in ("int", "float"):
        raise _fail(
            f"parameter {r.name!r} is {spec.type}: search it with a categorical range of "
            f"choices ({spec.range_text()})",
            f"{at}.type",
        )
    if r.type == "float" and spec.type == "int":
        raise _fail(
            f"parameter {r.name!r} is a whole number: use an int range, not float", f"{at}.type"
        )
    if r.choices:
        raise _fail(f"choices belong to categorical ranges, not {r.type}", f"{at}.choices")
    for name in ("low", "high", "step"):
        value = getattr(r, name)
        if value is None and name != "step":
            raise _fail(f"range {r.name!r} needs a {name}", f"{at}.{name}")
        if value is not None and not _number(value):
            raise _fail(f"{name} of {r.name!r} is a finite number, not {value!r}", f"{at}.{name}")
        if r.type == "int" and value is not None and not float(value).is_integer():
            raise _fail(
                f"{name} of int range {r.name!r} is a whole number, not {value!r}", f"{at}.{name}"
            )
    assert r.low is not None and r.high is not None
    if r.low > r.high:
        raise _fail(
            f"range {r.name!r} is inverted: low {r.low:g} > high {r.high:g}; swap them",
            f"{at}.low",
        )
    if r.step is not None and r.step <= 0:
        raise _fail(f"step of {r.name!r} must be > 0, not {r.step:g}", f"{at}.step")
    if spec.low is not None and r.low < spec.low:
        raise _fail(
            f"low {r.low:g} of {r.name!r} is below the strategy's bound ({spec.range_text()})",
            f"{at}.low",
        )
    if spec.high is not None and r.high > spec.high:
        raise _fail(
            f"high {r.high:g} of {r.name!r} is above the strategy's bound ({spec.range_text()})",
            f"{at}.high",
        )
    if r.log:
        if r.low <= 0:
            raise _fail(f"a log range needs low > 0; {r.name!r} has {r.low:g}", f"{at}.low")
        if r.step is not None and not (r.type == "int" and r.step == 1):
            raise _fail(
                f"a log range has no step (int log ranges step by 1); drop the step of {r.name!r}",
                f"{at}.step",
            )
    if grid and r.type == "float" and r.step is None:
        raise _fail(
            f"the grid sampler enumerates values: give float range {r.name!r} a step",
            f"{at}.step",
        )


def _check_choices(at: str, r: ParamRange, spec: ParamSpec) -> None:
    if not r.choices:
        raise _fail(f"categorical range {r.name!r} needs choices", f"{at}.choices")
    if len(set(r.choices)) != len(r.choices):
        raise _fail(f"categorical range {r.name!r} repeats a choice", f"{at}.choices")
    if r.low is not None or r.high is not None or r.step is not None or r.log:
        raise _fail(
            f"categorical range {r.name!r} takes choices only (no low, high, step or log)",
            f"{at}.choices",
        )
    for choice in r.choices:
        try:
            coerce(spec, choice)
        except InvalidArgumentError as error:
            raise _fail(f"choice {choice!r}: {error.message}", f"{at}.choices") from None


def _check_constraints(
    strategy: RuleStrategy,
    space: SearchSpace,
    constraints: Sequence[Constraint],
    settings: OptimizerSettings,
) -> None:
    ranges = {r.name: r for r in space}
    for i, c in enumerate(constraints):
        for name in c.names:
            r = ranges.get(name)
            if r is None:
                raise _fail(
                    f"constraint {c.text!r} names {name!r}, which the search space has no range "
                    f"for; ranges: {', '.join(ranges)}",
                    f"constraints[{i}]",
                )
            if r.type == "categorical":
                raise _fail(
                    f"constraint {c.text!r} compares {name!r}, a categorical range; constraints "
                    "compare int and float ranges",
                    f"constraints[{i}]",
                )
    prepare = Prepare(strategy)
    if settings.sampler == "grid":
        points = grid_points(space)
        where = "no point of the grid"
    else:
        rng = random.Random(0)
        points = (random_point(space, rng) for _ in range(FEASIBILITY_SAMPLES))
        where = f"none of {FEASIBILITY_SAMPLES} random points of the space"
    if any(feasible(tuple(constraints), p) and prepare(p) is not None for p in points):
        return
    if constraints:
        texts = "; ".join(c.text for c in constraints)
        raise _fail(
            f"{where} satisfies the constraints ({texts}) and the strategy's own rules; "
            "loosen them or widen the ranges",
            "constraints",
        )
    raise _fail(
        f"{where} satisfies the strategy {strategy.name!r}'s own rules between parameters; "
        "widen the ranges",
        "space",
    )
