"""What each unary SDK method does, written once for ``Client`` and ``AsyncClient``.

An operation is a generator: it yields the calls it needs (``Unary``: a stub method's name, its
request and the call's own timeout), is sent each reply, and returns the SDK result. The clients
only run the calls, blocking or awaited (``Client._run``/``AsyncClient._run``), so paging,
requests and conversions cannot drift apart between the two. Streams stay in the clients: their
iteration is what differs.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import Message

from shared.client import kind_requests as kr
from shared.client.convert import (
    build_request,
    job_from_proto,
    model_from_proto,
    strategy_from_proto,
)
from shared.client.types import (
    BacktestOptions,
    Job,
    ModelInfo,
    OptimizeOptions,
    StrategyInfo,
    TrainOptions,
)
from shared.datasets import DatasetInfo
from shared.errors import InvalidArgumentError
from shared.jobs import JobState, ModelRef
from shared.nodes import NodeStatus
from shared.results import ConfigurationRef
from shared.rpc import serde
from shared.rpc.serde_results import configuration_from_proto
from shared.rpc.v1 import datasets_pb2 as dpb
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import progress_pb2 as ppb
from shared.rpc.v1 import strategy_pb2 as spb

_T = TypeVar("_T")
_Reply = TypeVar("_Reply", bound=Message)


@dataclass(frozen=True)
class Unary:
    """One unary call: ``method`` names the ``OrchestratorStub`` attribute."""

    method: str
    request: Message
    timeout: float | None
    """The call's own deadline in seconds; ``None``: the client's."""


Operation = Generator[Unary, Message, _T]


def _expect(reply: Message, kind: type[_Reply]) -> _Reply:
    if not isinstance(reply, kind):
        raise TypeError(f"expected a {kind.__name__} reply, got {type(reply).__name__}")
    return reply


def submit(
    symbols: Sequence[str],
    timeframes: Sequence[str],
    timeout: float | None,
    options: TrainOptions,
) -> Operation[Job]:
    request = build_request(symbols=symbols, timeframes=timeframes, **options)
    reply = yield Unary("SubmitJob", request, timeout)
    return job_from_proto(_expect(reply, ppb.Job))


def job(job_id: str, timeout: float | None) -> Operation[Job]:
    reply = yield Unary("GetJob", opb.GetJobRequest(job_id=job_id), timeout)
    return job_from_proto(_expect(reply, ppb.Job))


def jobs(states: Sequence[JobState], limit: int, timeout: float | None) -> Operation[list[Job]]:
    """Newest first, at most ``limit``, a page at a time."""
    out: list[Job] = []
    token = ""
    while len(out) < limit:
        request = opb.ListJobsRequest(
            states=[serde.state_to_proto(s) for s in states],
            page_size=min(limit - len(out), 1000),
            page_token=token,
        )
        page = _expect((yield Unary("ListJobs", request, timeout)), opb.ListJobsResponse)
        out.extend(job_from_proto(j) for j in page.jobs)
        token = page.next_page_token
        if not token:
            break
    return out


def cancel(job_id: str, reason: str, timeout: float | None) -> Operation[Job]:
    request = opb.CancelJobRequest(job_id=job_id, reason=reason)
    return job_from_proto(_expect((yield Unary("CancelJob", request, timeout)), ppb.Job))


def nodes(timeout: float | None) -> Operation[list[NodeStatus]]:
    reply = yield Unary("ListNodes", opb.ListNodesRequest(), timeout)
    return [serde.node_status_from_proto(n) for n in _expect(reply, opb.ListNodesResponse).nodes]


def models(strategy: str, timeout: float | None) -> Operation[list[ModelRef]]:
    out: list[ModelRef] = []
    token = ""
    while True:
        request = opb.ListModelsRequest(strategy=strategy, page_token=token)
        page = _expect((yield Unary("ListModels", request, timeout)), opb.ListModelsResponse)
        out.extend(serde.model_ref_from_proto(m) for m in page.models)
        token = page.next_page_token
        if not token:
            return out


def model(name: str, timeout: float | None) -> Operation[ModelInfo]:
    reply = yield Unary("GetModel", opb.GetModelRequest(name=name), timeout)
    return model_from_proto(_expect(reply, opb.Model))


def described(name: str, timeout: float | None) -> Operation[tuple[ModelRef, str]]:
    """A downloaded model's ref and metadata JSON, for ``Download.commit``."""
    reply = _expect((yield Unary("GetModel", opb.GetModelRequest(name=name), timeout)), opb.Model)
    return serde.model_ref_from_proto(reply.ref), reply.metadata_json


