"""What the client SDK returns: plain dataclasses, no protobuf."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from shared.jobs import JobError, JobKind, JobState, ModelRef, TrainResult
from shared.results import BacktestSummary, OptimizationSummary, OptimizerProgress
from shared.spec import DataSpec

if TYPE_CHECKING:  # importing shared.optimize loads Optuna; an annotation needs none of it
    from shared.optimize import WalkForward


class TrainOptions(TypedDict, total=False):
    """The keyword options of ``train`` and ``submit`` (all optional); ``convert.build_request``
    says what each does. A misspelt keyword is a type error, not a silently ignored option."""

    data: DataSpec | None
    epochs: int | None
    seed: int | None
    batch_size: int | None
    bars: int | None
    strategy_yaml: str | None
    strategy_file: str | Path | None
    request_id: str
    require_gpu: bool
    node: str
    start: str
    end: str
    market_seed: int | None
    label_threshold: float | str | None


class MarketOptions(TypedDict, total=False):
    """What backtests and optimizations share: where the bars come from, how trades are
    simulated, where the job runs. ``shared.client.kind_requests`` says what each does."""

    data: DataSpec | None
    start: str
    end: str
    bars: int | None
    market_seed: int | None
    initial_cash: float
    commission_pct: float
    """A fraction of the traded value per fill: 0.001 = 0.1 %."""
    commission_fixed: float
    slippage_bps: float
    sizing: Literal["fraction", "units"]
    size: float
    allow_short: bool
    stop_loss_pct: float
    """A fraction of the entry price: 0.02 = 2 %."""
    take_profit_pct: float
    request_id: str
    require_gpu: bool
    node: str


class BacktestOptions(MarketOptions, total=False):
    """The keyword options of ``backtest`` and ``submit_backtest``."""

    params: Mapping[str, object]
    """Rule strategy parameters (``{"fast": 10}``); missing ones take their defaults."""


class OptimizeOptions(MarketOptions, total=False):
    """The keyword options of ``optimize`` and ``submit_optimization`` (besides ``space``)."""

    constraints: Sequence[str]
    """Between parameters, e.g. ``"fast < slow"``."""
    fixed_params: Mapping[str, object]
    """Parameters held at a value rather than searched."""
    objective: str
    """The backtest stat scored, e.g. ``"Sharpe Ratio"`` (the default)."""
    minimize: bool
    sampler: Literal["grid", "random", "tpe", "gp", "cmaes"]
    trials: int | None
    """Trial budget (default 50; with ``grid`` and ``None``: the whole grid)."""
    timeout_s: float
    seed: int
    parallelism: int
    walk_forward: WalkForward | None


@dataclass(frozen=True, kw_only=True)
class StrategyParam:
    """One parameter of a rule strategy, as ``ListStrategies`` describes it."""

    name: str
    type: Literal["int", "float", "categorical", "bool"]
    default: str
    """The default value, as text (``"10"``, ``"sma"``, ``"true"``)."""
    low: float | None = None
    high: float | None = None
    step: float | None = None
    """An optimizer's suggested grid step."""
    choices: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True, kw_only=True)
class StrategyInfo:
    """A rule strategy the orchestrator can backtest and optimize."""

    name: str
    description: str = ""
    params: tuple[StrategyParam, ...] = ()
    constraints: tuple[str, ...] = ()
    """Rules between parameters, e.g. ``"fast < slow"``."""

    def param(self, name: str) -> StrategyParam | None:
        return next((p for p in self.params if p.name == name), None)


@dataclass(frozen=True, kw_only=True)
class Job:
    job_id: str
    state: JobState
    node: str = ""
    request_id: str = ""
    created_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    percentage: float = 0.0
    message: str = ""
    last_seq: int = 0
    """The seq of the job's latest event: ``watch(job_id, after_seq=last_seq)`` follows on."""
    attempt: int = 0
    kind: JobKind = JobKind.TRAIN
    result: TrainResult | None = None
    """A training job's result."""
    backtest_result: BacktestSummary | None = None
    optimize_result: OptimizationSummary | None = None
    error: JobError | None = None
    step_index: int = 0
    step_total: int = 0
    step_name: str = ""
    step_percentage: float = 0.0
    eta_seconds: float | None = None
    updated_at: float = 0.0
    optimizer: OptimizerProgress | None = None
    """An optimization's latest trial: iteration, best and current score, best parameters."""
    device: str = ""


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    ref: ModelRef
    training_metrics: dict[str, float] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)
    feature_names: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
