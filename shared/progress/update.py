"""What the pipeline reports: one immutable update per progress event.

The pipeline produces ``ProgressUpdate``s through a ``ProgressSink``; the trainer stamps them with
job id, seq and state to make ``shared.jobs.ProgressEvent``s. Nothing here knows about gRPC.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from shared.results import OptimizerProgress


class UpdateKind(enum.Enum):
    STEP = "step"
    """A pipeline step started or finished: never dropped."""
    DETAIL = "detail"
    """Pre-training detail (symbol, timeframe, indicator, fuzzy set): may be coalesced."""
    EPOCH = "epoch"
    """An epoch finished, with metrics: never dropped."""
    BATCH = "batch"
    """A batch finished: throttled toward ~300 ms apart."""
    WARNING = "warning"
    """Something the user should know that does not stop the job: never dropped."""
    TRIAL = "trial"
    """An optimization trial finished, with the search's progress: never dropped."""


@dataclass(frozen=True, kw_only=True)
class ItemCounter:
    """A generic nested counter: candles, indicators, fuzzy sets, trials, features."""

    name: str
    current: int
    total: int


@dataclass(frozen=True, kw_only=True)
class PreprocessContext:
    """Where pre-training work is: ``Processing AAPL (2/5) [1h] - Computing RSI (15/40)``."""

    symbol: str = ""
    symbol_index: int = 0
    symbol_total: int = 0
    timeframe: str = ""
    timeframe_index: int = 0
    timeframe_total: int = 0
    detail: str = ""
    """What is being computed, e.g. ``Computing RSI`` or ``Fuzzifying rsi_14:oversold``."""
    detail_index: int = 0
    detail_total: int = 0


@dataclass(frozen=True, kw_only=True)
class ProgressUpdate:
    kind: UpdateKind
    percentage: float
    """Overall 0..100, weighted across steps; never goes back within a run."""
    message: str
    """Rendered for humans, e.g. ``Epoch 5/100 · Batch 120/500``."""
    step_index: int
    """1-based index of the current step."""
    step_total: int
    step_name: str
    step_percentage: float
    epoch: int = 0
    total_epochs: int = 0
    batch: int = 0
    total_batches: int = 0
    items: ItemCounter | None = None
    context: PreprocessContext | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    eta_seconds: float | None = None
    optimizer: OptimizerProgress | None = None
    """Optimization jobs: the trial that just finished and the best so far."""
    stage: str = ""
    """Inside a backtest: ``signals`` or ``trades``."""


ProgressSink = Callable[[ProgressUpdate], None]
"""Called from the training thread; must be cheap and must not raise."""