def list_datasets(timeout: float | None) -> Operation[list[DatasetInfo]]:
    out: list[DatasetInfo] = []
    token = ""
    while True:
        request = dpb.ListDatasetsRequest(page_token=token)
        page = _expect((yield Unary("ListDatasets", request, timeout)), dpb.ListDatasetsResponse)
        out.extend(serde.dataset_from_proto(d) for d in page.datasets)
        token = page.next_page_token
        if not token:
            return out


def get_dataset(name: str, timeout: float | None) -> Operation[DatasetInfo]:
    reply = yield Unary("GetDataset", dpb.GetDatasetRequest(name=name), timeout)
    return serde.dataset_from_proto(_expect(reply, dpb.Dataset))


def delete_dataset(name: str, timeout: float | None) -> Operation[DatasetInfo]:
    reply = yield Unary("DeleteDataset", dpb.DeleteDatasetRequest(name=name), timeout)
    return serde.dataset_from_proto(_expect(reply, dpb.Dataset))


# --- backtests, optimizations, strategies, configurations ---------------------------------------


def submit_backtest(
    target: str,
    symbols: Sequence[str],
    timeframes: Sequence[str],
    timeout: float | None,
    options: BacktestOptions,
) -> Operation[Job]:
    request = kr.backtest_request(target, symbols, timeframes, options)
    return job_from_proto(_expect((yield Unary("SubmitBacktest", request, timeout)), ppb.Job))


def optimize_request(
    strategy: str,
    symbols: Sequence[str],
    timeframes: Sequence[str],
    space: kr.SpaceSpec,
    timeout: float | None,
    options: OptimizeOptions,
) -> Operation[spb.OptimizeRequest]:
    """The request; a space in shorthand first asks ``ListStrategies`` for the parameters'
    types (an unknown strategy is ``InvalidArgumentError`` on ``strategy``, the known listed)."""
    info = None
    if kr.needs_strategy(space):
        info = find_strategy((yield from strategies(timeout)), strategy)
    return kr.optimize_request(
        strategy, symbols, timeframes, kr.space_to_proto(space, info), options
    )


def find_strategy(known: Sequence[StrategyInfo], name: str) -> StrategyInfo:
    for info in known:
        if info.name == name:
            return info
    names = ", ".join(s.name for s in known) or "none"
    raise InvalidArgumentError(f"unknown strategy {name!r}; known: {names}", field="strategy")


def submit_optimization(
    strategy: str,
    symbols: Sequence[str],
    timeframes: Sequence[str],
    space: kr.SpaceSpec,
    timeout: float | None,
    options: OptimizeOptions,
) -> Operation[Job]:
    request = yield from optimize_request(strategy, symbols, timeframes, space, timeout, options)
    reply = yield Unary("SubmitOptimization", request, timeout)
    return job_from_proto(_expect(reply, ppb.Job))


def strategies(timeout: float | None) -> Operation[list[StrategyInfo]]:
    reply = yield Unary("ListStrategies", opb.ListStrategiesRequest(), timeout)
    listed = _expect(reply, opb.ListStrategiesResponse).strategies
    return [strategy_from_proto(s) for s in listed]


def configurations(strategy: str, timeout: float | None) -> Operation[list[ConfigurationRef]]:
    out: list[ConfigurationRef] = []
    token = ""
    while True:
        request = opb.ListConfigurationsRequest(strategy=strategy, page_token=token)
        reply = yield Unary("ListConfigurations", request, timeout)
        page = _expect(reply, opb.ListConfigurationsResponse)
        out.extend(configuration_from_proto(c) for c in page.configurations)
        token = page.next_page_token
        if not token:
            return out


def configuration(name: str, timeout: float | None) -> Operation[tuple[ConfigurationRef, str]]:
    """A stored configuration's ref and its ``configuration.json`` text."""
    request = opb.GetConfigurationRequest(name=name)
    reply = _expect((yield Unary("GetConfiguration", request, timeout)), opb.Configuration)
    return configuration_from_proto(reply.ref), reply.configuration_json
