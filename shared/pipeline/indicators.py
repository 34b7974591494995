"""Technical indicators: vectorised, pure, standard definitions.

Every indicator takes an OHLCV frame and returns a frame of its outputs on the same index;
warm-up rows (not enough history yet) are NaN. No progress or logging happens here: the
pipeline reports progress around these calls.

Conventions (the ones TA-Lib and Wilder's book use; tests pin them with hand-worked values):

- SMA(n): mean of the last n closes; first value at row n-1.
- EMA(n): alpha = 2/(n+1), *seeded with the SMA of the first n values* at row n-1, then
  ``ema_t = alpha·x_t + (1-alpha)·ema_{t-1}``.
- Wilder smoothing (RSI, ATR): the same recursion with alpha = 1/n, seeded with a simple mean.
- RSI(n): gains/losses of close-to-close changes; the first average covers changes 1..n, so the
  first RSI is at row n. avg_loss = 0 gives 100 (50 when there was no move at all).
- ATR(n): true range, where the first bar's TR is its high - low; first ATR (mean of the first n
  TRs) at row n-1.
- MACD(fast, slow, signal): line = EMA_fast - EMA_slow (each seeded at its own period), so the
  line starts at row slow-1; signal = EMA_signal(line) seeded from the line's first values;
  histogram = line - signal.
- Bollinger(n, k): middle = SMA(n), band = k·population std (ddof 0); width = (upper-lower)/middle.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from shared.spec import IndicatorSpec

INDICATOR_OUTPUTS: dict[str, tuple[str, ...]] = {
    "sma": ("value", "distance"),
    "ema": ("value", "distance"),
    "rsi": ("value",),
    "macd": ("line", "signal", "histogram"),
    "bollinger": ("upper", "middle", "lower", "width", "percent_b"),
    "atr": ("value", "relative"),
    "stochastic": ("k", "d"),
    "roc": ("value",),
    "williams_r": ("value",),
    "obv": ("value",),
}
"""Indicator type → output names; the first output is what a bare indicator id refers to."""

INDICATOR_PARAMS: dict[str, dict[str, float]] = {
    "sma": {"period": 20},
    "ema": {"period": 20},
    "rsi": {"period": 14},
    "macd": {"fast": 12, "slow": 26, "signal": 9},
    "bollinger": {"period": 20, "std": 2.0},
    "atr": {"period": 14},
    "stochastic": {"k_period": 14, "d_period": 3},
    "roc": {"period": 10},
    "williams_r": {"period": 14},
    "obv": {},
}
"""Indicator type → its parameters with defaults. Keys ending in ``period``/``fast``/``slow``/
``signal`` are whole numbers of bars."""

_MAX_PERIOD = 100_000
_INTEGER_PARAMS = ("period", "fast", "slow", "signal")


class ParamError(ValueError):
    """An indicator parameter that cannot be used; ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def resolve_params(indicator_type: str, params: Mapping[str, float]) -> dict[str, float]:
    """Defaults merged with ``params``; raises ``ParamError`` for unknown or invalid values."""
    defaults = INDICATOR_PARAMS[indicator_type]
    for key in params:
        if key not in defaults:
            known = ", ".join(defaults) or "none"
            raise ParamError(key, f"{indicator_type} has no parameter {key!r} (known: {known})")
    merged = {**defaults, **{k: float(v) for k, v in params.items()}}
    for key, value in merged.items():
        if not math.isfinite(value):
            raise ParamError(key, "must be a finite number")
        if key.endswith(_INTEGER_PARAMS):
            if value != int(value) or not 1 <= value <= _MAX_PERIOD:
                raise ParamError(key, f"must be a whole number of bars in 1..{_MAX_PERIOD}")
        elif value <= 0:
            raise ParamError(key, "must be > 0")
    if indicator_type == "macd" and merged["fast"] >= merged["slow"]:
        raise ParamError("fast", "the fast period must be shorter than the slow period")
    return merged


# ---------------------------------------------------------------------------------------------
# Building blocks


def seeded_ewm(values: pd.Series, period: int, alpha: float) -> pd.Series:
    """Exponential smoothing seeded with the mean of the first ``period`` valid values.

    Leading NaNs are skipped; the first output is at (first valid row + period - 1).
    """
    out = pd.Series(np.nan, index=values.index, dtype=np.float64)
    valid = values.notna().to_numpy()
    if not valid.any():
        return out
    first = int(np.argmax(valid))
    start = first + period - 1
    if start >= len(values):
        return out
    tail = values.iloc[start:].astype(np.float64)
    tail.iloc[0] = float(values.iloc[first : start + 1].mean())
    out.iloc[start:] = tail.ewm(alpha=alpha, adjust=False).mean().to_numpy()
    return out


def sma(close: pd.Series, period: int) -> pd.Series:
    return close.rolling(period, min_periods=period).mean()


def ema(close: pd.Series, period: int) -> pd.Series:
    return seeded_ewm(close, period, 2.0 / (period + 1))


def wilder(values: pd.Series, period: int) -> pd.Series:
    return seeded_ewm(values, period, 1.0 / period)


def rsi(close: pd.Series, period: int) -> pd.Series:
    delta = close.diff()
    avg_gain = wilder(delta.clip(lower=0.0), period)
    avg_loss = wilder((-delta).clip(lower=0.0), period)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    value = value.where(avg_loss != 0.0, np.where(avg_gain > 0.0, 100.0, 50.0))
    return value.where(avg_gain.notna())


