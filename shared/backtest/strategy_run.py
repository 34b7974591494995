"""``run_strategy``: a rule strategy's signals on the bars, then their backtest."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from shared.backtest.engine import simulate_bars
from shared.backtest.progress import throttled
from shared.backtest.types import BacktestReporter, BacktestResult, BacktestSettings
from shared.cancellation import CancellationToken
from shared.strategies import RuleStrategy, get_strategy, resolve_params


def run_strategy(
    bars: pd.DataFrame,
    strategy: str | RuleStrategy,
    params: Mapping[str, object],
    settings: BacktestSettings | None = None,
    *,
    reporter: BacktestReporter | None = None,
    cancel: CancellationToken | None = None,
) -> BacktestResult:
    """Backtest ``strategy`` (a name or a strategy object) with ``params`` on ``bars``.

    ``params`` are resolved first (defaults filled, values checked: ``InvalidArgumentError`` with
    ``field="params.NAME"``). Progress: stage ``"signals"`` reports 0 of the candles when it
    starts and all of them when the signals are computed; stage ``"trades"`` follows as in
    ``run_backtest``, under the same throttle. ``cancel`` is checked before and after the
    signals and through the simulation.
    """
    chosen = get_strategy(strategy) if isinstance(strategy, str) else strategy
    resolved = resolve_params(chosen, params)
    gate = throttled(reporter)
    total = len(bars)
    if cancel is not None:
        cancel.raise_if_cancelled()
    if gate is not None:
        gate.force("signals", 0, total)
    signals = chosen.signals(bars, resolved)
    if gate is not None:
        gate.candles("signals", total, total)
    return simulate_bars(bars, signals, settings or BacktestSettings(), gate, cancel)
