"""A stored model backtested as a strategy: its predicted class per base bar is the signal.

The bars are read at the model's finest timeframe (what ``shared.pipeline.predict`` takes);
the predictor builds the model's features from them as training did, and each base bar's
predicted class (BUY long, SELL short, HOLD flat; warm-up bars flat) fills at the next base
bar's open. Steps as for a rule strategy's backtest; the "signals" stage is the prediction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shared.backtest import run_backtest
from shared.cancellation import CancellationToken
from shared.job_requests import BacktestRequest
from shared.pipeline.job import JobContext
from shared.pipeline.market import DataError
from shared.pipeline.predict import PredictionError, load_predictor
from shared.pipeline.preprocess import load_data
from shared.progress.tracker import ProgressTracker
from shared.progress.update import ProgressSink
from shared.results import BacktestSummary
from shared.runs.backtest import BACKTEST, BACKTEST_STEPS, SUMMARISE, render_stats_line
from shared.runs.progress import StepCandles
from shared.runs.summary import summarise
from shared.spec import DEFAULT_LIMITS, JobLimits
from shared.strategies import signals_from_classes


def run_model_backtest_job(
    request: BacktestRequest,
    *,
    model_dir: Path,
    progress: ProgressSink,
    cancel: CancellationToken,
    data_dir: Path | None = None,
    dataset_dir: Path | None = None,
    limits: JobLimits = DEFAULT_LIMITS,
) -> BacktestSummary:
    """Backtest the model in ``model_dir`` on ``request``'s one symbol."""
    try:
        predictor = load_predictor(model_dir)
    except PredictionError as exc:
        raise DataError(request.symbols[0], "", f"model {request.model}: {exc}") from exc
    tracker = ProgressTracker(progress, BACKTEST_STEPS)
    job = JobContext(request, tracker, cancel)
    bars, provenance = load_data(job, data_dir, dataset_dir=dataset_dir, max_bars=limits.max_bars)
    symbol = request.symbols[0]
    finest = bars[(symbol, request.timeframes[0])]
    with job.step(BACKTEST):
        reporter = StepCandles(tracker)
        base = predictor.base_bars(finest)
        reporter.candles("signals", 0, len(base))
        try:
            predicted = predictor.signals(finest)
        except PredictionError as exc:
            raise DataError(symbol, predictor.base_timeframe, str(exc)) from exc
        cancel.raise_if_cancelled()
        signals = np.zeros(len(base), dtype=np.int8)
        positions = base.index.get_indexer(predicted["time"])
        found = positions >= 0
        signals[positions[found]] = signals_from_classes(
            predicted["signal"].to_numpy()[found].astype(str)
        )
        reporter.candles("signals", len(base), len(base))
        result = run_backtest(base, signals, request.settings, reporter=reporter, cancel=cancel)
    with job.step(SUMMARISE):
        summary = summarise(
            result,
            settings=request.settings,
            symbol=symbol,
            timeframe=predictor.base_timeframe,
            model=request.model,
            data=provenance,
        )
        tracker.detail(1.0, message=render_stats_line(summary))
    return summary
