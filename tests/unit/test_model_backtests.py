"""A trained model judged by what it would have earned: the evaluate step's test-split
backtest, and a stored model backtested as a strategy."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from shared.cancellation import CancellationToken
from shared.job_requests import BacktestRequest
from shared.pipeline.run import run_training
from shared.runs.model_backtest import run_model_backtest_job
from shared.spec import DataSource, DataSpec, TrainingRequest, default_strategy


def _train(tmp_path: Path) -> tuple[Path, object]:
    strategy = default_strategy()
    strategy = replace(strategy, training=replace(strategy.training, epochs=2))
    request = TrainingRequest(
        symbols=("SYNTH",),
        timeframes=("1h",),
        strategy=strategy,
        data=DataSpec(source=DataSource.SYNTHETIC, bars=3000),
    )
    outcome = run_training(
        request, work_dir=tmp_path, progress=lambda u: None, cancel=CancellationToken()
    )
    return tmp_path, outcome


def test_training_backtests_its_model_on_the_test_split_beside_buy_and_hold(
    tmp_path: Path,
) -> None:
    _, outcome = _train(tmp_path)
    backtest = outcome.backtest  # type: ignore[attr-defined]
    assert backtest is not None
    assert backtest.symbol == "SYNTH" and backtest.timeframe == "1h"
    assert "Return [%]" in backtest.stats and "Buy & Hold Return [%]" in backtest.stats
    # The test split is the last ~15 % of the usable rows: far fewer bars than the 3,000.
    assert 100 < backtest.candles < 1000
    assert backtest.trades_total == len(backtest.trades)


def test_a_stored_model_backtests_as_a_strategy(tmp_path: Path) -> None:
    model_dir, _ = _train(tmp_path)
    request = BacktestRequest(
        symbols=("SYNTH",),
        timeframes=("1h",),
        model="default_fuzzy_mlp/SYNTH_1h_v1",
        data=DataSpec(source=DataSource.SYNTHETIC, bars=2000, seed=99),
    )
    summary = run_model_backtest_job(
        request, model_dir=model_dir, progress=lambda u: None, cancel=CancellationToken()
    )
    assert summary.model == "default_fuzzy_mlp/SYNTH_1h_v1"
    assert summary.candles == 2000
    assert summary.data is not None and summary.data.location == "seed 99"
    assert "Sharpe Ratio" in summary.stats