def true_range(bars: pd.DataFrame) -> pd.Series:
    prev_close = bars["close"].shift(1)
    ranges = pd.concat(
        [
            bars["high"] - bars["low"],
            (bars["high"] - prev_close).abs(),
            (bars["low"] - prev_close).abs(),
        ],
        axis=1,
    )
    return ranges.max(axis=1, skipna=True)


def _rolling_extremes(bars: pd.DataFrame, period: int) -> tuple[pd.Series, pd.Series]:
    highest = bars["high"].rolling(period, min_periods=period).max()
    lowest = bars["low"].rolling(period, min_periods=period).min()
    return highest, lowest


def _ratio(numerator: pd.Series, denominator: pd.Series, flat: float) -> pd.Series:
    """numerator/denominator, ``flat`` where the denominator is 0 (a flat window)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = numerator / denominator
    return out.where(denominator != 0.0, flat).where(denominator.notna())


# ---------------------------------------------------------------------------------------------
# Indicators: (bars, params) -> frame of outputs

_Params = Mapping[str, float]


def _sma(bars: pd.DataFrame, p: _Params) -> pd.DataFrame:
    value = sma(bars["close"], int(p["period"]))
    return pd.DataFrame({"value": value, "distance": (bars["close"] - value) / value})


def _ema(bars: pd.DataFrame, p: _Params) -> pd.DataFrame:
    value = ema(bars["close"], int(p["period"]))
    return pd.DataFrame({"value": value, "distance": (bars["close"] - value) / value})


def _rsi(bars: pd.DataFrame, p: _Params) -> pd.DataFrame:
    return pd.DataFrame({"value": rsi(bars["close"], int(p["period"]))})


def _macd(bars: pd.DataFrame, p: _Params) -> pd.DataFrame:
    close = bars["close"]
    line = ema(close, int(p["fast"])) - ema(close, int(p["slow"]))
    signal = ema(line, int(p["signal"]))
    return pd.DataFrame({"line": line, "signal": signal, "histogram": line - signal})


def _bollinger(bars: pd.DataFrame, p: _Params) -> pd.DataFrame:
    period = int(p["period"])
    close = bars["close"]
    middle = sma(close, period)
    band = p["std"] * close.rolling(period, min_periods=period).std(ddof=0)
    upper, lower = middle + band, middle - band
    return pd.DataFrame(
        {
            "upper": upper,
            "middle": middle,
            "lower": lower,
            "width": (upper - lower) / middle,
            "percent_b": _ratio(close - lower, upper - lower, 0.5),
        }
    )


def _atr(bars: pd.DataFrame, p: _Params) -> pd.DataFrame:
    value = wilder(true_range(bars), int(p["period"]))
    return pd.DataFrame({"value": value, "relative": value / bars["close"]})


def _stochastic(bars: pd.DataFrame, p: _Params) -> pd.DataFrame:
    highest, lowest = _rolling_extremes(bars, int(p["k_period"]))
    k = 100.0 * _ratio(bars["close"] - lowest, highest - lowest, 0.5)
    return pd.DataFrame({"k": k, "d": sma(k, int(p["d_period"]))})


def _roc(bars: pd.DataFrame, p: _Params) -> pd.DataFrame:
    close = bars["close"]
    return pd.DataFrame({"value": 100.0 * (close / close.shift(int(p["period"])) - 1.0)})


def _williams_r(bars: pd.DataFrame, p: _Params) -> pd.DataFrame:
    highest, lowest = _rolling_extremes(bars, int(p["period"]))
    return pd.DataFrame({"value": -100.0 * _ratio(highest - bars["close"], highest - lowest, 0.5)})


def _obv(bars: pd.DataFrame, p: _Params) -> pd.DataFrame:
    direction = np.sign(bars["close"].diff().fillna(0.0))
    return pd.DataFrame({"value": (direction * bars["volume"]).cumsum()})


_COMPUTE: dict[str, Callable[[pd.DataFrame, _Params], pd.DataFrame]] = {
    "sma": _sma,
    "ema": _ema,
    "rsi": _rsi,
    "macd": _macd,
    "bollinger": _bollinger,
    "atr": _atr,
    "stochastic": _stochastic,
    "roc": _roc,
    "williams_r": _williams_r,
    "obv": _obv,
}


def compute_indicator(spec: IndicatorSpec, bars: pd.DataFrame) -> pd.DataFrame:
    """The outputs of ``spec`` over ``bars``: columns ``INDICATOR_OUTPUTS[spec.type]``, float64."""
    if spec.type not in _COMPUTE:
        raise ValueError(f"unknown indicator type {spec.type!r}")
    params = resolve_params(spec.type, spec.params)
    frame = _COMPUTE[spec.type](bars, params)
    frame = frame[list(INDICATOR_OUTPUTS[spec.type])].astype(np.float64)
    frame.index = bars.index
    return frame


def indicator_label(spec: IndicatorSpec, strategy_indicators: tuple[IndicatorSpec, ...]) -> str:
    """How progress names an indicator: ``RSI``, or ``RSI rsi_7`` when the type repeats."""
    same_type = sum(1 for other in strategy_indicators if other.type == spec.type)
    name = spec.type.upper()
    return name if same_type == 1 else f"{name} {spec.id}"
