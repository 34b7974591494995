"""The asyncio client: the same API as ``Client``, awaited."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc

from shared import errors
from shared.client import datasets as upload
from shared.client.convert import build_request, job_from_proto, model_from_proto
from shared.client.download import Download
from shared.client.types import Job, ModelInfo
from shared.datasets import DatasetInfo
from shared.jobs import JobEvent, JobState, ModelRef
from shared.nodes import NodeStatus
from shared.rpc import plumbing, serde
from shared.rpc.errors import from_rpc_error
from shared.rpc.v1 import datasets_pb2 as dpb
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc


class AsyncClient:
    """``async with AsyncClient("localhost:50051") as tw: async for e in tw.train(...): ...``"""

    def __init__(
        self, target: str = "localhost:50051", *, security: plumbing.Security = plumbing.INSECURE
    ) -> None:
        self.target = target
        self._channel = plumbing.create_channel(target, security)
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
        self, symbols: Sequence[str] = (), timeframes: Sequence[str] = (), **options: Any
    ) -> AsyncIterator[JobEvent]:
        request = build_request(symbols=symbols, timeframes=timeframes, **options)
        return self._events(self._stub.Train(request))

    async def submit(
        self, symbols: Sequence[str] = (), timeframes: Sequence[str] = (), **options: Any
    ) -> Job:
        request = build_request(symbols=symbols, timeframes=timeframes, **options)
        return job_from_proto(await self._call(self._stub.SubmitJob(request)))

    def watch(self, job_id: str, after_seq: int = 0) -> AsyncIterator[JobEvent]:
        request = opb.WatchJobRequest(job_id=job_id, after_seq=after_seq)
        return self._events(self._stub.WatchJob(request))

    async def job(self, job_id: str) -> Job:
        return job_from_proto(await self._call(self._stub.GetJob(opb.GetJobRequest(job_id=job_id))))

    async def jobs(self, states: Sequence[JobState] = (), limit: int = 100) -> list[Job]:
        out: list[Job] = []
        token = ""
        while len(out) < limit:
            reply = await self._call(
                self._stub.ListJobs(
                    opb.ListJobsRequest(
                        states=[serde.state_to_proto(s) for s in states],
                        page_size=min(limit - len(out), 1000),
                        page_token=token,
                    )
                )
            )
            out.extend(job_from_proto(j) for j in reply.jobs)
            token = reply.next_page_token
            if not token:
                break
        return out

    async def cancel(self, job_id: str, reason: str = "") -> Job:
        request = opb.CancelJobRequest(job_id=job_id, reason=reason)
        return job_from_proto(await self._call(self._stub.CancelJob(request)))

    async def nodes(self) -> list[NodeStatus]:
        reply = await self._call(self._stub.ListNodes(opb.ListNodesRequest()))
        return [serde.node_status_from_proto(n) for n in reply.nodes]

    async def models(self, strategy: str = "") -> list[ModelRef]:
        out: list[ModelRef] = []
        token = ""
        while True:
            reply = await self._call(
                self._stub.ListModels(opb.ListModelsRequest(strategy=strategy, page_token=token))
            )
            out.extend(serde.model_ref_from_proto(m) for m in reply.models)
            token = reply.next_page_token
            if not token:
                return out

    async def model(self, name: str) -> ModelInfo:
        return model_from_proto(
            await self._call(self._stub.GetModel(opb.GetModelRequest(name=name)))
        )

    async def download(self, name: str, directory: str | Path) -> Path:
        download = Download(Path(directory))
        try:
            async for chunk in self._stub.DownloadModel(opb.DownloadModelRequest(name=name)):
                if chunk.HasField("header"):
                    download.begin(serde.model_ref_from_proto(chunk.header))
                else:
                    download.write(chunk.data)
            ref = download.verified()
            described = await self._stub.GetModel(opb.GetModelRequest(name=ref.name))
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

    async def list_datasets(self) -> list[DatasetInfo]:
        out: list[DatasetInfo] = []
        token = ""
        while True:
            reply = await self._call(
                self._stub.ListDatasets(dpb.ListDatasetsRequest(page_token=token))
            )
            out.extend(serde.dataset_from_proto(d) for d in reply.datasets)
            token = reply.next_page_token
            if not token:
                return out

    async def get_dataset(self, name: str) -> DatasetInfo:
        reply = await self._call(self._stub.GetDataset(dpb.GetDatasetRequest(name=name)))
        return serde.dataset_from_proto(reply)

    async def delete_dataset(self, name: str) -> DatasetInfo:
        reply = await self._call(self._stub.DeleteDataset(dpb.DeleteDatasetRequest(name=name)))
        return serde.dataset_from_proto(reply)

    async def _call(self, call: Any) -> Any:
        try:
            return await call
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, self.target) from None

    async def _events(self, stream: Any) -> AsyncIterator[JobEvent]:
        try:
            async for message in stream:
                yield serde.event_from_proto(message)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc, self.target) from None
        finally:
            stream.cancel()
