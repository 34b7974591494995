"""The asyncio client: the same API as ``Client``, awaited."""

# ``timeout=`` is the call's gRPC deadline, sent to the server with the call and spanning its
# retries, not a local wait that ``asyncio.timeout`` could replace; it matches ``Client``'s.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeVar, Unpack

import grpc
from google.protobuf.message import Message

from shared import errors
from shared.client import datasets as upload
from shared.client import kind_requests as kr
from shared.client import operations as op
from shared.client.config_download import ConfigurationDownload
from shared.client.convert import build_request
from shared.client.download import Download
from shared.client.policy import DEFAULT_TIMEOUT, service_config
from shared.client.types import (
    BacktestOptions,
    Job,
    ModelInfo,
    OptimizeOptions,
    StrategyInfo,
    TrainOptions,
)
from shared.datasets import DatasetInfo
from shared.jobs import JobEvent, JobState, ModelRef
from shared.nodes import NodeStatus
from shared.results import ConfigurationRef
from shared.rpc import plumbing, serde
from shared.rpc.errors import from_rpc_error
from shared.rpc.serde_results import configuration_from_proto
from shared.rpc.v1 import datasets_pb2 as dpb
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc
from shared.rpc.v1 import progress_pb2 as ppb

_T = TypeVar("_T")


class _EventStream(Protocol):
    """A server stream of events (``grpc.aio.UnaryStreamCall``)."""

    def __aiter__(self) -> AsyncIterator[ppb.ProgressEvent]: ...
    def cancel(self) -> bool: ...


