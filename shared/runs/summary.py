"""A backtest's engine result as a job result: stats, the first trades, a thinned curve."""

from __future__ import annotations

from collections.abc import Mapping

from shared.backtest import BacktestResult, BacktestSettings
from shared.provenance import DataProvenance
from shared.results import (
    MAX_EQUITY_POINTS,
    MAX_RESULT_TRADES,
    BacktestSummary,
    TradeRecord,
)


def settings_numbers(s: BacktestSettings) -> dict[str, float]:
    """The settings a backtest ran with, as the numbers a ``BacktestSummary`` carries."""
    out = {
        "initial_cash": s.initial_cash,
        "commission_pct": s.costs.commission_pct,
        "commission_fixed": s.costs.commission_fixed,
        "slippage_bps": s.costs.slippage_bps,
        "size": s.sizing.value,
        "allow_short": float(s.allow_short),
        "units_sizing": float(s.sizing.mode == "units"),
    }
    if s.stop_loss_pct is not None:
        out["stop_loss_pct"] = s.stop_loss_pct
    if s.take_profit_pct is not None:
        out["take_profit_pct"] = s.take_profit_pct
    return out


def thin_equity(
    result: BacktestResult, points: int = MAX_EQUITY_POINTS
) -> tuple[tuple[float, float], ...]:
    """At most ``points`` (time, equity) pairs, evenly spaced over the bars, the last included."""
    n = len(result.equity)
    if n == 0:
        return ()
    step = max(1, -(-n // points))
    picks = list(range(0, n, step))
    if picks[-1] != n - 1:
        if len(picks) >= points:
            picks[-1] = n - 1
        else:
            picks.append(n - 1)
    return tuple((float(result.times[i]), float(result.equity[i])) for i in picks)


def summarise(
    result: BacktestResult,
    *,
    settings: BacktestSettings,
    symbol: str,
    timeframe: str,
    strategy: str = "",
    params: Mapping[str, str] | None = None,
    model: str = "",
    data: DataProvenance | None = None,
) -> BacktestSummary:
    return BacktestSummary(
        strategy=strategy,
        params=dict(params or {}),
        model=model,
        symbol=symbol,
        timeframe=timeframe,
        stats=dict(result.stats),
        trades=tuple(
            TradeRecord(
                entry_bar=t.entry_bar,
                exit_bar=t.exit_bar,
                entry_time=t.entry_time,
                exit_time=t.exit_time,
                entry_price=t.entry_price,
                exit_price=t.exit_price,
                size=t.size,
                pnl=t.pnl,
                return_pct=t.return_pct,
                duration_s=t.duration_s,
                exit_reason=t.exit_reason,
            )
            for t in result.trades[:MAX_RESULT_TRADES]
        ),
        trades_total=len(result.trades),
        equity=thin_equity(result),
        candles=result.candles,
        data=data,
        settings=settings_numbers(settings),
    )
