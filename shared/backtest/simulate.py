"""The candle-by-candle trade simulation, compiled with numba and run in resumable chunks.

Fill rules (one position at a time, all of it opened and closed at once):

- ``signals[i]`` is the position wanted after bar i's close (+1 long, -1 short, 0 flat). It is
  acted on at bar i+1's *open*: the open position closes there and the new one opens there.
  Nothing ever fills at the close that produced the signal (no look-ahead). A signal on the last
  bar is never acted on.
- Stops, when set, are placed at entry x (1 -/+ pct) and checked on every bar the trade is open,
  its entry bar included: a long's stop-loss when the low reaches it, its take-profit when the
  high does (mirrored for shorts). The fill is the stop price, or the bar's open when the bar
  opened beyond it (a gap). When both are touched in one bar the stop-loss is assumed first.
  After a stop the position stays flat until the signal changes.
- Slippage moves every fill against the trader (buys higher, sells lower); commission is
  ``fixed + pct x units x fill price`` on every fill.
- A trade still open after the last bar closes at that bar's close (reason ``end``).
- Sizing ``fraction``: units = (equity x value - fixed commission) / (fill x (1 + pct)), the
  equity being the cash once the previous position is closed; rounded down when
  ``whole_units``; an entry that cannot buy a positive size is skipped.

The state between chunks lives in two small arrays, so a chunk can stop anywhere and the next
one carries on; ``warm_up()`` compiles the loop on a tiny input (trainers call it at start so
the first real backtest does not pay the compile, about two seconds). Compiled code is cached
on disk where it can be (``shared.strategies.compiled``), so later processes load it instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shared.backtest.types import BacktestSettings
from shared.strategies import positions
from shared.strategies.compiled import compiled

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Float state slots
_CASH, _SIZE, _ENTRY_PRICE, _ENTRY_COMM, _STOP, _TAKE = range(6)
# Int state slots
_ENTRY_BAR, _N_TRADES, _BLOCKED = range(3)
# Exit reason codes (index into types.EXIT_REASONS)
_SIGNAL, _STOP_LOSS, _TAKE_PROFIT, _END = range(4)


@dataclass(frozen=True)
class SimArrays:
    """Inputs and outputs of the loop, allocated once per backtest."""

    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    signals: npt.NDArray[np.int8]
    params: FloatArray
    state: FloatArray
    istate: IntArray
    equity: FloatArray
    trade_ints: IntArray
    """Per trade: entry bar, exit bar, exit reason."""
    trade_floats: FloatArray
    """Per trade: entry price, exit price, size, pnl, commission."""


def prepare(
    open_: FloatArray,
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    signals: npt.NDArray[np.int8],
    settings: BacktestSettings,
) -> SimArrays:
    n = len(close)
    costs, sizing = settings.costs, settings.sizing
    params = np.array(
        [
            costs.commission_pct,
            costs.commission_fixed,
            costs.slippage_bps / 10_000.0,
            1.0 if sizing.mode == "fraction" else 0.0,
            sizing.value,
            1.0 if sizing.whole_units else 0.0,
            settings.stop_loss_pct or 0.0,
            settings.take_profit_pct or 0.0,
        ],
        dtype=np.float64,
    )
    state = np.zeros(6, dtype=np.float64)
    state[_CASH] = settings.initial_cash
    istate = np.zeros(3, dtype=np.int64)
    # A trade opens only where the wanted position differs from the bar before's (a stop blocks
    # re-entry until the signal changes), or from flat at the first bar: at most changes + 1.
    capacity = int(np.count_nonzero(signals[1:] != signals[:-1])) + 2
    return SimArrays(
        open=open_,
        high=high,
        low=low,
        close=close,
        signals=signals,
        params=params,
        state=state,
        istate=istate,
        equity=np.empty(n, dtype=np.float64),
        trade_ints=np.empty((capacity, 3), dtype=np.int64),
        trade_floats=np.empty((capacity, 5), dtype=np.float64),
    )


def run_chunk(arrays: SimArrays, start: int, stop: int) -> None:
    """Simulate bars ``start`` .. ``stop - 1``, carrying on from the state arrays."""
    a = arrays
    _simulate(
        a.open, a.high, a.low, a.close, a.signals, a.params, a.state, a.istate, a.equity,
        a.trade_ints, a.trade_floats, start, stop,
    )  # fmt: skip


def trade_count(arrays: SimArrays) -> int:
    return int(arrays.istate[_N_TRADES])


@compiled
def _close(
    state: FloatArray,
    istate: IntArray,
    params: FloatArray,
    trade_ints: IntArray,
    trade_floats: FloatArray,
    price: float,
    bar: int,
    reason: int,
) -> None:
    size = state[_SIZE]
    slip = params[2]
    fill = price * (1.0 - slip) if size > 0 else price * (1.0 + slip)
    commission = params[1] + params[0] * abs(size) * fill
    state[_CASH] += size * fill - commission
    k = istate[_N_TRADES]
    if k >= trade_ints.shape[0]:
        raise IndexError("trade buffer full")  # cannot happen (see prepare); never write past
    entry = state[_ENTRY_PRICE]
    trade_ints[k, 0] = istate[_ENTRY_BAR]
    trade_ints[k, 1] = bar
    trade_ints[k, 2] = reason
    trade_floats[k, 0] = entry
    trade_floats[k, 1] = fill
    trade_floats[k, 2] = size
    trade_floats[k, 3] = size * (fill - entry) - state[_ENTRY_COMM] - commission
    trade_floats[k, 4] = state[_ENTRY_COMM] + commission
    istate[_N_TRADES] = k + 1
    state[_SIZE] = 0.0


@compiled
def _open(
    state: FloatArray, istate: IntArray, params: FloatArray, price: float, side: int, bar: int
) -> None:
    pct, fixed, slip = params[0], params[1], params[2]
    fill = price * (1.0 + slip) if side > 0 else price * (1.0 - slip)
    if params[3] > 0.5:  # fraction of equity (all cash: the position is flat here)
        units = (state[_CASH] * params[4] - fixed) / (fill * (1.0 + pct))
        if params[5] > 0.5:
            units = math.floor(units)
    else:
        units = params[4]
    if not units > 0.0:
        return
    size = units * side
    commission = fixed + pct * units * fill
    state[_CASH] -= size * fill + commission
    state[_SIZE] = size
    state[_ENTRY_PRICE] = fill
    state[_ENTRY_COMM] = commission
    state[_STOP] = fill * (1.0 - side * params[6]) if params[6] > 0.0 else np.nan
    state[_TAKE] = fill * (1.0 + side * params[7]) if params[7] > 0.0 else np.nan
    istate[_ENTRY_BAR] = bar


@compiled
def _simulate(
    open_: FloatArray,
    high: FloatArray,
    low: FloatArray,
    close: FloatArray,
    signals: npt.NDArray[np.int8],
    params: FloatArray,
    state: FloatArray,
    istate: IntArray,
    equity: FloatArray,
    trade_ints: IntArray,
    trade_floats: FloatArray,
    start: int,
    stop: int,
) -> None:
    n = len(close)
    for i in range(start, stop):
        if i > 0:
            want = int(signals[i - 1])
            if want != istate[_BLOCKED]:
                istate[_BLOCKED] = 0
            else:
                want = 0
            size = state[_SIZE]
            side = 1 if size > 0 else (-1 if size < 0 else 0)
            if want != side:
                if side != 0:
                    _close(state, istate, params, trade_ints, trade_floats, open_[i], i, _SIGNAL)
                if want != 0:
                    _open(state, istate, params, open_[i], want, i)
        size = state[_SIZE]
        if size != 0.0:
            long = size > 0
            stop_price, take_price = state[_STOP], state[_TAKE]
            if not math.isnan(stop_price) and (
                low[i] <= stop_price if long else high[i] >= stop_price
            ):
                gap = open_[i] < stop_price if long else open_[i] > stop_price
                fill = open_[i] if gap else stop_price
                _close(state, istate, params, trade_ints, trade_floats, fill, i, _STOP_LOSS)
                istate[_BLOCKED] = 1 if long else -1
            elif not math.isnan(take_price) and (
                high[i] >= take_price if long else low[i] <= take_price
            ):
                gap = open_[i] > take_price if long else open_[i] < take_price
                fill = open_[i] if gap else take_price
                _close(state, istate, params, trade_ints, trade_floats, fill, i, _TAKE_PROFIT)
                istate[_BLOCKED] = 1 if long else -1
        if i == n - 1 and state[_SIZE] != 0.0:
            _close(state, istate, params, trade_ints, trade_floats, close[i], i, _END)
        equity[i] = state[_CASH] + state[_SIZE] * close[i]


def warm_up() -> None:
    """Compile the simulation loop and the strategies' state machine now (or load them from the
    on-disk cache), on tiny inputs.

    Trainers call this at start, so the first backtest of a job does not pay the compile.
    """
    prices = np.array([1.0, 1.1, 0.9, 1.0], dtype=np.float64)
    signals = np.array([1, -1, 0, 1], dtype=np.int8)
    settings = BacktestSettings(stop_loss_pct=0.05, take_profit_pct=0.05)
    arrays = prepare(prices, prices * 1.1, prices * 0.9, prices, signals, settings)
    run_chunk(arrays, 0, len(prices))
    positions.warm_up()
