"""Our backtest against backtesting.py (the reference) on real data: the same trades.

An SMA(10/20) crossover, always in the market (long while the fast average is above the slow
one, short otherwise; or flat otherwise, without shorts), with 0.2 % commission per fill, on
GOOG daily and EURUSD hourly. The
reference runs ``Backtest(..., exclusive_orders=True, trade_on_close=False,
finalize_trades=True)`` with a Strategy written here (nothing of the library's strategies).

What is made comparable, and why:

- Whole units: backtesting.py buys whole shares with all available cash; we match it with
  ``Sizing(whole_units=True)`` (our default trades fractional units).
- Warm-up: backtesting.py calls ``next()`` first on the bar after its slowest indicator's first
  value (bar 20 here), so it cannot act on bar 19's close; our signals exist from bar 19. Our
  signals before bar 20 are set flat.
- The end: both go flat on the second-to-last bar's close, so the last trade exits at the last
  bar's open in both (backtesting.py's ``finalize_trades`` would close at that open too, ours at
  the last close), and the reference strategy places no order on the last bar (its
  ``finalize_trades`` re-run would fill it there).
- ``Buy & Hold Return [%]`` is left out: backtesting.py measures it from the end of its
  indicators' warm-up, we from the first bar.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from shared.backtest import STAT_NAMES, BacktestSettings, Costs, Sizing, run_backtest
from shared.pipeline.market import read_market_file
from shared.strategies import get_strategy, resolve_params
from tests.support.market_files import real_file

backtesting = pytest.importorskip("backtesting")

FAST, SLOW, COMMISSION = 10, 20, 0.002


def _reference(bars: pd.DataFrame, cash: float, allow_short: bool = True) -> pd.Series:
    from backtesting import Backtest, Strategy  # type: ignore[import-untyped]

    frame = pd.DataFrame(
        {
            "Open": bars["open"].to_numpy(),
            "High": bars["high"].to_numpy(),
            "Low": bars["low"].to_numpy(),
            "Close": bars["close"].to_numpy(),
            "Volume": bars["volume"].to_numpy(),
        },
        index=bars.index.tz_localize(None),
    )
    rows = len(frame)

    def rolling_mean(values: np.ndarray, period: int) -> np.ndarray:
        return np.asarray(pd.Series(values).rolling(period).mean(), dtype=np.float64)

    class AlwaysInSmaCross(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.fast = self.I(rolling_mean, self.data.Close, FAST)
            self.slow = self.I(rolling_mean, self.data.Close, SLOW)

        def next(self) -> None:
            if len(self.data) >= rows - 1:
                self.position.close()
                return
            want = 1 if self.fast[-1] > self.slow[-1] else (-1 if allow_short else 0)
            held = 0 if not self.position else (1 if self.position.is_long else -1)
            if want != held:
                if want == 0:
                    self.position.close()
                else:
                    (self.buy if want == 1 else self.sell)()

    test = Backtest(
        frame,
        AlwaysInSmaCross,
        cash=cash,
        commission=COMMISSION,
        exclusive_orders=True,
        trade_on_close=False,
        finalize_trades=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats: pd.Series = test.run()
    return stats


@pytest.mark.parametrize(
    ("name", "cash", "allow_short"),
    [
        ("GOOG.csv", 10_000.0, True),
        ("EURUSD.csv", 10_000_000.0, True),
        ("GOOG.csv", 10_000.0, False),  # long or flat
    ],
)
def test_same_trades_and_stats_as_backtesting_py(name: str, cash: float, allow_short: bool) -> None:
    bars = read_market_file(real_file(name)).frame
    strategy = get_strategy("sma_crossover")
    signals = strategy.signals(bars, resolve_params(strategy, {"fast": FAST, "slow": SLOW}))
    signals[:SLOW] = 0
    signals[-2:] = 0
    settings = BacktestSettings(
        initial_cash=cash,
        costs=Costs(commission_pct=COMMISSION),
        sizing=Sizing(whole_units=True),
        allow_short=allow_short,
    )
    ours = run_backtest(bars, signals, settings)
    theirs = _reference(bars, cash, allow_short)
    trades = theirs["_trades"]

    assert ours.stats["# Trades"] == theirs["# Trades"] > 40
    assert [(t.entry_bar, t.exit_bar) for t in ours.trades] == list(
        zip(trades["EntryBar"].tolist(), trades["ExitBar"].tolist(), strict=True)
    )
    assert [t.size for t in ours.trades] == trades["Size"].tolist()
    np.testing.assert_allclose([t.entry_price for t in ours.trades], trades["EntryPrice"])
    np.testing.assert_allclose([t.exit_price for t in ours.trades], trades["ExitPrice"])
    np.testing.assert_allclose([t.pnl for t in ours.trades], trades["PnL"], rtol=1e-9)
    np.testing.assert_allclose(ours.equity, theirs["_equity_curve"]["Equity"], rtol=1e-9)
    assert ours.stats["Return [%]"] == pytest.approx(theirs["Return [%]"], rel=1e-9)

    for stat in STAT_NAMES:
        if stat == "Buy & Hold Return [%]":
            continue
        expected = theirs[stat]
        if isinstance(expected, pd.Timedelta):
            expected = expected / pd.Timedelta(days=1)
        if isinstance(expected, float) and math.isnan(expected):
            assert math.isnan(ours.stats[stat]), stat
        else:
            assert ours.stats[stat] == pytest.approx(float(expected), rel=1e-9), stat
