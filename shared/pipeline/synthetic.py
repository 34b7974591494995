"""The built-in synthetic market: deterministic, market-like OHLCV bars from a seed.

The generator is a log-price model built only from vectorised pieces (cumulative sums and AR(1)
filters computed by pandas' EWM), so a million bars take well under a second:

    log p_t = log p_0 + A(Σ (drift_s + σ_s ε_s)) + osc_t

- ``σ_t`` follows a two-state Markov regime (calm / volatile) times an AR(1) log-volatility
  (volatility clustering); ``ε`` is Student-t (fat tails);
- ``drift_t`` is a slowly varying AR(1) trend (momentum a model can pick up);
- ``osc_t`` is a stationary AR(1) deviation (mean reversion: stretched prices tend to snap back);
- ``A`` is a very slow pull back to the start price, so even 50 M bars stay finite.

Per-bar volatility is 0.15 % x sqrt(bar length in hours) in the calm regime, 2.2x that in the
volatile one; the constants below were tuned so the default strategy's zigzag labels are roughly
balanced and a model beats chance on held-out data without the task being trivial.

The random streams are seeded from ``(seed, crc32(symbol|timeframe))``, one stream per model
component: the same inputs give an identical frame in every process and on every platform,
symbols differ from each other, and a longer series starts with the bars of a shorter one.
Several timeframes of one job are not generated separately: ``market.load_bars`` generates the
finest one and resamples the others from it.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from shared.pipeline.timeframes import timeframe_delta

SYNTHETIC_START = pd.Timestamp("2020-01-01T00:00:00Z")
"""First bar of every synthetic series (aligned to day and week boundaries)."""
_TREND = (0.015, 0.99)
"""Trend: AR(1) drift per bar (innovation in units of the base volatility, persistence)."""
_SWING = (3.5, 0.9)
"""Mean reversion: a stationary AR(1) added to the log price (innovation, persistence)."""
_ANCHOR_PHI = 1.0 - 1.0 / 20_000
"""The log price reverts to its start over ~20k bars, so very long series stay finite."""


def _ar1(innovations: npt.NDArray[np.float64], phi: float) -> npt.NDArray[np.float64]:
    """x_t = phi·x_{t-1} + e_t with x_{-1} = 0, via pandas' compiled EWM recursion.

    EWM computes y_t = (1-a)·y_{t-1} + a·u_t; with a = 1-phi and u = e/(1-phi) that is the AR(1)
    recursion. A leading zero makes the recursion start from rest.
    """
    scaled = pd.Series(np.concatenate(([0.0], innovations / (1.0 - phi))))
    out: npt.NDArray[np.float64] = scaled.ewm(alpha=1.0 - phi, adjust=False).mean().to_numpy()
    return out[1:]


def _regimes(rng: np.random.Generator, bars: int, mean_stay: float) -> npt.NDArray[np.float64]:
    """Alternating calm (0) / volatile (1) regimes with geometric durations (vectorised).

    Durations are drawn in fixed blocks so a longer series extends a shorter one.
    """
    first = int(rng.integers(0, 2))
    block = 64
    runs = rng.geometric(1.0 / mean_stay, size=block)
    while runs.sum() < bars:
        runs = np.concatenate([runs, rng.geometric(1.0 / mean_stay, size=block)])
    states = (np.arange(len(runs)) + first) % 2
    return np.repeat(states, runs)[:bars].astype(np.float64)


def synthetic_bars(
    symbol: str, timeframe: str, bars: int, seed: int, *, start: pd.Timestamp = SYNTHETIC_START
) -> pd.DataFrame:
    """``bars`` deterministic OHLCV bars of ``timeframe`` for ``symbol`` (UTC, float64)."""
    if bars < 1:
        raise ValueError("bars must be >= 1")
    step = timeframe_delta(timeframe)
    hours = step / pd.Timedelta(hours=1)
    scale = math.sqrt(hours)
    symbol_key = zlib.crc32(f"{symbol}|{timeframe}".encode())
    # One independent stream per component: each draws element by element, so the first k bars
    # of a longer series equal a k-bar series (more bars extend the same market).
    streams = np.random.SeedSequence([int(seed), symbol_key]).spawn(9)
    regime_rng, vol_rng, shock_rng, trend_rng, swing_rng, gap_rng, up_rng, down_rng, vol_noise = (
        np.random.default_rng(s) for s in streams
    )

    sigma_base = 0.0015 * scale
    regime = _regimes(regime_rng, bars, mean_stay=200.0)
    log_vol = _ar1(vol_rng.normal(0.0, 0.06, bars), 0.985)
    sigma = sigma_base * (1.0 + 1.2 * regime) * np.exp(log_vol)
    dof = 5.0
    eps = shock_rng.standard_t(dof, bars) / math.sqrt(dof / (dof - 2.0))
    drift = _ar1(trend_rng.normal(0.0, _TREND[0] * sigma_base, bars), _TREND[1])
    osc = _ar1(swing_rng.normal(0.0, _SWING[0] * sigma_base, bars), _SWING[1])

    log_returns = drift + sigma * eps
    start_price = 20.0 + (symbol_key % 48_000) / 100.0
    log_close = math.log(start_price) + _ar1(log_returns, _ANCHOR_PHI) + osc
    close = np.exp(log_close)
    prev_close = np.concatenate(([close[0] * math.exp(-log_returns[0])], close[:-1]))
    open_ = prev_close * np.exp(gap_rng.normal(0.0, 0.1, bars) * sigma)
    wick_up = np.abs(up_rng.normal(0.0, 0.5, bars)) * sigma
    wick_down = np.abs(down_rng.normal(0.0, 0.5, bars)) * sigma
    high = np.maximum(open_, close) * np.exp(wick_up)
    low = np.minimum(open_, close) * np.exp(-wick_down)
    activity = 1.0 + np.abs(log_returns) / sigma
    volume = 1e5 * hours * np.exp(vol_noise.normal(0.0, 0.3, bars)) * activity

    index = pd.date_range(start=start, periods=bars, freq=step, tz="UTC", name="timestamp")
    frame = pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume},
        index=index,
        dtype=np.float64,
    )
    return frame
