"""A backtest's statistics, under backtesting.py's names and with its definitions.

``equity`` is the equity curve (one value per bar), ``times`` the bars' unix seconds, ``close``
the closes, ``trades`` the closed trades. Definitions (r = a trade's return as a fraction, pl its
cash profit, dd = 1 - equity / running max of equity):

- ``Return [%]``: (last equity - first) / first. ``Buy & Hold Return [%]``: (last close - first
  close) / first close (from the first bar; backtesting.py starts at its indicators' warm-up).
- Period returns: the equity's last value per calendar day (per week, month or year when the
  bars are that far apart), as simple returns; g their geometric mean; a year has 252 periods,
  365 when weekend bars are common (> 60 % of their 2/7 share), 52, 12 or 1 for weekly, monthly
  or yearly bars. ``Return (Ann.) [%]`` = (1 + g)^year - 1. ``Volatility (Ann.) [%]`` =
  sqrt((var + (1 + g)^2)^year - (1 + g)^(2 year)), var with ddof 1.
- ``Sharpe Ratio`` = annual return / annual volatility; ``Sortino Ratio`` = annual return /
  (sqrt(mean(min(r_period, 0)^2)) x sqrt(year)), +inf when no period lost; ``Calmar Ratio`` =
  annual return / max drawdown.
- ``Max. Drawdown [%]`` = -max(dd) (zero or negative); ``Max. Drawdown Duration``: the longest
  time from a peak to the bar that regains it (or the last bar), in days.
- ``Win Rate [%]``: share of trades with pl > 0; ``Best``/``Worst Trade [%]``: max/min r;
  ``Avg. Trade [%]``: geometric mean of 1 + r, minus 1; ``Profit Factor``: sum of positive r /
  |sum of negative r|; ``Expectancy [%]``: mean r; ``SQN``: sqrt(#trades) x mean(pl) / std(pl,
  ddof 1).
- ``Exposure Time [%]``: share of bars from a trade's entry bar to its exit bar, inclusive.
- ``Equity Final [$]``, ``Equity Peak [$]``, ``Commissions [$]``: last and highest equity, and
  the commissions of all trades.

A value that is undefined is NaN: every trade stat without trades (win rate, best/worst, avg,
profit factor without losing trades, expectancy, SQN with fewer than two trades or no spread),
ratios whose denominator is 0 (Sharpe without volatility, Calmar without drawdown), the
drawdown duration when equity never fell. ``# Trades`` is a float like every value here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from shared.backtest.types import Trade

FloatArray = npt.NDArray[np.float64]

STAT_NAMES: tuple[str, ...] = (
    "Return [%]",
    "Buy & Hold Return [%]",
    "Return (Ann.) [%]",
    "Volatility (Ann.) [%]",
    "Sharpe Ratio",
    "Sortino Ratio",
    "Calmar Ratio",
    "Max. Drawdown [%]",
    "Max. Drawdown Duration",
    "# Trades",
    "Win Rate [%]",
    "Best Trade [%]",
    "Worst Trade [%]",
    "Avg. Trade [%]",
    "Profit Factor",
    "Expectancy [%]",
    "SQN",
    "Exposure Time [%]",
    "Equity Final [$]",
    "Equity Peak [$]",
    "Commissions [$]",
)
"""Every key of ``BacktestResult.stats``, in display order."""

_DAY = 86_400.0
_NAN = math.nan


def _div(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator and math.isfinite(denominator) else _NAN


def geometric_mean(returns: FloatArray) -> float:
    """exp(mean(log(1 + r))) - 1; 0 when some 1 + r <= 0, NaN without returns."""
    growth = 1.0 + np.nan_to_num(returns)
    if len(growth) == 0:
        return _NAN
    if np.any(growth <= 0.0):
        return 0.0
    return float(np.exp(np.log(growth).sum() / len(growth)) - 1.0)


def _period_days(times: FloatArray) -> int:
    """Whole days of the bars' median spacing over their last 100 (backtesting.py's rule)."""
    if len(times) < 2:
        return 0
    return int(np.median(np.diff(times[-100:])) // _DAY)


def period_returns(equity: FloatArray, times: FloatArray) -> tuple[FloatArray, float]:
    """Simple returns of the equity's last value per period, and the periods in a year."""
    days = _period_days(times)
    weekday = ((np.floor(times / _DAY).astype(np.int64) + 3) % 7) if len(times) else times
    weekends = bool(len(times)) and float(np.mean(weekday >= 5)) > 2 / 7 * 0.6
    year = {7: 52.0, 31: 12.0, 365: 1.0}.get(days, 365.0 if weekends else 252.0)
    if days in (7, 31, 365):
        index = pd.to_datetime(times, unit="s", utc=True)
        rule = {7: "W", 31: "ME", 365: "YE"}[days]
        last = pd.Series(equity, index=index).resample(rule).last().dropna().to_numpy()
    else:
        day = np.floor(times / _DAY)
        ends = np.flatnonzero(np.diff(day)) if len(day) else np.empty(0, dtype=np.int64)
        last = equity[np.append(ends, len(equity) - 1)] if len(equity) else equity
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = last[1:] / last[:-1] - 1.0
    return returns[np.isfinite(returns)].astype(np.float64), year


