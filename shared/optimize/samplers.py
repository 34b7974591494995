"""The request's sampler name → an Optuna sampler (seeded, so sequential runs repeat)."""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any, Literal

import optuna
from optuna.samplers import BaseSampler, GridSampler

from shared.errors import FailedPreconditionError, InvalidArgumentError
from shared.optimize.settings import SAMPLERS
from shared.optimize.space import SearchSpace, grid

SAMPLER_PACKAGES: dict[str, tuple[str, ...]] = {"gp": ("torch", "scipy"), "cmaes": ("cmaes",)}
"""Samplers that need a package beyond Optuna itself."""


class AskTellGridSampler(GridSampler):
    """Optuna's grid sampler without its end-of-grid ``study.stop()``.

    ``GridSampler.after_trial`` stops the study when the grid is done, which raises outside
    ``study.optimize``; here the loop owns stopping (it asks for exactly the grid's points).
    """

    def after_trial(self, *args: Any, **kwargs: Any) -> None:
        return None


def require_sampler(name: str) -> None:
    """Raise unless ``name`` is a sampler this installation can run."""
    if name not in SAMPLERS:
        raise InvalidArgumentError(
            f"sampler {name!r} is not one of {', '.join(SAMPLERS)}", field="sampler"
        )
    for package in SAMPLER_PACKAGES.get(name, ()):
        if importlib.util.find_spec(package) is None:
            raise FailedPreconditionError(
                f"sampler {name!r} needs the Python package {package!r}, which this trainer "
                "does not have; install it there or choose another sampler",
                field="sampler",
            )


def make_sampler(name: str, space: SearchSpace, seed: int | None) -> BaseSampler:
    require_sampler(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "grid":
            return AskTellGridSampler(dict(grid(space)), seed=seed)
        if name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if name == "tpe":
            return optuna.samplers.TPESampler(seed=seed)
        if name == "gp":
            # A backtest gives the same stats for the same parameters: no noise to model.
            return optuna.samplers.GPSampler(seed=seed, deterministic_objective=True)
        return optuna.samplers.CmaEsSampler(seed=seed)


def create_study(direction: Literal["maximize", "minimize"], sampler: BaseSampler) -> optuna.Study:
    """An in-memory study; Optuna's per-trial INFO logging is turned down to warnings."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(direction=direction, sampler=sampler)
