"""Mean reversion on the RSI: ``rsi_reversion``."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from shared.pipeline.indicators import rsi
from shared.strategies.params import ParamSpec, Signals, constraint, float_param, int_param
from shared.strategies.positions import hold_positions

MIDLINE = 50.0


class RsiReversion:
    name = "rsi_reversion"
    description = (
        "Mean reversion on Wilder's RSI of the close: buy when the RSI closes below 'lower' "
        "(oversold) and hold until it is back at 50 or above; sell short when it closes above "
        "'upper' (overbought) and hold until it is back at 50 or below. 'lower' must be below "
        "'upper'; both sit on their side of 50. Flat during the RSI's warm-up."
    )
    params: tuple[ParamSpec, ...] = (
        ParamSpec(name="period", type="int", default=14, low=2, high=500, step=1,
                  description="bars of the RSI"),
        ParamSpec(name="lower", type="float", default=30.0, low=1.0, high=50.0, step=1.0,
                  description="RSI below this is oversold: go long"),
        ParamSpec(name="upper", type="float", default=70.0, low=50.0, high=99.0, step=1.0,
                  description="RSI above this is overbought: go short"),
    )  # fmt: skip

    constraints: tuple[str, ...] = ("lower < upper",)
    """The rule ``check`` enforces, as ListStrategies shows it."""

    def check(self, params: Mapping[str, object]) -> None:
        lower, upper = float_param(params, "lower"), float_param(params, "upper")
        constraint(
            lower < upper,
            "lower",
            f"lower ({lower:g}) must be below upper ({upper:g}): lower it or raise upper",
        )

    def signals(self, bars: pd.DataFrame, params: Mapping[str, object]) -> Signals:
        value = rsi(bars["close"].astype(np.float64), int_param(params, "period")).to_numpy()
        known = ~np.isnan(value)
        with np.errstate(invalid="ignore"):
            return hold_positions(
                known & (value < float_param(params, "lower")),
                known & (value > float_param(params, "upper")),
                known & (value >= MIDLINE),
                known & (value <= MIDLINE),
            )
