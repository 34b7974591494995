"""A rule strategy with some parameters held fixed, for an optimization's ``fixed_params``."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from shared.strategies import ParamSpec, RuleStrategy, resolve_params
from shared.strategies.params import Checked, Signals


class FixedParams:
    """``base`` whose parameters in ``fixed`` (as text) no longer vary: the search sees only the
    others, and every trial's parameters are completed with the fixed ones. A plain
    module-level class, so worker processes can unpickle it."""

    def __init__(self, base: RuleStrategy, fixed: Mapping[str, str]) -> None:
        self.base = base
        self.fixed = dict(fixed)
        self.name = base.name
        self.description = base.description
        self.params: tuple[ParamSpec, ...] = tuple(
            p for p in base.params if p.name not in self.fixed
        )

    def _complete(self, params: Mapping[str, object]) -> dict[str, object]:
        return resolve_params(self.base, {**dict(self.fixed), **dict(params)})

    def signals(self, bars: pd.DataFrame, params: Mapping[str, object]) -> Signals:
        return self.base.signals(bars, self._complete(params))

    def check(self, params: Mapping[str, object]) -> None:
        if isinstance(self.base, Checked):
            self.base.check(self._complete(params))


def with_fixed_params(strategy: RuleStrategy, fixed: Mapping[str, str]) -> RuleStrategy:
    return FixedParams(strategy, dict(fixed)) if fixed else strategy
