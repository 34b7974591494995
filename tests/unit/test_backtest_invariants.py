"""Properties every backtest keeps, over random bars, signals and settings (hypothesis)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.backtest import BacktestSettings, Costs, Sizing, run_backtest

CASES = settings(
    max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def scenario(draw: st.DrawFn) -> tuple[pd.DataFrame, np.ndarray, BacktestSettings]:
    n = draw(st.integers(1, 60))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    open_ = close * np.exp(rng.normal(0, 0.01, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.01, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.01, n)))
    index = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC")
    bars = pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": np.ones(n)},
        index=index,
    )
    signals = rng.choice(np.array([-1, 0, 1], dtype=np.int8), size=n)
    costs = Costs(
        commission_pct=draw(st.sampled_from([0.0, 0.001, 0.01])),
        commission_fixed=draw(st.sampled_from([0.0, 1.0])),
        slippage_bps=draw(st.sampled_from([0.0, 5.0])),
    )
    sizing = draw(
        st.sampled_from(
            [Sizing(), Sizing(value=0.5, whole_units=True), Sizing(mode="units", value=3.0)]
        )
    )
    stop = draw(st.sampled_from([None, 0.01, 0.03]))
    take = draw(st.sampled_from([None, 0.02]))
    config = BacktestSettings(
        costs=costs,
        sizing=sizing,
        allow_short=draw(st.booleans()),
        stop_loss_pct=stop,
        take_profit_pct=take,
    )
    return bars, signals, config


@CASES
@given(scenario())
def test_backtest_invariants(case: tuple[pd.DataFrame, np.ndarray, BacktestSettings]) -> None:
    bars, signals, config = case
    result = run_backtest(bars, signals, config)
    n = len(bars)
    assert len(result.equity) == n and np.isfinite(result.equity).all()
    # Every trade is closed by the end, so the final equity is the cash: start + all PnL.
    pnl = sum(t.pnl for t in result.trades)
    assert np.isclose(result.equity[-1], config.initial_cash + pnl, rtol=1e-9, atol=1e-6)
    assert result.stats["# Trades"] == len(result.trades)
    previous_exit = 0
    for t in result.trades:
        assert 1 <= t.entry_bar <= t.exit_bar <= n - 1
        assert t.entry_bar >= previous_exit  # one position at a time
        previous_exit = t.exit_bar
        wanted = int(signals[t.entry_bar - 1])
        assert np.sign(t.size) == wanted  # entered as the previous bar's signal asked
        assert config.allow_short or t.size > 0
        assert bars["low"].iloc[t.exit_bar] * (1 - 1e-3) <= t.exit_price
        assert t.exit_price <= bars["high"].iloc[t.exit_bar] * (1 + 1e-3)
        if t.exit_reason == "end":
            assert t.exit_bar == n - 1
        if t.exit_reason == "stop_loss":
            assert config.stop_loss_pct is not None
    changes = int(np.count_nonzero(np.diff(signals)))
    assert len(result.trades) <= changes + 1
