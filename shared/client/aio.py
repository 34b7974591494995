"""The asyncio client: the same API as ``Client``, awaited."""

# ``timeout=`` is the call's gRPC deadline, sent to the server with the call and spanning its
# retries, not a local wait that ``asyncio.timeout`` could replace; it matches ``Client``'s.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Protocol, TypeVar, Unpack

import grpc
from google.protobuf.message import Message

from shared import errors
from shared.client import datasets as upload
from shared.client.convert import build_request, job_from_proto, model_from_proto
from shared.client.download import Download
from shared.client.policy import DEFAULT_TIMEOUT, service_config
from shared.client.types import Job, ModelInfo, TrainOptions
from shared.datasets import DatasetInfo
from shared.jobs import JobEvent, JobState, ModelRef
from shared.nodes import NodeStatus
from shared.rpc import plumbing, serde
from shared.rpc.errors import from_rpc_error
from shared.rpc.v1 import datasets_pb2 as dpb
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc
from shared.rpc.v1 import progress_pb2 as ppb

_Request = TypeVar("_Request", bound=Message)
_Reply = TypeVar("_Reply", bound=Message)


class _EventStream(Protocol):
    """A server stream of events (``grpc.aio.UnaryStreamCall``)."""

    def __aiter__(self) -> AsyncIterator[ppb.ProgressEvent]: ...
    def cancel(self) -> bool: ...


class AsyncClient:
    """``async with AsyncClient("localhost:50051") as tw: async for e in tw.train(...): ...``

    Deadlines and retries as for ``Client``: ``timeout`` seconds per unary call (``None``: none),
    or a call's own ``timeout=``."""

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
        request = build_request(symbols=symbols, timeframes=timeframes, **options)
        return job_from_proto(await self._call(self._stub.SubmitJob, request, timeout))

    def watch(self, job_id: str, *, after_seq: int = 0) -> AsyncIterator[JobEvent]:
        request = opb.WatchJobRequest(job_id=job_id, after_seq=after_seq)
        return self._events(self._stub.WatchJob(request))

    async def job(self, job_id: str, *, timeout: float | None = None) -> Job:
        request = opb.GetJobRequest(job_id=job_id)
        return job_from_proto(await self._call(self._stub.GetJob, request, timeout))

    async def jobs(
        self, *, states: Sequence[JobState] = (), limit: int = 100, timeout: float | None = None
    ) -> list[Job]:
        out: list[Job] = []
        token = ""
        while len(out) < limit:
            request = opb.ListJobsRequest(
                states=[serde.state_to_proto(s) for s in states],
                page_size=min(limit - len(out), 1000),
                page_token=token,
            )
            reply = await self._call(self._stub.ListJobs, request, timeout)
            out.extend(job_from_proto(j) for j in reply.jobs)
            token = reply.next_page_token
            if not token:
                break
        return out

    async def cancel(self, job_id: str, *, reason: str = "", timeout: float | None = None) -> Job:
        request = opb.CancelJobRequest(job_id=job_id, reason=reason)
        return job_from_proto(await self._call(self._stub.CancelJob, request, timeout))

    async def nodes(self, *, timeout: float | None = None) -> list[NodeStatus]:
        reply = await self._call(self._stub.ListNodes, opb.ListNodesRequest(), timeout)
        return [serde.node_status_from_proto(n) for n in reply.nodes]

    async def models(self, *, strategy: str = "", timeout: float | None = None) -> list[ModelRef]:
        out: list[ModelRef] = []
        token = ""
        while True:
            request = opb.ListModelsRequest(strategy=strategy, page_token=token)
            reply = await self._call(self._stub.ListModels, request, timeout)
            out.extend(serde.model_ref_from_proto(m) for m in reply.models)
            token = reply.next_page_token
            if not token:
                return out

    async def model(self, name: str, *, timeout: float | None = None) -> ModelInfo:
        request = opb.GetModelRequest(name=name)
        return model_from_proto(await self._call(self._stub.GetModel, request, timeout))

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
            ref = download.verified()
            described = await self._stub.GetModel(
                opb.GetModelRequest(name=ref.name), timeout=self._deadline(timeout)
            )
            described_ref = serde.model_ref_from_proto(described.ref)
            return download.commit(described_ref, described.metadata_json)
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
        out: list[DatasetInfo] = []
        token = ""
        while True:
            request = dpb.ListDatasetsRequest(page_token=token)
            reply = await self._call(self._stub.ListDatasets, request, timeout)
            out.extend(serde.dataset_from_proto(d) for d in reply.datasets)
            token = reply.next_page_token
            if not token:
                return out

    async def get_dataset(self, name: str, *, timeout: float | None = None) -> DatasetInfo:
        request = dpb.GetDatasetRequest(name=name)
        return serde.dataset_from_proto(await self._call(self._stub.GetDataset, request, timeout))

    async def delete_dataset(self, name: str, *, timeout: float | None = None) -> DatasetInfo:
        request = dpb.DeleteDatasetRequest(name=name)
        reply = await self._call(self._stub.DeleteDataset, request, timeout)
        return serde.dataset_from_proto(reply)

    def _deadline(self, timeout: float | None) -> float | None:
        return self.timeout if timeout is None else timeout

    async def _call(
        self,
        method: grpc.aio.UnaryUnaryMultiCallable[_Request, _Reply],
        request: _Request,
        timeout: float | None,
    ) -> _Reply:
        """One unary call with its deadline (``timeout``, else the client's); typed errors."""
        try:
            return await method(request, timeout=self._deadline(timeout))
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
