"""Trend following: ``sma_crossover``."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from shared.pipeline.indicators import ema, sma
from shared.strategies.params import ParamSpec, Signals, constraint, int_param


class SmaCrossover:
    name = "sma_crossover"
    description = (
        "Trend following with two moving averages of the close: long while the fast average is "
        "above the slow one, short (or flat where shorts are off) while it is at or below. "
        "'ma' picks simple (sma) or exponential (ema) averages; 'fast' must be shorter than "
        "'slow'. No position until both averages exist (the slow one's warm-up)."
    )
    params: tuple[ParamSpec, ...] = (
        ParamSpec(name="fast", type="int", default=10, low=2, high=500, step=1,
                  description="bars of the fast moving average"),
        ParamSpec(name="slow", type="int", default=20, low=3, high=2000, step=1,
                  description="bars of the slow moving average (longer than fast)"),
        ParamSpec(name="ma", type="categorical", default="sma", choices=("sma", "ema"),
                  description="simple (sma) or exponential (ema) moving averages"),
    )  # fmt: skip

    constraints: tuple[str, ...] = ("fast < slow",)
    """The rule ``check`` enforces, as ListStrategies shows it."""

    def check(self, params: Mapping[str, object]) -> None:
        fast, slow = int_param(params, "fast"), int_param(params, "slow")
        constraint(
            fast < slow, "fast", f"fast ({fast}) must be shorter than slow ({slow}): lower fast"
        )

    def signals(self, bars: pd.DataFrame, params: Mapping[str, object]) -> Signals:
        average = ema if params["ma"] == "ema" else sma
        close = bars["close"].astype(np.float64)
        fast = average(close, int_param(params, "fast")).to_numpy()
        slow = average(close, int_param(params, "slow")).to_numpy()
        out = np.where(fast > slow, 1, -1).astype(np.int8)
        out[np.isnan(fast) | np.isnan(slow)] = 0
        return out
