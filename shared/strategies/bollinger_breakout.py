"""Volatility breakout on Bollinger bands: ``bollinger_breakout``."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from shared.pipeline.indicators import compute_indicator
from shared.spec import IndicatorSpec
from shared.strategies.params import ParamSpec, Signals, float_param, int_param
from shared.strategies.positions import hold_positions


class BollingerBreakout:
    name = "bollinger_breakout"
    description = (
        "Breakout on Bollinger bands (a 'period'-bar simple average of the close plus and minus "
        "'std' population standard deviations): go long when the close ends above the upper "
        "band, short when it ends below the lower band, and go flat when the close crosses "
        "back over the middle band (below it for a long, above it for a short). Flat during "
        "the bands' warm-up."
    )
    params: tuple[ParamSpec, ...] = (
        ParamSpec(name="period", type="int", default=20, low=2, high=1000, step=1,
                  description="bars of the moving average and standard deviation"),
        ParamSpec(name="std", type="float", default=2.0, low=0.1, high=10.0, step=0.1,
                  description="band half-width in standard deviations"),
    )  # fmt: skip

    def signals(self, bars: pd.DataFrame, params: Mapping[str, object]) -> Signals:
        spec = IndicatorSpec(
            id="bb",
            type="bollinger",
            params={"period": int_param(params, "period"), "std": float_param(params, "std")},
        )
        bands = compute_indicator(spec, bars)
        close = bars["close"].to_numpy(dtype=np.float64)
        upper, middle, lower = (bands[c].to_numpy() for c in ("upper", "middle", "lower"))
        known = ~np.isnan(middle)
        with np.errstate(invalid="ignore"):
            return hold_positions(
                known & (close > upper),
                known & (close < lower),
                known & (close < middle),
                known & (close > middle),
            )
