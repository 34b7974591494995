"""The RPCs of the backtest and optimization job kinds, and the strategies they run.

A mixin of ``OrchestratorServicer``: requests are translated (``shared.rpc.serde_requests``),
validated by their kind's rules (``shared.job_validation``) and queued through the servicer's
``_admit``, the same path training takes (dataset pinning, placement check, idempotent
``request_id``); events stream from the same job book.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import grpc

from shared import errors
from shared.job_requests import BacktestRequest, OptimizationRequest
from shared.job_validation import validate_backtest, validate_optimization
from shared.rpc import serde_requests
from shared.rpc.errors import rpc_method
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import progress_pb2
from shared.rpc.v1 import strategy_pb2 as spb
from shared.spec import DataSource, is_synthetic_symbol
from shared.strategies import ParamSpec, RuleStrategy, list_strategies

from .jobs import JobBook, JobRecord
from .repository import NAME_MAX, ModelRepository

Context = grpc.aio.ServicerContext[Any, Any]

_PARAM_TYPES = {
    "int": spb.PARAM_TYPE_INT,
    "float": spb.PARAM_TYPE_FLOAT,
    "categorical": spb.PARAM_TYPE_CATEGORICAL,
    "bool": spb.PARAM_TYPE_BOOL,
}


def _param_to_proto(p: ParamSpec) -> opb.StrategyParam:
    msg = opb.StrategyParam(
        name=p.name,
        type=_PARAM_TYPES[p.type],
        default=_text(p.default),
        choices=list(p.choices),
        description=p.description,
    )
    if p.low is not None:
        msg.low = float(p.low)
    if p.high is not None:
        msg.high = float(p.high)
    if p.step is not None:
        msg.step = float(p.step)
    return msg


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def strategy_to_proto(strategy: RuleStrategy) -> opb.StrategyInfo:
    return opb.StrategyInfo(
        name=strategy.name,
        description=strategy.description,
        params=[_param_to_proto(p) for p in strategy.params],
        constraints=list(getattr(strategy, "constraints", ())),
    )


class KindRpcs:
    """Backtest, SubmitBacktest, Optimize, SubmitOptimization, ListStrategies."""

    _repository: ModelRepository

    async def _admit(self, request: Any) -> JobRecord:  # the servicer's
        raise NotImplementedError

    def _check_open(self) -> None:  # the servicer's
        raise NotImplementedError

    def _wire(self, event: Any) -> progress_pb2.ProgressEvent:  # the servicer's
        raise NotImplementedError

    _book: JobBook

    async def _submit_backtest(self, msg: spb.BacktestRequest) -> JobRecord:
        self._check_open()
        request = serde_requests.backtest_request_from_proto(msg)
        if request.model and request.strategy:
            validate_backtest(request)  # refuses the pair, naming the field
        if request.model:
            request = await self._with_model_market(request)
        validate_backtest(request)
        return await self._admit(request)

    async def _with_model_market(self, request: BacktestRequest) -> BacktestRequest:
        """A model's backtest: the model must exist; it runs on the model's own symbols and
        timeframes unless the request names them."""
        if len(request.model) > NAME_MAX:
            raise errors.InvalidArgumentError(
                f"a model name is at most {NAME_MAX} characters", field="model"
            )
        try:
            stored = await asyncio.to_thread(self._repository.get, request.model)
        except errors.TrainwireError as exc:
            exc.field = "model"  # the repository names its own argument
            raise
        recipe = stored.metadata.get("reproduce")
        bars = recipe.get("bars") if isinstance(recipe, dict) else None
        finest = bars.get("finest_timeframe") if isinstance(bars, dict) else None
        if not isinstance(finest, str) or not stored.ref.symbols:
            raise errors.FailedPreconditionError(
                f"model {stored.ref.name} was stored without the recipe a backtest needs to "
                "build its features (an older trainwire): retrain it",
                field="model",
            )
        if request.timeframes and tuple(request.timeframes) != (finest,):
            raise errors.InvalidArgumentError(
                f"a model's backtest reads its bars at the model's finest timeframe, {finest} "
                "(coarser ones are resampled from them): leave timeframes empty or give "
                f'["{finest}"]',
                field="timeframes",
            )
        symbols = request.symbols or stored.ref.symbols[:1]
        data = request.data
        if (
            data.source is DataSource.UNSPECIFIED
            and not (data.path or data.dataset)
            and all(is_synthetic_symbol(s) for s in symbols)
        ):
            data = replace(data, source=DataSource.SYNTHETIC)  # as for a request naming SYNTH
        return replace(
            request,
            model=stored.ref.name,  # pinned: a retry runs the same version
            symbols=symbols,
            timeframes=(finest,),
            data=data,
        )

    async def _submit_optimization(self, msg: spb.OptimizeRequest) -> JobRecord:
        self._check_open()
        request: OptimizationRequest = serde_requests.optimization_request_from_proto(msg)
        validate_optimization(request)
        return await self._admit(request)

    @rpc_method
    async def Backtest(
        self, request: spb.BacktestRequest, context: Context
    ) -> AsyncIterator[progress_pb2.ProgressEvent]:
        record = await self._submit_backtest(request)
        async for event in self._book.watch(record.job_id, 0):
            yield self._wire(event)

    @rpc_method
    async def SubmitBacktest(self, request: spb.BacktestRequest, context: Context) -> Any:
        from .servicer import job_to_proto

        return job_to_proto(await self._submit_backtest(request))

    @rpc_method
    async def Optimize(
        self, request: spb.OptimizeRequest, context: Context
    ) -> AsyncIterator[progress_pb2.ProgressEvent]:
        record = await self._submit_optimization(request)
        async for event in self._book.watch(record.job_id, 0):
            yield self._wire(event)

    @rpc_method
    async def SubmitOptimization(self, request: spb.OptimizeRequest, context: Context) -> Any:
        from .servicer import job_to_proto

        return job_to_proto(await self._submit_optimization(request))

    @rpc_method
    async def ListStrategies(
        self, request: opb.ListStrategiesRequest, context: Context
    ) -> opb.ListStrategiesResponse:
        return opb.ListStrategiesResponse(
            strategies=[strategy_to_proto(s) for s in list_strategies()]
        )
