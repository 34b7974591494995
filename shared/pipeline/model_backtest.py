"""The evaluate step's backtest: what the model's signals on the test split would have earned.

The model predicts a class for each test row (a base-timeframe bar); BUY asks for a long
position after that bar's close, SELL a short one, HOLD flat (``shared.strategies``'
``signals_from_classes``), filled at the next bar's open by the backtest engine. The backtest
runs on the first symbol's test span of base bars, with no costs unless given, and its stats
carry ``Buy & Hold Return [%]`` over the same bars: the baseline to read the model against.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped, unused-ignore]

from shared.backtest import BacktestSettings, run_backtest
from shared.cancellation import CancellationToken
from shared.pipeline.features import Dataset
from shared.pipeline.labels import CLASSES
from shared.results import BacktestSummary
from shared.runs.summary import summarise
from shared.strategies import signals_from_classes

MIN_BARS = 2


def test_split_backtest(
    dataset: Dataset,
    test_rows: npt.NDArray[np.int64],
    predicted: npt.NDArray[np.int64],
    *,
    timeframe: str,
    model_name: str = "",
    settings: BacktestSettings | None = None,
    cancel: CancellationToken | None = None,
) -> BacktestSummary | None:
    """Backtest the predictions ``predicted`` (one class index per row of ``test_rows``) on
    the first symbol's test span; None when there are no bars to trade."""
    if not dataset.segments or not len(test_rows):
        return None
    segment = dataset.segments[0]
    bars = dataset.base_bars.get(segment.symbol)
    if bars is None:
        return None
    mine = (test_rows >= segment.start) & (test_rows < segment.stop)
    rows, classes = test_rows[mine], predicted[mine]
    if len(rows) < MIN_BARS:
        return None
    times = dataset.times[rows]
    index = pd.DatetimeIndex(bars.index)
    stamps = np.asarray(index.asi8, dtype=np.int64)
    first = int(np.searchsorted(stamps, times[0], side="left"))
    last = int(np.searchsorted(stamps, times[-1], side="right"))
    span = bars.iloc[first:last]
    if len(span) < MIN_BARS:
        return None
    signals = np.zeros(len(span), dtype=np.int8)
    positions = np.searchsorted(stamps[first:last], times)
    signals[positions] = signals_from_classes(classes, CLASSES)
    chosen = settings or BacktestSettings()
    result = run_backtest(span, signals, chosen, cancel=cancel)
    return summarise(
        result,
        settings=chosen,
        symbol=segment.symbol,
        timeframe=timeframe,
        model=model_name,
    )
