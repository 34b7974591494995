"""Backtest stats on tiny hand-worked cases (backtesting.py's definitions)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from shared.backtest import STAT_NAMES, Trade, compute_stats
from shared.backtest.stats import geometric_mean, period_returns

DAY = 86_400.0


def days(n: int, start: str = "2024-01-01", freq: str = "1D") -> np.ndarray:  # a Monday
    index = pd.date_range(start, periods=n, freq=freq, tz="UTC")
    return np.asarray(index.as_unit("ns").asi8 / 1e9, dtype=np.float64)


def trade(entry: int, exit_: int, return_pct: float, pnl: float, commission: float = 0.0) -> Trade:
    return Trade(
        entry_bar=entry,
        exit_bar=exit_,
        entry_time=0.0,
        exit_time=0.0,
        entry_price=1.0,
        exit_price=1.0,
        size=1.0,
        pnl=pnl,
        return_pct=return_pct,
        duration_s=0.0,
        exit_reason="signal",
        commission=commission,
    )


def test_hand_worked_week() -> None:
    equity = np.array([100.0, 110.0, 99.0, 121.0, 121.0])
    close = np.array([10.0, 11.0, 12.0, 13.0, 14.0])
    trades = [trade(0, 1, 10.0, 10.0, 1.0), trade(3, 3, -5.0, -5.0, 0.5), trade(4, 4, 20.0, 20.0)]
    s = compute_stats(trades, equity, days(5), close)
    assert set(s) == set(STAT_NAMES)

    assert s["Return [%]"] == pytest.approx(21.0)
    assert s["Buy & Hold Return [%]"] == pytest.approx(40.0)
    assert s["Equity Final [$]"] == 121.0 and s["Equity Peak [$]"] == 121.0
    assert s["Commissions [$]"] == pytest.approx(1.5)
    assert s["Max. Drawdown [%]"] == pytest.approx(-10.0)
    assert s["Max. Drawdown Duration"] == pytest.approx(2.0)  # peak Tue, regained Thu
    assert s["Exposure Time [%]"] == pytest.approx(80.0)  # bars 0, 1, 3, 4

    r = np.array([0.1, -0.1, 0.2222222222222222, 0.0])  # day over day
    g = 1.21 ** (1 / 4) - 1
    annual = (1 + g) ** 252 - 1  # weekdays only: 252 periods a year
    vol = math.sqrt((np.var(r, ddof=1) + (1 + g) ** 2) ** 252 - (1 + g) ** 504)
    assert s["Return (Ann.) [%]"] == pytest.approx(annual * 100)
    assert s["Volatility (Ann.) [%]"] == pytest.approx(vol * 100)
    assert s["Sharpe Ratio"] == pytest.approx(annual / vol)
    assert s["Sortino Ratio"] == pytest.approx(annual / (math.sqrt(0.01 / 4) * math.sqrt(252)))
    assert s["Calmar Ratio"] == pytest.approx(annual / 0.1)

    assert s["# Trades"] == 3
    assert s["Win Rate [%]"] == pytest.approx(200 / 3)
    assert s["Best Trade [%]"] == pytest.approx(20.0)
    assert s["Worst Trade [%]"] == pytest.approx(-5.0)
    assert s["Avg. Trade [%]"] == pytest.approx(((1.1 * 0.95 * 1.2) ** (1 / 3) - 1) * 100)
    assert s["Profit Factor"] == pytest.approx(0.30 / 0.05)
    assert s["Expectancy [%]"] == pytest.approx(25 / 3)
    pl = np.array([10.0, -5.0, 20.0])
    assert s["SQN"] == pytest.approx(math.sqrt(3) * pl.mean() / pl.std(ddof=1))


def test_no_trades_leave_trade_stats_undefined() -> None:
    equity = np.full(10, 1000.0)
    s = compute_stats([], equity, days(10), np.linspace(1, 2, 10))
    assert s["# Trades"] == 0
    assert s["Return [%]"] == 0 and s["Max. Drawdown [%]"] == 0 and s["Exposure Time [%]"] == 0
    assert s["Commissions [$]"] == 0
    undefined = [
        "Win Rate [%]", "Best Trade [%]", "Worst Trade [%]", "Avg. Trade [%]", "Profit Factor",
        "Expectancy [%]", "SQN", "Sharpe Ratio", "Calmar Ratio", "Max. Drawdown Duration",
        "Sortino Ratio",
    ]  # fmt: skip
    assert [k for k in undefined if not math.isnan(s[k])] == []


def test_one_trade_and_no_losers() -> None:
    s = compute_stats([trade(1, 2, 5.0, 50.0)], np.array([1e3, 1e3, 1.05e3]), days(3), np.ones(3))
    assert s["Win Rate [%]"] == 100 and s["Avg. Trade [%]"] == pytest.approx(5.0)
    assert math.isnan(s["Profit Factor"])  # no losing trade to divide by
    assert math.isnan(s["SQN"])  # one trade has no spread
    assert s["Sortino Ratio"] == math.inf  # no losing day


def test_period_returns_use_calendar_days_and_weekend_rule() -> None:
    hours = days(24 * 10, freq="1h")  # ten calendar days of hourly bars, weekends included
    equity = np.repeat(np.arange(1.0, 11.0), 24)
    returns, year = period_returns(equity, hours)
    assert year == 365
    assert returns == pytest.approx(np.arange(2.0, 11.0) / np.arange(1.0, 10.0) - 1)
    weekly = days(10, freq="7D")
    _, year = period_returns(np.arange(1.0, 11.0), weekly)
    assert year == 52


def test_geometric_mean() -> None:
    assert geometric_mean(np.array([0.1, -0.1])) == pytest.approx(math.sqrt(0.99) - 1)
    assert geometric_mean(np.array([0.5, -1.0])) == 0.0  # a total loss: backtesting.py's 0
    assert math.isnan(geometric_mean(np.array([])))