def max_drawdown_duration_days(drawdown: FloatArray, times: FloatArray) -> float:
    """Longest stretch from a bar at its peak to the next bar at a peak (or the last bar)."""
    if len(drawdown) == 0:
        return _NAN
    at_peak = np.unique(np.append(np.flatnonzero(drawdown == 0.0), len(drawdown) - 1))
    prev, cur = at_peak[:-1], at_peak[1:]
    gaps = cur > prev + 1
    if not gaps.any():
        return _NAN
    return float(np.max(times[cur[gaps]] - times[prev[gaps]]) / _DAY)


@dataclass(frozen=True)
class TradeColumns:
    """The closed trades as columns, one row per trade (what the stats read)."""

    entry_bar: npt.NDArray[np.int64]
    exit_bar: npt.NDArray[np.int64]
    return_pct: FloatArray
    pnl: FloatArray
    commission: FloatArray

    @classmethod
    def from_trades(cls, trades: Sequence[Trade]) -> TradeColumns:
        def column(name: str, dtype: type) -> npt.NDArray[np.generic]:
            return np.array([getattr(t, name) for t in trades], dtype=dtype)

        return cls(
            entry_bar=column("entry_bar", np.int64).astype(np.int64),
            exit_bar=column("exit_bar", np.int64).astype(np.int64),
            return_pct=column("return_pct", np.float64).astype(np.float64),
            pnl=column("pnl", np.float64).astype(np.float64),
            commission=column("commission", np.float64).astype(np.float64),
        )


def compute_stats(
    trades: TradeColumns | Sequence[Trade], equity: FloatArray, times: FloatArray, close: FloatArray
) -> dict[str, float]:
    """The stats of one backtest (the module docstring defines them)."""
    if not isinstance(trades, TradeColumns):
        trades = TradeColumns.from_trades(trades)
    n = len(equity)
    s: dict[str, float] = dict.fromkeys(STAT_NAMES, _NAN)
    if n == 0:
        s["# Trades"] = 0.0
        return s
    peak = np.maximum.accumulate(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = 1.0 - equity / peak
    held = np.zeros(n + 1, dtype=np.int64)
    np.add.at(held, trades.entry_bar, 1)
    np.add.at(held, trades.exit_bar + 1, -1)
    s["Exposure Time [%]"] = float(np.mean(np.cumsum(held[:n]) > 0) * 100.0)
    s["Equity Final [$]"] = float(equity[-1])
    s["Equity Peak [$]"] = float(equity.max())
    s["Commissions [$]"] = float(trades.commission.sum())
    s["Return [%]"] = float((equity[-1] - equity[0]) / equity[0] * 100.0)
    s["Buy & Hold Return [%]"] = float((close[-1] - close[0]) / close[0] * 100.0)

    returns, year = period_returns(equity, times)
    g = geometric_mean(returns)
    annual = (1.0 + g) ** year - 1.0
    s["Return (Ann.) [%]"] = annual * 100.0
    var = float(np.var(returns, ddof=1)) if len(returns) > 1 else _NAN
    with np.errstate(invalid="ignore"):
        vol = math.sqrt(max((var + (1.0 + g) ** 2) ** year - (1.0 + g) ** (2 * year), 0.0))
    s["Volatility (Ann.) [%]"] = vol * 100.0 if math.isfinite(var) else _NAN
    s["Sharpe Ratio"] = _div(s["Return (Ann.) [%]"], s["Volatility (Ann.) [%]"])
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2))) if len(returns) else _NAN
    if downside == 0.0 and not math.isnan(annual):
        s["Sortino Ratio"] = math.inf if annual > 0 else (_NAN if annual == 0 else -math.inf)
    else:
        s["Sortino Ratio"] = annual / (downside * math.sqrt(year))
    max_dd = float(np.nan_to_num(np.nanmax(dd))) if np.isfinite(dd).any() else 0.0
    s["Calmar Ratio"] = _div(annual, max_dd)
    s["Max. Drawdown [%]"] = -max_dd * 100.0
    s["Max. Drawdown Duration"] = max_drawdown_duration_days(dd, times)

    count = len(trades.pnl)
    s["# Trades"] = float(count)
    if count:
        r, pl = trades.return_pct / 100.0, trades.pnl
        s["Win Rate [%]"] = float(np.mean(pl > 0) * 100.0)
        s["Best Trade [%]"] = float(r.max() * 100.0)
        s["Worst Trade [%]"] = float(r.min() * 100.0)
        s["Avg. Trade [%]"] = geometric_mean(r) * 100.0
        s["Profit Factor"] = _div(float(r[r > 0].sum()), abs(float(r[r < 0].sum())))
        s["Expectancy [%]"] = float(r.mean() * 100.0)
        spread = float(np.std(pl, ddof=1)) if count > 1 else _NAN
        s["SQN"] = _div(math.sqrt(count) * float(pl.mean()), spread)
    return s
