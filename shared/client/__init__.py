"""The Python client SDK: typed, sync and async, dataclass results, typed errors.

    from shared.client import Client

    with Client("localhost:50051") as tw:
        for event in tw.train(["SYNTH"], ["1h"], epochs=5):
            print(f"{event.percentage:5.1f}% {event.message}")
        print(event.result.model.name if event.result else event.error)

Real data: ``tw.train(["EURUSD"], ["1h"], data=data.directory("fx"))`` reads files on the
trainer (``shared.client.data`` also has ``dataset`` and ``synthetic``);
``tw.upload_dataset(["EURUSD.csv"], name="eurusd")`` uploads files from this machine.

No grpc or protobuf type reaches the caller: results are ``shared.jobs`` / ``shared.nodes`` /
``shared.client.types`` dataclasses and failures are ``shared.errors.TrainwireError``
subclasses (``.code`` the gRPC status name, ``.field`` the request field to fix).

Backtests and optimizations of rule strategies (``tw.strategies()`` lists them)::

    for event in tw.backtest("sma_crossover", ["GOOG"], ["1d"], params={"fast": 10},
                             data=data.directory("market"), commission_pct=0.001):
        ...
    print(event.backtest_result.stats["Sharpe Ratio"] if event.backtest_result else event.error)

    events = tw.optimize("sma_crossover", ["GOOG"], ["1d"], data=data.directory("market"),
                         space={"fast": (5, 30, 5), "slow": (20, 100, 20)}, sampler="tpe",
                         trials=40, seed=7, constraints=["fast < slow"])

The best configuration is stored: ``tw.configurations()``, ``tw.download_configuration``.

Every unary call has a deadline (30 s; ``Client(timeout=...)`` or a call's ``timeout=``), and
reads are retried on ``UNAVAILABLE`` by gRPC (``shared.client.policy``). ``JobState.terminal``
says whether a state is final: ``if tw.job(job_id).state.terminal: ...``.
"""

from shared.client import data
from shared.client.aio import AsyncClient
from shared.client.sync import Client
from shared.client.types import (
    BacktestOptions,
    Job,
    ModelInfo,
    OptimizeOptions,
    StrategyInfo,
    StrategyParam,
    TrainOptions,
)
from shared.datasets import DatasetFile, DatasetInfo
from shared.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    TrainwireError,
    UnauthenticatedError,
    UnavailableError,
)
from shared.jobs import DataProvenance, JobEvent, JobKind, JobState, ModelAssessment, ModelRef
from shared.results import BacktestSummary, ConfigurationRef, OptimizationSummary
from shared.spec import DataSource, DataSpec

__all__ = [
    "AsyncClient",
    "BacktestOptions",
    "BacktestSummary",
    "Client",
    "ConfigurationRef",
    "DataProvenance",
    "DataSource",
    "DataSpec",
    "DatasetFile",
    "DatasetInfo",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "Job",
    "JobEvent",
    "JobKind",
    "JobState",
    "ModelAssessment",
    "ModelInfo",
    "ModelRef",
    "NotFoundError",
    "OptimizationSummary",
    "OptimizeOptions",
    "StrategyInfo",
    "StrategyParam",
    "TrainOptions",
    "TrainwireError",
    "UnauthenticatedError",
    "UnavailableError",
    "data",
]
