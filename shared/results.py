"""What backtest and optimization jobs produce, and where an optimization is, as dataclasses.

These are the domain side of ``BacktestResult``, ``OptimizeResult``, ``OptimizerProgress`` and
``ConfigurationRef`` on the wire (``shared.rpc.serde`` converts). Parameters are kept as text
(``{"fast": "10"}``) the way a request gives them and a configuration stores them, so one
mapping serves grpcurl, JSON and the repository; ``render_param`` makes that text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.provenance import DataProvenance

MAX_RESULT_TRADES = 10_000
"""A result carries at most this many trades (``trades_total`` counts them all)."""
MAX_EQUITY_POINTS = 1_000
"""A result's equity curve is at most this many points, evenly spaced, the last included."""


def render_param(value: object) -> str:
    """A parameter value as text: ints without a decimal point, floats shortest round-trip."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def render_params(params: Mapping[str, object]) -> dict[str, str]:
    return {name: render_param(value) for name, value in params.items()}


@dataclass(frozen=True, kw_only=True)
class TradeRecord:
    entry_bar: int
    exit_bar: int
    entry_time: float
    exit_time: float
    entry_price: float
    exit_price: float
    size: float
    """Signed units: positive long, negative short."""
    pnl: float
    return_pct: float
    duration_s: float
    exit_reason: str = "signal"


@dataclass(frozen=True, kw_only=True)
class BacktestSummary:
    """One backtest as a job result: stats, (the first) trades and a thinned equity curve."""

    strategy: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    model: str = ""
    symbol: str = ""
    timeframe: str = ""
    stats: Mapping[str, float] = field(default_factory=dict)
    trades: tuple[TradeRecord, ...] = ()
    trades_total: int = 0
    equity: tuple[tuple[float, float], ...] = ()
    """(time, equity) pairs."""
    candles: int = 0
    data: DataProvenance | None = None
    settings: Mapping[str, float] = field(default_factory=dict)
    """The settings the backtest ran with (initial_cash, commission_pct, ...), as numbers."""


@dataclass(frozen=True, kw_only=True)
class OptimizerProgress:
    """Where an optimization is: on every finished trial's event and in a job's snapshot."""

    iteration: int
    total_iterations: int = 0
    """The trial budget; 0 when only a time budget bounds the search."""
    current_score: float = math.nan
    best_score: float = math.nan
    best_params: Mapping[str, str] = field(default_factory=dict)
    current_params: Mapping[str, str] = field(default_factory=dict)
    objective: str = ""
    window: int = 0
    """Walk-forward window (1-based) while validating; 0 otherwise."""
    total_windows: int = 0


@dataclass(frozen=True, kw_only=True)
class TrialSummary:
    number: int
    params: Mapping[str, str]
    score: float
    state: str
    """complete, pruned, failed or infeasible."""
    duration_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class WindowSummary:
    index: int
    train_start: float
    train_end: float
    test_start: float
    test_end: float
    best_params: Mapping[str, str] = field(default_factory=dict)
    in_sample: Mapping[str, float] = field(default_factory=dict)
    out_of_sample: Mapping[str, float] = field(default_factory=dict)
    overfit: bool = False


@dataclass(frozen=True, kw_only=True)
class ConfigurationRef:
    """A stored best configuration: ``{strategy}/{symbols}_{timeframes}_v{version}``."""

    name: str
    strategy: str
    version: int
    sha256: str
    size_bytes: int
    symbols: tuple[str, ...] = ()
    timeframes: tuple[str, ...] = ()
    created_at: float = 0.0
    job_id: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    objective: str = ""
    in_sample_score: float = math.nan
    out_of_sample_score: float = math.nan


@dataclass(frozen=True, kw_only=True)
class OptimizationSummary:
    """An optimization's result: the best parameters with their in/out-of-sample stats."""

    strategy: str
    best_params: Mapping[str, str] = field(default_factory=dict)
    best_score: float = math.nan
    objective: str = "Sharpe Ratio"
    minimize: bool = False
    sampler: str = ""
    in_sample: Mapping[str, float] = field(default_factory=dict)
    out_of_sample: Mapping[str, float] = field(default_factory=dict)
    windows: tuple[WindowSummary, ...] = ()
    overfit: bool = False
    trials: tuple[TrialSummary, ...] = ()
    configuration: ConfigurationRef | None = None
    data: DataProvenance | None = None
    seed: int | None = None
    configuration_json: str = ""
    """The configuration as stored (set by the trainer; the orchestrator stores it)."""
