"""The requests of the backtest and optimization job kinds, and what a job request is.

A job kind is one request type (with ``kind``), one trainer-side runner and one result; every
request names its market the same way (symbols, timeframes, data, placement, request id:
``shared.spec.MarketRequest``) so the orchestrator queues, places, retries and stores every kind
alike. Training's request is ``shared.spec.TrainingRequest``.

Parameters are kept as text the way a request gives them (``{"fast": "10"}``); the strategy's
spec resolves them to typed values (``shared.strategies.resolve_params``) when the request is
validated and again when the job runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from shared.backtest import BacktestSettings
from shared.jobs import JobKind
from shared.optimize import Objective, OptimizerSettings, ParamRange
from shared.spec import DataSpec, PlacementSpec, TrainingRequest


@dataclass(frozen=True, kw_only=True)
class BacktestRequest:
    """A rule strategy with parameters, or a stored model, backtested over bars.

    A rule strategy runs on one symbol and one timeframe. A model (``model``: its repository
    name) is backtested on its own symbols and timeframes when the request names none."""

    symbols: tuple[str, ...]
    timeframes: tuple[str, ...]
    strategy: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    model: str = ""
    settings: BacktestSettings = field(default_factory=BacktestSettings)
    data: DataSpec = field(default_factory=DataSpec)
    placement: PlacementSpec = field(default_factory=PlacementSpec)
    request_id: str = ""
    kind: ClassVar[JobKind] = JobKind.BACKTEST


@dataclass(frozen=True, kw_only=True)
class OptimizationRequest:
    """A search over a rule strategy's parameters, each trial a backtest, optionally validated
    walk-forward; the best configuration is stored."""

    symbols: tuple[str, ...]
    timeframes: tuple[str, ...]
    strategy: str
    space: tuple[ParamRange, ...]
    constraints: tuple[str, ...] = ()
    objective: Objective = field(default_factory=Objective)
    optimizer: OptimizerSettings = field(default_factory=OptimizerSettings)
    settings: BacktestSettings = field(default_factory=BacktestSettings)
    fixed_params: Mapping[str, str] = field(default_factory=dict)
    data: DataSpec = field(default_factory=DataSpec)
    placement: PlacementSpec = field(default_factory=PlacementSpec)
    request_id: str = ""
    kind: ClassVar[JobKind] = JobKind.OPTIMIZE


JobRequest = TrainingRequest | BacktestRequest | OptimizationRequest
"""What a job runs: one request type per job kind."""
