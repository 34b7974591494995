"""The backtest job: load the bars, run a rule strategy's backtest, summarise it.

Steps (weights): loading market data (10), backtesting (85: signals, then trades, candle by
candle, each half of it), summarising (5). The result names its data, the strategy with its
resolved parameters and the settings, beside the stats (``Buy & Hold Return [%]`` is the
baseline every backtest carries).
"""

from __future__ import annotations

import logging
from pathlib import Path

from shared.backtest import run_strategy
from shared.cancellation import CancellationToken
from shared.job_requests import BacktestRequest
from shared.job_validation import validate_backtest
from shared.pipeline.job import JobContext
from shared.pipeline.preprocess import load_data
from shared.progress.tracker import ProgressTracker, Step
from shared.progress.update import ProgressSink
from shared.results import BacktestSummary, render_params
from shared.runs.progress import StepCandles
from shared.runs.summary import summarise
from shared.spec import DEFAULT_LIMITS, JobLimits
from shared.strategies import get_strategy, resolve_params

_LOGGER = logging.getLogger(__name__)

BACKTEST_STEPS: tuple[Step, ...] = (
    Step("Loading market data", 10),
    Step("Backtesting", 85),
    Step("Summarising", 5),
)
LOAD, BACKTEST, SUMMARISE = 1, 2, 3


def run_backtest_job(
    request: BacktestRequest,
    *,
    progress: ProgressSink,
    cancel: CancellationToken,
    data_dir: Path | None = None,
    dataset_dir: Path | None = None,
    limits: JobLimits = DEFAULT_LIMITS,
) -> BacktestSummary:
    """Backtest ``request``'s rule strategy on its one symbol and timeframe."""
    if request.model:
        raise NotImplementedError("a model backtest runs through run_model_backtest_job")
    validate_backtest(request, limits=limits)
    strategy = get_strategy(request.strategy)
    params = resolve_params(strategy, request.params)
    tracker = ProgressTracker(progress, BACKTEST_STEPS)
    job = JobContext(request, tracker, cancel)
    bars, provenance = load_data(job, data_dir, dataset_dir=dataset_dir, max_bars=limits.max_bars)
    symbol, timeframe = request.symbols[0], request.timeframes[0]
    frame = bars[(symbol, timeframe)]
    _LOGGER.info(
        "backtesting %s %s on %s %s (%d bars)",
        strategy.name,
        render_params(params),
        symbol,
        timeframe,
        len(frame),
    )
    with job.step(BACKTEST):
        result = run_strategy(
            frame,
            strategy,
            params,
            request.settings,
            reporter=StepCandles(tracker),
            cancel=cancel,
        )
    with job.step(SUMMARISE):
        summary = summarise(
            result,
            settings=request.settings,
            symbol=symbol,
            timeframe=timeframe,
            strategy=strategy.name,
            params=render_params(params),
            data=provenance,
        )
        tracker.detail(1.0, message=render_stats_line(summary))
    return summary


def render_stats_line(summary: BacktestSummary) -> str:
    """``Return 12.3 % vs buy & hold 8.1 % · Sharpe 0.91 · max drawdown -14.2 % · 37 trades``."""
    s = summary.stats

    def num(name: str, fmt: str) -> str:
        value = s.get(name)
        return "n/a" if value is None or value != value else format(value, fmt)

    return (
        f"Return {num('Return [%]', '.2f')} % vs buy & hold {num('Buy & Hold Return [%]', '.2f')} %"
        f" · Sharpe {num('Sharpe Ratio', '.2f')} · max drawdown {num('Max. Drawdown [%]', '.1f')} %"
        f" · {summary.trades_total} trades"
    )
