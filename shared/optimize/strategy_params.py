"""From a sampler's point to the strategy's parameters.

Optuna suggests ints, floats and, for categorical ranges, the choice's text; the strategy
wants its own types (a bool parameter searched as ``("true", "false")`` gets True/False).
``resolve_params`` does the coercion and the strategy's own checks between parameters, so a
point it refuses (e.g. its ``fast < slow``) is infeasible.
"""

from __future__ import annotations

from collections.abc import Mapping

from shared.errors import InvalidArgumentError
from shared.strategies.params import ParamSpec, RuleStrategy, resolve_params


def specs(strategy: RuleStrategy) -> dict[str, ParamSpec]:
    return {p.name: p for p in strategy.params}


class Prepare:
    """Picklable: ``Prepare(strategy)(point)`` → resolved parameters, or None if refused."""

    def __init__(self, strategy: RuleStrategy) -> None:
        self.strategy = strategy

    def __call__(self, point: Mapping[str, object]) -> dict[str, object] | None:
        try:
            return resolve_params(self.strategy, point)
        except InvalidArgumentError:
            return None
