"""Jobs and their events as plain dataclasses, shared by trainer, orchestrator and client.

A ``JobEvent`` is what a user watches: the trainer makes them from pipeline ``ProgressUpdate``s,
the orchestrator re-sequences and re-publishes them. Protobuf lives in ``shared.rpc.serde``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.progress.update import ItemCounter, PreprocessContext, ProgressUpdate, UpdateKind
from shared.provenance import DataProvenance as DataProvenance
from shared.provenance import SeriesProvenance as SeriesProvenance
from shared.results import BacktestSummary, OptimizationSummary, OptimizerProgress


class JobKind(enum.Enum):
    """What a job runs: each kind has its request, trainer-side runner and result."""

    TRAIN = "train"
    BACKTEST = "backtest"
    OPTIMIZE = "optimize"


class JobState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class EventKind(enum.Enum):
    LIFECYCLE = "lifecycle"
    STEP = "step"
    DETAIL = "detail"
    EPOCH = "epoch"
    BATCH = "batch"
    UPLOAD = "upload"
    WARNING = "warning"
    """Something the user should know that does not stop the job (data gaps, duplicates)."""
    TRIAL = "trial"
    """An optimization trial finished (``JobEvent.optimizer`` says where the search is)."""


_KIND_OF_UPDATE = {
    UpdateKind.STEP: EventKind.STEP,
    UpdateKind.DETAIL: EventKind.DETAIL,
    UpdateKind.EPOCH: EventKind.EPOCH,
    UpdateKind.BATCH: EventKind.BATCH,
    UpdateKind.WARNING: EventKind.WARNING,
    UpdateKind.TRIAL: EventKind.TRIAL,
}


@dataclass(frozen=True, kw_only=True)
class ModelAssessment:
    """A classifier on its held-out test split, beside always predicting the majority class."""

    accuracy: float
    macro_f1: float
    class_support: Mapping[str, int] = field(default_factory=dict)
    baseline_class: str = ""
    """The most frequent class of the training split."""
    baseline_accuracy: float = 0.0
    lift_points: float = 0.0
    """``accuracy - baseline_accuracy`` in percentage points."""
    beats_baseline: bool = False
    verdict: str = ""
    """In words, e.g. ``does not beat always predicting HOLD (0.62 vs 0.63)``."""


@dataclass(frozen=True, kw_only=True)
class ModelRef:
    name: str
    strategy: str
    version: int
    sha256: str
    size_bytes: int
    symbols: tuple[str, ...] = ()
    timeframes: tuple[str, ...] = ()
    created_at: float = 0.0
    job_id: str = ""
    data: DataProvenance | None = None
    assessment: ModelAssessment | None = None
    trading: Mapping[str, float] = field(default_factory=dict)
    """Headline stats of its test-split backtest (``TRADING_STATS``), beside buy-and-hold."""


TRADING_STATS = (
    "Return [%]",
    "Buy & Hold Return [%]",
    "Sharpe Ratio",
    "Max. Drawdown [%]",
    "# Trades",
)
"""The backtest stats a model's reference carries."""


@dataclass(frozen=True, kw_only=True)
class TrainResult:
    model: ModelRef | None = None
    training_metrics: Mapping[str, float] = field(default_factory=dict)
    test_metrics: Mapping[str, float] = field(default_factory=dict)
    feature_importance: Mapping[str, float] = field(default_factory=dict)
    device: str = ""
    data: DataProvenance | None = None
    assessment: ModelAssessment | None = None
    backtest: BacktestSummary | None = None
    """The model's signals backtested on the test split, beside buy-and-hold."""


class ErrorCode(enum.Enum):
    """Stable reasons on a terminal event's error; clients may switch on them."""

    INVALID_REQUEST = "INVALID_REQUEST"
    DATA_ERROR = "DATA_ERROR"
    CANCELLED = "CANCELLED"
    NODE_UNAVAILABLE = "NODE_UNAVAILABLE"
    NODE_LOST = "NODE_LOST"
    UPLOAD_FAILED = "UPLOAD_FAILED"
    INTERNAL = "INTERNAL"


@dataclass(frozen=True, kw_only=True)
class JobError:
    code: str
    message: str
    where: str = ""


@dataclass(frozen=True, kw_only=True)
class JobEvent:
    job_id: str
    seq: int
    time: float
    state: JobState
    kind: EventKind
    percentage: float = 0.0
    message: str = ""
    step_index: int = 0
    step_total: int = 0
    step_name: str = ""
    step_percentage: float = 0.0
    epoch: int = 0
    total_epochs: int = 0
    batch: int = 0
    total_batches: int = 0
    items: ItemCounter | None = None
    context: PreprocessContext | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    eta_seconds: float | None = None
    node: str = ""
    device: str = ""
    result: TrainResult | None = None
    error: JobError | None = None
    optimizer: OptimizerProgress | None = None
    stage: str = ""
    """Inside a backtest: ``signals`` or ``trades``, while ``items`` counts candles."""
    backtest_result: BacktestSummary | None = None
    optimize_result: OptimizationSummary | None = None

    @property
    def terminal(self) -> bool:
        return self.state.terminal


def event_from_update(
    update: ProgressUpdate,
    *,
    job_id: str,
    seq: int,
    time: float,
    node: str,
    device: str,
    percentage_scale: float = 1.0,
) -> JobEvent:
    """The event of one tracker update; ``percentage_scale`` maps the pipeline's 0-100 into the
    share of the job the pipeline has (the trainer keeps the rest for the upload)."""
    return JobEvent(
        job_id=job_id,
        seq=seq,
        time=time,
        state=JobState.RUNNING,
        kind=_KIND_OF_UPDATE[update.kind],
        percentage=update.percentage * percentage_scale,
        message=update.message,
        step_index=update.step_index,
        step_total=update.step_total,
        step_name=update.step_name,
        step_percentage=update.step_percentage,
        epoch=update.epoch,
        total_epochs=update.total_epochs,
        batch=update.batch,
        total_batches=update.total_batches,
        items=update.items,
        context=update.context,
        metrics=dict(update.metrics),
        eta_seconds=update.eta_seconds,
        node=node,
        device=device,
        optimizer=update.optimizer,
        stage=update.stage,
    )