class AsyncClient:
    """``async with AsyncClient("localhost:50051") as tw: async for e in tw.train(...): ...``

    Deadlines and retries as for ``Client``: ``timeout`` seconds per unary call (``None``: none),
    or a call's own ``timeout=``. Its unary methods run ``shared.client.operations``, as
    ``Client``'s do."""

    def __init__(
        self,
        target: str = "localhost:50051",
        *,
        security: plumbing.Security = plumbing.INSECURE,
        timeout: float | None = DEFAULT_TIMEOUT,
    ) -> None:
        self.target = target
        self.timeout = timeout
        self._channel = plumbing.create_channel(target, security, service_config=service_config())
        self._stub = orchestrator_pb2_grpc.OrchestratorStub(self._channel)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close(None)

    def train(
        self,
        symbols: Sequence[str] = (),
        timeframes: Sequence[str] = (),
        **options: Unpack[TrainOptions],
    ) -> AsyncIterator[JobEvent]:
        request = build_request(symbols=symbols, timeframes=timeframes, **options)
        return self._events(self._stub.Train(request))

    async def submit(
        self,
        symbols: Sequence[str] = (),
        timeframes: Sequence[str] = (),
        *,
        timeout: float | None = None,
        **options: Unpack[TrainOptions],
    ) -> Job:
        return await self._run(op.submit(symbols, timeframes, timeout, options))

    def watch(self, job_id: str, *, after_seq: int = 0) -> AsyncIterator[JobEvent]:
        request = opb.WatchJobRequest(job_id=job_id, after_seq=after_seq)
        return self._events(self._stub.WatchJob(request))

    async def job(self, job_id: str, *, timeout: float | None = None) -> Job:
        return await self._run(op.job(job_id, timeout))

    async def jobs(
        self, *, states: Sequence[JobState] = (), limit: int = 100, timeout: float | None = None
    ) -> list[Job]:
        return await self._run(op.jobs(states, limit, timeout))

    async def cancel(self, job_id: str, *, reason: str = "", timeout: float | None = None) -> Job:
        return await self._run(op.cancel(job_id, reason, timeout))

    def backtest(
        self,
        strategy_or_model: str,
        symbols: Sequence[str] = (),
        timeframes: Sequence[str] = (),
        **options: Unpack[BacktestOptions],
    ) -> AsyncIterator[JobEvent]:
        request = kr.backtest_request(strategy_or_model, symbols, timeframes, options)
        return self._events(self._stub.Backtest(request))

    async def submit_backtest(
        self,
        strategy_or_model: str,
        symbols: Sequence[str] = (),
        timeframes: Sequence[str] = (),
        *,
        timeout: float | None = None,
        **options: Unpack[BacktestOptions],
    ) -> Job:
        operation = op.submit_backtest(strategy_or_model, symbols, timeframes, timeout, options)
        return await self._run(operation)

    async def optimize(
        self,
        strategy: str,
        symbols: Sequence[str] = (),
        timeframes: Sequence[str] = (),
        *,
        space: kr.SpaceSpec,
        timeout: float | None = None,
        **options: Unpack[OptimizeOptions],
    ) -> AsyncIterator[JobEvent]:
        """``async for event in tw.optimize(...)``; a shorthand space looks the strategy up
        first (within ``timeout``), so a bad request raises at the first iteration."""
        request = await self._run(
            op.optimize_request(strategy, symbols, timeframes, space, timeout, options)
        )
        async for event in self._events(self._stub.Optimize(request)):
            yield event

    async def submit_optimization(
        self,
        strategy: str,
        symbols: Sequence[str] = (),
        timeframes: Sequence[str] = (),
        *,
        space: kr.SpaceSpec,
        timeout: float | None = None,
        **options: Unpack[OptimizeOptions],
    ) -> Job:
        operation = op.submit_optimization(strategy, symbols, timeframes, space, timeout, options)
        return await self._run(operation)

    async def strategies(self, *, timeout: float | None = None) -> list[StrategyInfo]:
        return await self._run(op.strategies(timeout))

    async def configurations(
        self, *, strategy: str = "", timeout: float | None = None
    ) -> list[ConfigurationRef]:
        return await self._run(op.configurations(strategy, timeout))

    async def configuration(
        self, name: str, *, timeout: float | None = None
    ) -> tuple[ConfigurationRef, str]:
        return await self._run(op.configuration(name, timeout))

    async def download_configuration(self, name: str, directory: str | Path) -> Path:
        download = ConfigurationDownload(Path(directory))
        request = opb.GetConfigurationRequest(name=name)
        try:
            async for chunk in self._stub.DownloadConfiguration(request):
                if chunk.HasField("header"):
                    download.begin(configuration_from_proto(chunk.header))
                else:
                    download.write(chunk.data)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, self.target) from None
        return await asyncio.to_thread(download.commit)

    async def nodes(self, *, timeout: float | None = None) -> list[NodeStatus]:
        return await self._run(op.nodes(timeout))

    async def models(self, *, strategy: str = "", timeout: float | None = None) -> list[ModelRef]:
        return await self._run(op.models(strategy, timeout))

    async def model(self, name: str, *, timeout: float | None = None) -> ModelInfo:
        return await self._run(op.model(name, timeout))

    async def download(
        self, name: str, directory: str | Path, *, timeout: float | None = None
    ) -> Path:
        download = Download(Path(directory))
        try:
            async for chunk in self._stub.DownloadModel(opb.DownloadModelRequest(name=name)):
                if chunk.HasField("header"):
                    download.begin(serde.model_ref_from_proto(chunk.header))
                else:
                    download.write(chunk.data)
            described = op.described(download.verified().name, timeout)
            ref, metadata_json = await self._run(described)
            return download.commit(ref, metadata_json)
        except grpc.RpcError as exc:
            download.abandon()
            raise from_rpc_error(exc, self.target) from None
        except BaseException:
            download.abandon()
            raise

    async def upload_dataset(self, paths: Sequence[str | Path], *, name: str = "") -> DatasetInfo:
        files = await asyncio.to_thread(upload.prepare, paths)
        stream = upload.UploadStream(name or upload.default_name([f.path for f in files]), files)

        async def chunks() -> AsyncIterator[dpb.DatasetChunk]:
            # Reading and compressing happen on a worker thread, a chunk at a time.
            messages = iter(stream)
            while (chunk := await asyncio.to_thread(next, messages, None)) is not None:
                yield chunk

        try:
            reply = await self._stub.UploadDataset(chunks())
        except grpc.RpcError as exc:
            if stream.problem:
                raise ValueError(stream.problem) from None
            raise from_rpc_error(exc, self.target) from None
        if stream.problem:
            raise errors.DataLossError(stream.problem)
        return serde.dataset_from_proto(reply)

    async def list_datasets(self, *, timeout: float | None = None) -> list[DatasetInfo]:
        return await self._run(op.list_datasets(timeout))

    async def get_dataset(self, name: str, *, timeout: float | None = None) -> DatasetInfo:
        return await self._run(op.get_dataset(name, timeout))

    async def delete_dataset(self, name: str, *, timeout: float | None = None) -> DatasetInfo:
        return await self._run(op.delete_dataset(name, timeout))

    async def _run(self, operation: op.Operation[_T]) -> _T:
        """Make the operation's calls in turn, each with its deadline; return its result."""
        try:
            call = next(operation)
            while True:
                call = operation.send(await self._call(call))
        except StopIteration as done:
            result: _T = done.value
            return result

    async def _call(self, call: op.Unary) -> Message:
        method: grpc.aio.UnaryUnaryMultiCallable[Any, Message] = getattr(self._stub, call.method)
        timeout = self.timeout if call.timeout is None else call.timeout
        try:
            return await method(call.request, timeout=timeout)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, self.target) from None

    async def _events(self, stream: _EventStream) -> AsyncIterator[JobEvent]:
        try:
            async for message in stream:
                yield serde.event_from_proto(message)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, self.target) from None
        finally:
            stream.cancel()
