"""Technical indicators: vectorised, pure, standard definitions.

Every indicator takes an OHLCV frame and returns a frame of its outputs on the same index;
warm-up rows (not enough history yet) are NaN, never 0. No progress or logging happens here:
the pipeline reports progress around these calls.

Conventions (the ones TA-Lib and Wilder's book use; tests pin them with hand-worked values):

- SMA(n): mean of the last n closes; first value at row n-1.
- WMA(n): linearly weighted mean of the last n closes, weights 1..n (newest n), divided by
  n(n+1)/2; first value at row n-1.
- EMA(n): alpha = 2/(n+1), *seeded with the SMA of the first n values* at row n-1, then
  ``ema_t = alpha·x_t + (1-alpha)·ema_{t-1}``.
- Wilder smoothing (RSI, ATR, ADX): the same recursion with alpha = 1/n, seeded with a simple
  mean. (Wilder's running *sums* give the same ratios: sum = n × average.)
- RSI(n): gains/losses of close-to-close changes; the first average covers changes 1..n, so the
  first RSI is at row n. avg_loss = 0 gives 100 (50 when there was no move at all).
- ATR(n): true range, where the first bar's TR is its high - low; first ATR (mean of the first n
  TRs) at row n-1.
- MACD(fast, slow, signal): line = EMA_fast - EMA_slow (each seeded at its own period), so the
  line starts at row slow-1; signal = EMA_signal(line) seeded from the line's first values;
  histogram = line - signal; histogram_pct = histogram / close (scale-free).
- Bollinger(n, k): middle = SMA(n), band = k·population std (ddof 0); width = (upper-lower)/middle.
- Stochastic(k, d, smooth_k): raw %K over k bars; %K = SMA_smooth_k(raw) (smooth_k 1: the fast
  stochastic); %D = SMA_d(%K). A flat window (high == low) gives 50.
- Williams %R(n): -100·(highest - close)/(highest - lowest); a flat window gives -50.
- ROC(n) = 100·(close/close[n] - 1); Momentum(n) = close - close[n]; both first at row n.
- CCI(n): typical price TP = (high+low+close)/3; (TP - SMA_n(TP)) / (0.015 · mean absolute
  deviation of TP about that SMA); first at row n-1; a flat window gives 0.
- ADX(n) (Wilder): +DM = H_t-H_{t-1} when that exceeds L_{t-1}-L_t and is > 0 (else 0), -DM the
  mirror; TR needs the previous close, so the first TR/DM is at row 1. ±DI = 100·Wilder(±DM)/
  Wilder(TR), first at row n; DX = 100·|+DI - -DI|/(+DI + -DI); ADX = Wilder(DX), first at row
  2n-1 (TA-Lib's lookback). No movement at all gives DI 0 and DX 0.
- OBV: running sum of ±volume by the sign of the close change; the first bar is the origin (0).
- MFI(n): raw money flow TP·volume, positive when TP rose, negative when it fell (unchanged
  bars count for neither); 100·pos/(pos+neg) over the last n changes, first at row n. No
  negative flow gives 100; no flow at all (flat prices or zero volume) gives 50.
- VWAP(period): sum(TP·volume)/sum(volume), cumulative since the first bar when period is 0
  (no warm-up), else over the last ``period`` bars (first at row period-1). Where no volume
  traded in the window the equal-weighted mean of TP stands in (never inf). distance =
  close/vwap - 1 (scale-free, like the moving averages' distance).

KTRDR v3 names: ``TYPE_ALIASES`` and ``PARAM_ALIASES`` below are the one place aliases live.
``INDICATOR_OUTPUTS`` has a key for every alias too (the spec validator looks types up there);
``INDICATOR_TYPES`` lists the canonical types only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from shared.spec import IndicatorSpec

# ---------------------------------------------------------------------------------------------
# Catalogue

_OUTPUTS: dict[str, tuple[str, ...]] = {
    "sma": ("value", "distance"),
    "ema": ("value", "distance"),
    "wma": ("value", "distance"),
    "rsi": ("value",),
    "macd": ("line", "signal", "histogram", "histogram_pct"),
    "bollinger": ("upper", "middle", "lower", "width", "percent_b"),
    "atr": ("value", "relative"),
    "stochastic": ("k", "d"),
    "roc": ("value",),
    "momentum": ("value",),
    "williams_r": ("value",),
    "cci": ("value",),
    "adx": ("adx", "plus_di", "minus_di"),
    "obv": ("value",),
    "mfi": ("value",),
    "vwap": ("value", "distance"),
}

INDICATOR_PARAMS: dict[str, dict[str, float]] = {
    "sma": {"period": 20},
    "ema": {"period": 20},
    "wma": {"period": 20},
    "rsi": {"period": 14},
    "macd": {"fast": 12, "slow": 26, "signal": 9},
    "bollinger": {"period": 20, "std": 2.0},
    "atr": {"period": 14},
    "stochastic": {"k_period": 14, "d_period": 3, "smooth_k": 1},
    "roc": {"period": 10},
    "momentum": {"period": 10},
    "williams_r": {"period": 14},
    "cci": {"period": 20},
    "adx": {"period": 14},
    "obv": {},
    "mfi": {"period": 14},
    "vwap": {"period": 0},
}
"""Canonical indicator type → its parameters with defaults. Keys ending in ``period``/``fast``/
``slow``/``signal`` and ``smooth_k`` are whole numbers of bars (>= 1; vwap's period may be 0)."""

TYPE_ALIASES: dict[str, str] = {
    "bbands": "bollinger",
    "bollinger_bands": "bollinger",
    "bollingerbands": "bollinger",
    "stoch": "stochastic",
    "williams": "williams_r",
    "willr": "williams_r",
    "williamsr": "williams_r",
    "mom": "momentum",
}
"""Other names for an indicator type (KTRDR v3 YAML spellings) → the canonical type."""

PARAM_ALIASES: dict[str, dict[str, str]] = {
    "macd": {"fast_period": "fast", "slow_period": "slow", "signal_period": "signal"},
    "bollinger": {"multiplier": "std"},
}
"""Canonical type → {other parameter name (KTRDR v3) → canonical parameter name}."""

INDICATOR_TYPES: tuple[str, ...] = tuple(_OUTPUTS)
"""The canonical indicator types, without aliases."""

INDICATOR_OUTPUTS: dict[str, tuple[str, ...]] = {
    **_OUTPUTS,
    **{alias: _OUTPUTS[target] for alias, target in TYPE_ALIASES.items()},
}
"""Indicator type or alias → output names; the first output is what a bare indicator id refers
to. New outputs are only ever appended, so an id's default output never changes."""

_MAX_PERIOD = 100_000
_INTEGER_PARAMS = ("period", "fast", "slow", "signal", "smooth_k")
_MIN_BARS: dict[tuple[str, str], int] = {("vwap", "period"): 0}
"""(type, parameter) → smallest allowed whole number where it is not 1."""


def canonical_type(indicator_type: str) -> str:
    """The canonical name of ``indicator_type`` (itself when it is not an alias)."""
    return TYPE_ALIASES.get(indicator_type, indicator_type)


class ParamError(ValueError):
    """An indicator parameter that cannot be used; ``key`` names it as the request spelled it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


def resolve_params(indicator_type: str, params: Mapping[str, float]) -> dict[str, float]:
    """Defaults merged with ``params`` under canonical names (aliases of type and parameter
    names accepted); raises ``ParamError`` for unknown or invalid values."""
    canonical = canonical_type(indicator_type)
    if canonical not in INDICATOR_PARAMS:
        raise ValueError(f"unknown indicator type {indicator_type!r}")
    defaults = INDICATOR_PARAMS[canonical]
    renames = PARAM_ALIASES.get(canonical, {})
    given: dict[str, float] = {}
    spelled: dict[str, str] = {}  # canonical parameter -> the name the request used
    for key, value in params.items():
        name = renames.get(key, key)
        if name not in defaults:
            known = ", ".join([*defaults, *renames]) or "none"
            raise ParamError(key, f"{indicator_type} has no parameter {key!r} (known: {known})")
        if name in given:
            raise ParamError(key, f"same parameter as {spelled[name]!r}: give only one")
        given[name] = float(value)
        spelled[name] = key
    merged = {**defaults, **given}
    for name, value in merged.items():
        key = spelled.get(name, name)
        if not math.isfinite(value):
            raise ParamError(key, "must be a finite number")
        if name.endswith(_INTEGER_PARAMS):
            low = _MIN_BARS.get((canonical, name), 1)
            if value != int(value) or not low <= value <= _MAX_PERIOD:
                raise ParamError(key, f"must be a whole number of bars in {low}..{_MAX_PERIOD}")
        elif value <= 0:
            raise ParamError(key, "must be > 0")
    if canonical == "macd" and merged["fast"] >= merged["slow"]:
        raise ParamError(
            spelled.get("fast", "fast"), "the fast period must be shorter than the slow period"
        )
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


_WMA_DIRECT_MAX = 1024
"""Periods up to this take the exact sliding dot product; longer ones the O(rows) form."""


def wma(close: pd.Series, period: int) -> pd.Series:
    """Linearly weighted moving average (weights 1..n, newest n).

    Up to ``_WMA_DIRECT_MAX`` bars: a direct convolution, each value a dot product of its own
    window (O(rows·period)). Longer: the weight of x_j in the window ending at t is j - (t - n),
    so the numerator is ``sum(j·x_j) - (t - n)·sum(x_j)``: two rolling sums, O(rows), with a
    relative rounding error of about rows·1e-16/period (negligible at such periods).
    """
    values = close.to_numpy(dtype=np.float64)
    out: npt.NDArray[np.float64] = np.full(len(values), np.nan)
    divisor = period * (period + 1) / 2.0
    if len(values) < period:
        return pd.Series(out, index=close.index)
    if period <= _WMA_DIRECT_MAX:
        weights = np.arange(period, 0, -1, dtype=np.float64)  # reversed by the convolution
        out[period - 1 :] = np.convolve(values, weights, mode="valid") / divisor
        return pd.Series(out, index=close.index)
    series = pd.Series(values, index=close.index)
    position = pd.Series(np.arange(len(values), dtype=np.float64), index=close.index)
    window_sum = series.rolling(period, min_periods=period).sum()
    weighted_sum = (position * series).rolling(period, min_periods=period).sum()
    return (weighted_sum - (position - period) * window_sum) / divisor


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


def typical_price(bars: pd.DataFrame) -> pd.Series:
    return (bars["high"] + bars["low"] + bars["close"]) / 3.0


def true_range(bars: pd.DataFrame) -> pd.Series:
    """max(high - low, |high - prev close|, |low - prev close|); the first bar's is high - low."""
    high = bars["high"].to_numpy(dtype=np.float64)
    low = bars["low"].to_numpy(dtype=np.float64)
    prev_close = bars["close"].shift(1).to_numpy(dtype=np.float64)
    # fmax ignores a NaN previous close (first bar), as max(skipna=True) would.
    value = np.fmax(high - low, np.fmax(np.abs(high - prev_close), np.abs(low - prev_close)))
    return pd.Series(value, index=bars.index)


def _rolling_extremes(bars: pd.DataFrame, period: int) -> tuple[pd.Series, pd.Series]:
    highest = bars["high"].rolling(period, min_periods=period).max()
    lowest = bars["low"].rolling(period, min_periods=period).min()
    return highest, lowest


def _ratio(numerator: pd.Series, denominator: pd.Series, flat: float) -> pd.Series:
    """numerator/denominator, ``flat`` where the denominator is 0 (a flat window)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = numerator / denominator
    return out.where(denominator != 0.0, flat).where(denominator.notna())


_MAD_CHUNK = 1 << 20
"""Elements per block of windows in ``_rolling_mean_abs_dev`` (bounds memory to ~8 MB)."""


def _rolling_mean_abs_dev(values: pd.Series, period: int, mean: pd.Series) -> pd.Series:
    """Mean |x_j - mean_t| over each window of ``period`` values ending at t.

    The deviation is about each window's own mean, so no running-sum trick applies: the
    windows are strided views, processed a block of rows at a time (O(rows·period)).
    """
    x = values.to_numpy(dtype=np.float64)
    m = mean.to_numpy(dtype=np.float64)
    out: npt.NDArray[np.float64] = np.full(len(x), np.nan)
    if len(x) < period:
        return pd.Series(out, index=values.index)
    windows = np.lib.stride_tricks.sliding_window_view(x, period)
    centres = m[period - 1 :]
    step = max(1, _MAD_CHUNK // period)
    for start in range(0, len(windows), step):
        block = windows[start : start + step]
        dev = np.abs(block - centres[start : start + step, None]).mean(axis=1)
        out[period - 1 + start : period - 1 + start + len(block)] = dev
    return pd.Series(out, index=values.index)


# ---------------------------------------------------------------------------------------------
# Indicators: (bars, params) -> frame of outputs

_Params = Mapping[str, float]


def _distance(close: pd.Series, value: pd.Series) -> pd.Series:
    return (close - value) / value


def _sma(bars: pd.DataFrame, p: _Params) -> pd.DataFrame:
    value = sma(bars["close"], int(p["period"]))
    return pd.DataFrame({"value": value, "distance": _distance(bars["close"], value)})


def _ema(bars: pd.DataFrame, p: _Params) -> pd.DataFrame:
    value = ema(bars["close"], int(p["period"]))
    return pd.DataFrame({"value": value, "distance": _distance(bars["close"], value)})


def _wma(bars: pd.DataFrame, p: _Params) -> pd.DataFrame:
    value = wma(bars["close"], int(p["period"]))
    return pd.DataFrame({"value": value, "distance": _distance(bars["close"], value)})


def _rsi(bars: pd.DataFrame, p: _Params) -> pd.DataFrame:
    return pd.DataFrame({"value": rsi(bars["close"], int(p["period"]))})


def _macd(bars: pd.DataFrame, p: _Params) -> pd.DataFrame:
    close = bars["close"]
    line = ema(close, int(p["fast"])) - ema(close, int(p["slow"]))
    signal = ema(line, int(p["signal"]))
    histogram = line - signal
    return pd.DataFrame(
        {
            "line": line,
            "signal": signal,
            "histogram": histogram,
            "histogram_pct": histogram / close,
        }
    )


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
    smooth = int(p["smooth_k"])
    if smooth > 1:
        k = sma(k, smooth)
    return pd.DataFrame({"k": k, "d": sma(k, int(p["d_period"]))})


def _roc(bars: pd.DataFrame, p: _Params) -> pd.DataFrame:
    close = bars["close"]
    return pd.DataFrame({"value": 100.0 * (close / close.shift(int(p["period"])) - 1.0)})


def _momentum(bars: pd.DataFrame, p: _Params) -> pd.DataFrame:
    close = bars["close"]
    return pd.DataFrame({"value": close - close.shift(int(p["period"]))})


def _williams_r(bars: pd.DataFrame, p: _Params) -> pd.DataFrame:
    highest, lowest = _rolling_extremes(bars, int(p["period"]))
    return pd.DataFrame({"value": -100.0 * _ratio(highest - bars["close"], highest - lowest, 0.5)})


def _cci(bars: pd.DataFrame, p: _Params) -> pd.DataFrame:
    period = int(p["period"])
    tp = typical_price(bars)
    mean = tp.rolling(period, min_periods=period).mean()
    deviation = _rolling_mean_abs_dev(tp, period, mean)
    # A flat window (exact extremes equal) reads 0: its deviation is 0 (0/0), and any rounding
    # residue left in its mean and deviation would be of one size, a garbage ratio of ±66.7.
    window = tp.rolling(period, min_periods=period)
    flat = window.max() == window.min()
    with np.errstate(divide="ignore", invalid="ignore"):
        value = (tp - mean) / (0.015 * deviation)
    return pd.DataFrame({"value": value.where(~flat, 0.0).where(mean.notna())})


def _adx(bars: pd.DataFrame, p: _Params) -> pd.DataFrame:
    period = int(p["period"])
    up = bars["high"].diff()
    down = -bars["low"].diff()
    plus_dm = up.where((up > down) & (up > 0.0), 0.0).where(up.notna())
    minus_dm = down.where((down > up) & (down > 0.0), 0.0).where(down.notna())
    tr = true_range(bars).where(bars["close"].shift(1).notna())
    smoothed_tr = wilder(tr, period)
    plus_di = 100.0 * _ratio(wilder(plus_dm, period), smoothed_tr, 0.0)
    minus_di = 100.0 * _ratio(wilder(minus_dm, period), smoothed_tr, 0.0)
    dx = 100.0 * _ratio((plus_di - minus_di).abs(), plus_di + minus_di, 0.0)
    return pd.DataFrame({"adx": wilder(dx, period), "plus_di": plus_di, "minus_di": minus_di})


def _obv(bars: pd.DataFrame, p: _Params) -> pd.DataFrame:
    direction = np.sign(bars["close"].diff().fillna(0.0))
    return pd.DataFrame({"value": (direction * bars["volume"]).cumsum()})


def _mfi(bars: pd.DataFrame, p: _Params) -> pd.DataFrame:
    period = int(p["period"])
    tp = typical_price(bars)
    flow = tp * bars["volume"]
    change = tp.diff()
    # A window whose terms are all 0 sums to exactly 0 (pandas restarts on a run of equal
    # values), so "no negative flow" is tested exactly; the tests pin it.
    positive = flow.where(change > 0.0, 0.0).where(change.notna()).rolling(period).sum()
    negative = flow.where(change < 0.0, 0.0).where(change.notna()).rolling(period).sum()
    return pd.DataFrame({"value": 100.0 * _ratio(positive, positive + negative, 0.5)})


def _vwap(bars: pd.DataFrame, p: _Params) -> pd.DataFrame:
    period = int(p["period"])
    tp = typical_price(bars)
    volume = bars["volume"]
    if period == 0:
        pv_sum, volume_sum, equal_weight = (tp * volume).cumsum(), volume.cumsum(), tp.expanding()
    else:
        pv_sum = (tp * volume).rolling(period).sum()
        volume_sum = volume.rolling(period).sum()
        equal_weight = tp.rolling(period)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = pv_sum / volume_sum
    value = value.where(volume_sum > 0.0, equal_weight.mean())
    return pd.DataFrame({"value": value, "distance": _distance(bars["close"], value)})


_COMPUTE: dict[str, Callable[[pd.DataFrame, _Params], pd.DataFrame]] = {
    "sma": _sma,
    "ema": _ema,
    "wma": _wma,
    "rsi": _rsi,
    "macd": _macd,
    "bollinger": _bollinger,
    "atr": _atr,
    "stochastic": _stochastic,
    "roc": _roc,
    "momentum": _momentum,
    "williams_r": _williams_r,
    "cci": _cci,
    "adx": _adx,
    "obv": _obv,
    "mfi": _mfi,
    "vwap": _vwap,
}


def compute_indicator(spec: IndicatorSpec, bars: pd.DataFrame) -> pd.DataFrame:
    """The outputs of ``spec`` over ``bars``: columns ``INDICATOR_OUTPUTS[spec.type]``, float64.

    ``spec.type`` and its parameter names may be aliases (``TYPE_ALIASES``, ``PARAM_ALIASES``).
    """
    indicator_type = canonical_type(spec.type)
    if indicator_type not in _COMPUTE:
        raise ValueError(f"unknown indicator type {spec.type!r}")
    params = resolve_params(spec.type, spec.params)
    frame = _COMPUTE[indicator_type](bars, params)
    frame = frame[list(_OUTPUTS[indicator_type])].astype(np.float64)
    frame.index = bars.index
    return frame


def indicator_label(spec: IndicatorSpec, strategy_indicators: tuple[IndicatorSpec, ...]) -> str:
    """How progress names an indicator: ``RSI``, or ``RSI rsi_7`` when the type repeats."""
    same_type = sum(1 for other in strategy_indicators if other.type == spec.type)
    name = spec.type.upper()
    return name if same_type == 1 else f"{name} {spec.id}"


# ---------------------------------------------------------------------------------------------
# Definitions in words, for the artifact: what a consumer needs to recompute every output
# without this code. ``t`` is a bar (oldest first), ``n`` the indicator's period; every output
# is NaN until its history is complete (the warm-up), never 0.

SMOOTHING_RULES: dict[str, str] = {
    "SMA(n, x)": "mean of x[t-n+1..t]; first value at the row where n values exist",
    "EMA(n, x)": (
        "alpha = 2/(n+1); leading NaNs of x are skipped; the first value, at the first valid "
        "row + n - 1, is the simple mean of the first n valid values (the seed); then "
        "e[t] = alpha*x[t] + (1-alpha)*e[t-1]"
    ),
    "Wilder(n, x)": "EMA(n, x) with alpha = 1/n, seeded the same way (the mean of the first n)",
}
"""The moving averages the definitions below use."""

DEFINITIONS: dict[str, dict[str, str]] = {
    "sma": {
        "value": "SMA(period, close)",
        "distance": "(close - value) / value",
    },
    "ema": {
        "value": "EMA(period, close)",
        "distance": "(close - value) / value",
    },
    "wma": {
        "value": "sum_{k=1..n} k*close[t-n+k] / (n*(n+1)/2), n = period (newest weight n)",
        "distance": "(close - value) / value",
    },
    "rsi": {
        "value": (
            "d[t] = close[t] - close[t-1] (from row 1); G = Wilder(period, max(d, 0)), "
            "L = Wilder(period, max(-d, 0)); 100 - 100/(1 + G/L); where L = 0: 100 if G > 0 "
            "else 50; first value at row period"
        ),
    },
    "macd": {
        "line": "EMA(fast, close) - EMA(slow, close); first value at row slow-1",
        "signal": "EMA(signal, line), seeded with the mean of the line's first `signal` values",
        "histogram": "line - signal",
        "histogram_pct": "histogram / close",
    },
    "bollinger": {
        "middle": "SMA(period, close)",
        "upper": "middle + std * pstd(close[t-n+1..t]) (population standard deviation, ddof 0)",
        "lower": "middle - std * pstd(close[t-n+1..t])",
        "width": "(upper - lower) / middle",
        "percent_b": "(close - lower) / (upper - lower); 0.5 where upper = lower",
    },
    "atr": {
        "value": (
            "TR[t] = max(high - low, |high - close[t-1]|, |low - close[t-1]|), "
            "TR[0] = high[0] - low[0]; Wilder(period, TR); first value at row period-1"
        ),
        "relative": "value / close",
    },
    "stochastic": {
        "k": (
            "HH, LL = highest high, lowest low of the last k_period bars; raw = 100*(close - LL)"
            "/(HH - LL), 50 where HH = LL; k = raw when smooth_k = 1, else SMA(smooth_k, raw)"
        ),
        "d": "SMA(d_period, k)",
    },
    "roc": {"value": "100 * (close[t] / close[t-period] - 1)"},
    "momentum": {"value": "close[t] - close[t-period]"},
    "williams_r": {
        "value": (
            "-100 * (HH - close) / (HH - LL) over the last period bars (HH highest high, LL "
            "lowest low); -50 where HH = LL"
        ),
    },
    "cci": {
        "value": (
            "TP = (high + low + close)/3; m = SMA(period, TP); md[t] = mean |TP[j] - m[t]| over "
            "the window; (TP - m) / (0.015 * md); 0 where the window's TP is flat"
        ),
    },
    "adx": {
        "plus_di": (
            "from row 1: up = high[t] - high[t-1], down = low[t-1] - low[t]; +DM = up where "
            "up > down and up > 0 else 0; TR as atr's (from row 1); 100 * Wilder(period, +DM) / "
            "Wilder(period, TR), 0 where Wilder(TR) = 0; first value at row period"
        ),
        "minus_di": "the mirror: -DM = down where down > up and down > 0 else 0",
        "adx": (
            "DX = 100 * |plus_di - minus_di| / (plus_di + minus_di), 0 where the sum is 0; "
            "Wilder(period, DX); first value at row 2*period - 1"
        ),
    },
    "obv": {
        "value": "sum over j <= t of sign(close[j] - close[j-1]) * volume[j]; row 0 counts 0",
    },
    "mfi": {
        "value": (
            "TP = (high + low + close)/3, flow = TP*volume; over the last period rows (from row "
            "1): pos = sum of flow where TP rose, neg = sum where it fell; 100*pos/(pos + neg), "
            "50 where pos + neg = 0; first value at row period"
        ),
    },
    "vwap": {
        "value": (
            "TP = (high + low + close)/3; sum(TP*volume)/sum(volume), cumulative from the first "
            "bar when period = 0, else over the last period bars; where that volume is 0, the "
            "plain mean of TP over the same bars"
        ),
        "distance": "(close - value) / value",
    },
}
"""Canonical indicator type → output → its definition."""


def describe_indicator(spec: IndicatorSpec) -> dict[str, object]:
    """What the artifact records of one indicator: id, canonical type, every parameter resolved
    (defaults filled in), and the definition of each output (the first is the default one)."""
    canonical = canonical_type(spec.type)
    params = resolve_params(spec.type, spec.params)
    return {
        "id": spec.id,
        "type": canonical,
        "params": {k: int(v) if k.endswith(_INTEGER_PARAMS) else v for k, v in params.items()},
        "outputs": {name: DEFINITIONS[canonical][name] for name in _OUTPUTS[canonical]},
    }
