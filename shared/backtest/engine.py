"""``run_backtest``: bars and signals in, trades, equity and stats out (pure, synchronous).

The simulation (``shared.backtest.simulate``: fill rules there) runs in chunks of about 1 % of
the candles; between chunks the cancellation token is checked and a throttled progress report
(``shared.backtest.progress``) may go to the reporter under stage ``"trades"``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from shared.backtest import simulate
from shared.backtest.progress import ThrottledReporter, throttled
from shared.backtest.stats import TradeColumns, compute_stats
from shared.backtest.types import (
    EXIT_REASONS,
    BacktestReporter,
    BacktestResult,
    BacktestSettings,
    FloatArray,
    Trade,
)
from shared.cancellation import CancellationToken
from shared.errors import InvalidArgumentError

PRICE_COLUMNS = ("open", "high", "low", "close")
CHUNKS = 100
"""The simulation runs in this many chunks (fewer for fewer candles)."""


def bar_times(bars: pd.DataFrame) -> FloatArray:
    """The bars' timestamps as unix seconds (a naive index is read as UTC)."""
    index = bars.index
    if not isinstance(index, pd.DatetimeIndex):
        raise InvalidArgumentError(
            f"bars need a DatetimeIndex of bar open times, not {type(index).__name__}",
            field="bars",
        )
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return np.asarray(index.as_unit("ns").asi8, dtype=np.float64) / 1e9


def price_columns(bars: pd.DataFrame) -> dict[str, FloatArray]:
    """open/high/low/close as float64 arrays (column names in any case); finite and > 0."""
    names = {str(c).lower(): c for c in bars.columns}
    missing = [c for c in PRICE_COLUMNS if c not in names]
    if missing:
        raise InvalidArgumentError(
            f"bars lack column(s) {', '.join(missing)} (need open, high, low, close)",
            field="bars",
        )
    out: dict[str, FloatArray] = {}
    for name in PRICE_COLUMNS:
        values = np.ascontiguousarray(bars[names[name]].to_numpy(dtype=np.float64))
        bad = ~(np.isfinite(values) & (values > 0.0))
        if bad.any():
            row = int(np.argmax(bad))
            raise InvalidArgumentError(
                f"bars' {name} must be finite and > 0; row {row} ({bars.index[row]}) is "
                f"{values[row]!r}",
                field="bars",
            )
        out[name] = values
    return out


def as_signals(signals: npt.ArrayLike, rows: int, allow_short: bool) -> npt.NDArray[np.int8]:
    """``signals`` checked (one per bar, each -1, 0 or 1) as int8; -1 becomes 0 without shorts."""
    values = np.asarray(signals)
    if values.ndim != 1 or len(values) != rows:
        raise InvalidArgumentError(
            f"signals need one value per bar ({rows}), got shape {values.shape}", field="signals"
        )
    bad = ~np.isin(values, (-1, 0, 1))
    if bad.any():
        row = int(np.argmax(bad))
        raise InvalidArgumentError(
            f"signals are -1 (short), 0 (flat) or 1 (long); row {row} is {values[row]!r}",
            field="signals",
        )
    out = values.astype(np.int8)
    if not allow_short:
        out = np.maximum(out, np.int8(0))
    return np.ascontiguousarray(out)


def _trades(
    arrays: simulate.SimArrays, times: FloatArray
) -> tuple[tuple[Trade, ...], TradeColumns]:
    k = simulate.trade_count(arrays)
    ints, floats = arrays.trade_ints[:k], arrays.trade_floats[:k]
    entry_bar, exit_bar = ints[:, 0].copy(), ints[:, 1].copy()
    entry, exit_, size, pnl, commission = (floats[:, j].copy() for j in range(5))
    returns = (np.sign(size) * (exit_ / entry - 1.0) - commission / (np.abs(size) * entry)) * 100
    columns = TradeColumns(entry_bar, exit_bar, returns, pnl, commission)
    entry_time, exit_time = times[entry_bar], times[exit_bar]
    reasons = [EXIT_REASONS[code] for code in ints[:, 2].tolist()]
    rows = zip(
        entry_bar.tolist(),
        exit_bar.tolist(),
        entry_time.tolist(),
        exit_time.tolist(),
        entry.tolist(),
        exit_.tolist(),
        size.tolist(),
        pnl.tolist(),
        returns.tolist(),
        (exit_time - entry_time).tolist(),
        reasons,
        commission.tolist(),
        strict=True,
    )
    return tuple(Trade(*row) for row in rows), columns


def simulate_bars(
    bars: pd.DataFrame,
    signals: npt.ArrayLike,
    settings: BacktestSettings,
    reporter: ThrottledReporter | None,
    cancel: CancellationToken | None,
) -> BacktestResult:
    """``run_backtest`` with the reporter already throttled (``run_strategy`` shares one)."""
    if not isinstance(settings, BacktestSettings):
        raise InvalidArgumentError("settings must be a BacktestSettings", field="settings")
    times = bar_times(bars)
    n = len(times)
    if n == 0:
        raise InvalidArgumentError(
            "bars are empty: a backtest needs at least one bar", field="bars"
        )
    prices = price_columns(bars)
    wanted = as_signals(signals, n, settings.allow_short)
    arrays = simulate.prepare(
        prices["open"], prices["high"], prices["low"], prices["close"], wanted, settings
    )
    step = max(1, math.ceil(n / CHUNKS))
    for start in range(0, n, step):
        if cancel is not None:
            cancel.raise_if_cancelled()
        stop = min(n, start + step)
        simulate.run_chunk(arrays, start, stop)
        if reporter is not None:
            reporter.candles("trades", stop, n)
    trades, columns = _trades(arrays, times)
    stats = compute_stats(columns, arrays.equity, times, prices["close"])
    return BacktestResult(trades=trades, equity=arrays.equity, times=times, stats=stats, candles=n)


def run_backtest(
    bars: pd.DataFrame,
    signals: npt.ArrayLike,
    settings: BacktestSettings | None = None,
    *,
    reporter: BacktestReporter | None = None,
    cancel: CancellationToken | None = None,
) -> BacktestResult:
    """Simulate trading ``signals`` on ``bars``.

    ``bars``: columns open, high, low, close (volume unused) indexed by bar open time (tz-aware,
    or naive read as UTC). ``signals``: one per bar, the position wanted after that bar's close
    (+1 long, -1 short, 0 flat), filled at the next bar's open. Progress goes to ``reporter``
    (stage ``"trades"``, throttled: at most ~100 reports, >= 200 ms apart, the last always;
    pass a ``ThrottledReporter`` to choose the throttle);
    ``cancel`` is checked every ~1 % of the candles and raises ``CancelledError``. Bad input
    raises ``InvalidArgumentError`` naming the field. The first call in a process compiles the
    loop unless ``warm_up()`` ran.
    """
    gate = throttled(reporter)
    return simulate_bars(bars, signals, settings or BacktestSettings(), gate, cancel)
