"""Fading liquidity sweeps: ``liquidity_sweep``.

A *sweep* of the highs at bar j: its high pierces the swing high (the highest high of the
``lookback`` bars before j) by more than ``pierce_depth`` (a fraction of the level), on a volume
above ``volume_spike_threshold`` times the mean volume of those same bars. A *reversal* is a
close back below that level at bar j or within the ``reversal_candles`` - 1 bars after it. At a
reversal the strategy goes short (fading the sweep); the mirror image (a sweep of the lows, a
close back above) goes long. A position is held ``hold_candles`` bars after its last entry
signal, or until the opposite signal. Every quantity at bar k uses bars up to k only.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from shared.strategies.params import ParamSpec, Signals, float_param, int_param
from shared.strategies.positions import hold_positions


class LiquiditySweep:
    name = "liquidity_sweep"
    description = (
        "Fades stop runs: when price pierces a recent swing high (low) by more than "
        "'pierce_depth' on a volume spike ('volume_spike_threshold' times the average volume "
        "of the 'lookback' bars before), and then closes back below (above) the swept level "
        "within 'reversal_candles' bars, go short (long) and hold for 'hold_candles' bars or "
        "until the opposite signal. Swing levels and the average volume come from the "
        "'lookback' bars before each bar, so nothing looks ahead."
    )
    params: tuple[ParamSpec, ...] = (
        ParamSpec(name="lookback", type="int", default=20, low=2, high=1000, step=1,
                  description="bars before each bar that define the swing high/low and the "
                  "average volume"),
        ParamSpec(name="pierce_depth", type="float", default=0.001, low=0.0, high=0.2,
                  step=0.0005, description="how far beyond the swing level the wick must reach, "
                  "as a fraction of the level (0.001 = 0.1 %)"),
        ParamSpec(name="volume_spike_threshold", type="float", default=1.5, low=0.0, high=20.0,
                  step=0.1, description="the sweep bar's volume must exceed this multiple of "
                  "the average volume (0 disables the volume condition)"),
        ParamSpec(name="reversal_candles", type="int", default=3, low=1, high=100, step=1,
                  description="bars, the sweep bar included, within which the close must come "
                  "back across the swept level"),
        ParamSpec(name="hold_candles", type="int", default=24, low=1, high=10_000, step=1,
                  description="bars a position is held after its last entry signal"),
    )  # fmt: skip

    def signals(self, bars: pd.DataFrame, params: Mapping[str, object]) -> Signals:
        lookback = int_param(params, "lookback")
        depth = float_param(params, "pierce_depth")
        spike = float_param(params, "volume_spike_threshold")
        window = int_param(params, "reversal_candles")
        high = bars["high"].astype(np.float64)
        low = bars["low"].astype(np.float64)
        close = bars["close"].to_numpy(dtype=np.float64)
        volume = bars["volume"].astype(np.float64)
        swing_high = high.rolling(lookback, min_periods=lookback).max().shift(1).to_numpy()
        swing_low = low.rolling(lookback, min_periods=lookback).min().shift(1).to_numpy()
        average = volume.rolling(lookback, min_periods=lookback).mean().shift(1).to_numpy()
        with np.errstate(invalid="ignore"):
            spiked = volume.to_numpy() > spike * average
            swept_high = spiked & (high.to_numpy() > swing_high * (1.0 + depth))
            swept_low = spiked & (low.to_numpy() < swing_low * (1.0 - depth))
        # The highest level swept within the window (a close below it reverses some sweep);
        # the lowest swept low likewise.
        high_level = pd.Series(np.where(swept_high, swing_high, -np.inf))
        low_level = pd.Series(np.where(swept_low, swing_low, np.inf))
        recent_high = high_level.rolling(window, min_periods=1).max().to_numpy()
        recent_low = low_level.rolling(window, min_periods=1).min().to_numpy()
        short = close < recent_high
        long = close > recent_low
        never = np.zeros(len(close), dtype=np.bool_)
        return hold_positions(long, short, never, never, int_param(params, "hold_candles"))
