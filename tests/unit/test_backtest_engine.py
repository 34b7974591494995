"""run_backtest on tiny hand-worked bars: fills, costs, sizing, sides, stops, the end."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from shared.backtest import BacktestSettings, Costs, Sizing, Trade, run_backtest
from shared.errors import InvalidArgumentError

Prices = Sequence[float] | npt.NDArray[np.float64]


def make_bars(
    open_: Prices,
    close: Prices | None = None,
    high: Prices | None = None,
    low: Prices | None = None,
    freq: str = "1D",
) -> pd.DataFrame:
    o = np.asarray(open_, dtype=np.float64)
    c = o.copy() if close is None else np.asarray(close, dtype=np.float64)
    h = np.maximum(o, c) if high is None else np.asarray(high, dtype=np.float64)
    lo = np.minimum(o, c) if low is None else np.asarray(low, dtype=np.float64)
    index = pd.date_range("2024-01-01", periods=len(o), freq=freq, tz="UTC")
    return pd.DataFrame(
        {"open": o, "high": h, "low": lo, "close": c, "volume": np.ones(len(o))}, index=index
    )


def sig(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int8)


def test_signal_fills_at_the_next_open() -> None:
    bars = make_bars([10, 11, 12, 13, 14], close=[10.5, 11.5, 12.5, 13.5, 14.5])
    result = run_backtest(bars, sig(1, 0, 0, 0, 0))
    (trade,) = result.trades
    assert (trade.entry_bar, trade.exit_bar) == (1, 2)
    assert (trade.entry_price, trade.exit_price) == (11.0, 12.0)
    units = 10_000 / 11
    assert trade.size == pytest.approx(units)
    assert trade.pnl == pytest.approx(units * 1.0)
    assert trade.return_pct == pytest.approx((12 / 11 - 1) * 100)
    assert trade.exit_reason == "signal"
    assert trade.entry_time == bars.index[1].timestamp()
    assert trade.duration_s == 86_400.0
    # Bar 0: flat; bar 1: long, marked at its close 11.5; from bar 2 on: flat cash.
    assert result.equity[0] == 10_000
    assert result.equity[1] == pytest.approx(units * 11.5)
    assert result.equity[2:] == pytest.approx([10_000 + units] * 3)
    assert result.stats["Return [%]"] == pytest.approx(units / 100)
    assert result.candles == 5


def test_a_signal_on_the_last_bar_is_never_acted_on() -> None:
    result = run_backtest(make_bars([10, 11, 12]), sig(0, 0, 1))
    assert result.trades == ()
    assert result.equity == pytest.approx([10_000] * 3)
    assert math.isnan(result.stats["Win Rate [%]"])
    assert result.stats["# Trades"] == 0


def test_open_trade_closes_at_the_last_close() -> None:
    bars = make_bars([10, 11, 12], close=[10, 11, 15])
    (trade,) = run_backtest(bars, sig(1, 1, 1)).trades
    assert (trade.entry_bar, trade.exit_bar, trade.exit_price) == (1, 2, 15.0)
    assert trade.exit_reason == "end"


def test_commission_and_slippage_on_every_fill() -> None:
    bars = make_bars([100, 100, 110, 110])
    costs = Costs(commission_pct=0.01, commission_fixed=2.0, slippage_bps=50)
    result = run_backtest(bars, sig(1, 0, 0, 0), BacktestSettings(costs=costs))
    (trade,) = result.trades
    buy = 100 * 1.005
    units = (10_000 - 2.0) / (buy * 1.01)
    sell = 110 * 0.995
    entry_comm = 2.0 + 0.01 * units * buy
    exit_comm = 2.0 + 0.01 * units * sell
    assert trade.entry_price == pytest.approx(buy)
    assert trade.exit_price == pytest.approx(sell)
    assert trade.size == pytest.approx(units)
    assert trade.commission == pytest.approx(entry_comm + exit_comm)
    assert trade.pnl == pytest.approx(units * (sell - buy) - entry_comm - exit_comm)
    assert result.stats["Commissions [$]"] == pytest.approx(entry_comm + exit_comm)
    assert result.equity[-1] == pytest.approx(10_000 + trade.pnl)
    # All the cash went in: equity after the entry fill is cash 0 + units at the close.
    assert result.equity[1] == pytest.approx(units * 100)
    expected_return = (sell / buy - 1) - (entry_comm + exit_comm) / (units * buy)
    assert trade.return_pct == pytest.approx(expected_return * 100)


def test_fixed_units_and_whole_units_sizing() -> None:
    bars = make_bars([30, 30, 40, 40])
    units = BacktestSettings(sizing=Sizing(mode="units", value=7))
    (trade,) = run_backtest(bars, sig(1, 0, 0, 0), units).trades
    assert trade.size == 7 and trade.pnl == pytest.approx(70)
    half_whole = BacktestSettings(sizing=Sizing(value=0.5, whole_units=True))
    (trade,) = run_backtest(bars, sig(1, 0, 0, 0), half_whole).trades
    assert trade.size == 166  # floor(5000 / 30)


def test_short_side_profits_when_price_falls() -> None:
    bars = make_bars([50, 50, 40, 40])
    result = run_backtest(bars, sig(-1, 0, 0, 0))
    (trade,) = result.trades
    assert trade.size == pytest.approx(-200)
    assert trade.pnl == pytest.approx(2000)
    assert trade.return_pct == pytest.approx(20)
    assert result.equity[-1] == pytest.approx(12_000)


def test_reversal_closes_then_opens_at_the_same_open() -> None:
    bars = make_bars([10, 10, 20, 10, 10])
    trades = run_backtest(bars, sig(1, -1, 0, 0, 0)).trades
    assert [(t.entry_bar, t.exit_bar, t.size > 0) for t in trades] == [(1, 2, True), (2, 3, False)]
    long, short = trades
    assert long.pnl == pytest.approx(10_000)
    # The short is sized from the equity after the long closed: 20,000 / 20 = 1,000 units.
    assert short.size == pytest.approx(-1000)
    assert short.pnl == pytest.approx(10_000)


def test_allow_short_false_makes_shorts_flat() -> None:
    bars = make_bars([10, 10, 20, 10, 10])
    settings = BacktestSettings(allow_short=False)
    trades = run_backtest(bars, sig(1, -1, 0, 0, 0), settings).trades
    assert [(t.entry_bar, t.exit_bar, t.size > 0) for t in trades] == [(1, 2, True)]


def test_stop_loss_fills_at_the_stop_intrabar() -> None:
    bars = make_bars([100, 100, 100, 100], low=[99, 99, 94, 99])
    settings = BacktestSettings(stop_loss_pct=0.05)
    (trade,) = run_backtest(bars, sig(1, 1, 1, 1), settings).trades
    assert trade.exit_reason == "stop_loss"
    assert trade.exit_bar == 2 and trade.exit_price == pytest.approx(95.0)


def test_stop_loss_gapped_through_fills_at_the_open() -> None:
    bars = make_bars([100, 100, 90, 90])
    settings = BacktestSettings(stop_loss_pct=0.05)
    (trade,) = run_backtest(bars, sig(1, 1, 1, 1), settings).trades
    assert (trade.exit_bar, trade.exit_price, trade.exit_reason) == (2, 90.0, "stop_loss")


def test_take_profit_and_short_stops_mirror() -> None:
    long_bars = make_bars([100, 100, 100, 100], high=[101, 101, 111, 101])
    tp = BacktestSettings(take_profit_pct=0.1)
    (trade,) = run_backtest(long_bars, sig(1, 1, 1, 1), tp).trades
    assert trade.exit_reason == "take_profit" and trade.exit_price == pytest.approx(110.0)
    short_bars = make_bars([100, 100, 100, 100], high=[101, 101, 104, 101])
    sl = BacktestSettings(stop_loss_pct=0.03)
    (trade,) = run_backtest(short_bars, sig(-1, -1, -1, -1), sl).trades
    assert trade.exit_reason == "stop_loss" and trade.exit_price == pytest.approx(103.0)


def test_stop_loss_first_when_both_are_touched_in_one_bar() -> None:
    bars = make_bars([100, 100, 100, 100], high=[100, 100, 120, 100], low=[100, 100, 80, 100])
    settings = BacktestSettings(stop_loss_pct=0.05, take_profit_pct=0.05)
    (trade,) = run_backtest(bars, sig(1, 1, 1, 1), settings).trades
    assert trade.exit_reason == "stop_loss"


def test_after_a_stop_the_position_waits_for_a_new_signal() -> None:
    low = [100, 100, 90, 100, 100, 100, 100]
    bars = make_bars([100] * 7, low=low)
    settings = BacktestSettings(stop_loss_pct=0.05)
    trades = run_backtest(bars, sig(1, 1, 1, 0, 1, 1, 1), settings).trades
    assert [(t.entry_bar, t.exit_bar, t.exit_reason) for t in trades] == [
        (1, 2, "stop_loss"),
        (5, 6, "end"),
    ]


def test_the_stop_can_hit_on_the_entry_bar() -> None:
    bars = make_bars([100, 100, 100], low=[100, 90, 100])
    settings = BacktestSettings(stop_loss_pct=0.05)
    (trade,) = run_backtest(bars, sig(1, 1, 1), settings).trades
    assert (trade.entry_bar, trade.exit_bar, trade.exit_reason) == (1, 1, "stop_loss")


def test_peeking_signals_only_earn_what_next_open_fills_allow() -> None:
    """A strategy that knows the next close (signal[i] = sign(close[i+1] - close[i])) on bars
    whose opens equal their closes: every move is a gap at the open. A fill at the signal's own
    close would collect every up move ("perfect"); a fill at the next open misses the move it
    knew about and holds the one after, which it did not know."""
    rng = np.random.default_rng(7)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 1000)))
    bars = make_bars(close)
    peek = np.zeros(len(close), dtype=np.int8)
    peek[:-1] = np.sign(np.diff(close)).astype(np.int8)
    settings = BacktestSettings(allow_short=False)
    result = run_backtest(bars, peek, settings)

    longs = np.flatnonzero(peek == 1)
    perfect = np.prod(close[longs + 1] / close[longs])
    # Held from open[i+1] (= close[i+1]) to open[i+2] (= close[i+2]); the last bar at its close.
    held = longs[longs + 2 < len(close)]
    next_open = np.prod(close[held + 2] / close[held + 1])
    assert result.equity[-1] / 10_000 == pytest.approx(next_open, rel=1e-9)
    assert perfect > 20 * next_open
    assert abs(math.log(next_open)) < 0.5  # no edge left: the knowledge was spent at the gap
    for trade in result.trades:
        assert trade.entry_price == close[trade.entry_bar]  # the open, not the signal's close
        assert peek[trade.entry_bar - 1] == 1

    shifted = np.concatenate([[0], peek[:-1]]).astype(np.int8)
    later = run_backtest(bars, shifted, settings).trades
    body = [(t.entry_bar, t.exit_bar) for t in result.trades if t.exit_reason == "signal"]
    moved = [(t.entry_bar - 1, t.exit_bar - 1) for t in later if t.exit_reason == "signal"]
    assert len(body) - 1 <= len(moved) <= len(body)  # the last may now run into the end
    assert moved == body[: len(moved)]


def test_bad_input_names_the_field() -> None:
    bars = make_bars([10, 11, 12])
    with pytest.raises(InvalidArgumentError) as err:
        run_backtest(bars, sig(1, 0))
    assert err.value.field == "signals" and "3" in err.value.message
    with pytest.raises(InvalidArgumentError) as err:
        run_backtest(bars, sig(1, 2, 0))
    assert err.value.field == "signals" and "row 1" in err.value.message
    with pytest.raises(InvalidArgumentError) as err:
        run_backtest(bars.drop(columns="low"), sig(1, 0, 0))
    assert err.value.field == "bars" and "low" in err.value.message
    broken = bars.copy()
    broken.iloc[2, 0] = np.nan
    with pytest.raises(InvalidArgumentError) as err:
        run_backtest(broken, sig(1, 0, 0))
    assert err.value.field == "bars" and "row 2" in err.value.message
    with pytest.raises(InvalidArgumentError) as err:
        run_backtest(bars.reset_index(drop=True), sig(1, 0, 0))
    assert err.value.field == "bars"


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: BacktestSettings(initial_cash=0), "settings.initial_cash"),
        (lambda: Costs(commission_pct=0.5), "settings.costs.commission_pct"),
        (lambda: Costs(commission_fixed=-1), "settings.costs.commission_fixed"),
        (lambda: Costs(slippage_bps=math.nan), "settings.costs.slippage_bps"),
        (lambda: Sizing(value=1.5), "settings.sizing.value"),
        (lambda: Sizing(mode="units", value=0), "settings.sizing.value"),
        (lambda: Sizing(mode="all"), "settings.sizing.mode"),  # type: ignore[arg-type]
        (lambda: BacktestSettings(stop_loss_pct=1.0), "settings.stop_loss_pct"),
        (lambda: BacktestSettings(take_profit_pct=-0.1), "settings.take_profit_pct"),
    ],
)
def test_settings_validation_names_the_field(make: object, field: str) -> None:
    with pytest.raises(InvalidArgumentError) as err:
        make()  # type: ignore[operator]
    assert err.value.field == field


def test_trades_are_ordinary_frozen_trades() -> None:
    bars = make_bars([10, 11, 12, 13, 14])
    (trade,) = run_backtest(bars, sig(1, 0, 0, 0, 0)).trades
    rebuilt = Trade(**dataclasses.asdict(trade))
    assert trade == rebuilt and hash(trade) == hash(rebuilt) and repr(trade) == repr(rebuilt)
    with pytest.raises(dataclasses.FrozenInstanceError):
        trade.pnl = 0.0  # type: ignore[misc]
