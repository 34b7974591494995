"""The public Orchestrator RPCs: protobuf in, dataclasses to the domain, protobuf out."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from shared import errors
from shared.jobs import JobEvent
from shared.rpc import serde
from shared.rpc.errors import rpc_method
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc, progress_pb2
from shared.rpc.v1 import strategy_pb2 as spb
from shared.spec import SpecError, TrainingRequest

from .dispatch import Dispatcher
from .jobs import JobBook, JobRecord
from .placement import choose
from .registry import NodeRegistry
from .repository import ModelRepository

Context = grpc.aio.ServicerContext[Any, Any]
DOWNLOAD_CHUNK_BYTES = 512 * 1024
WIRE_CACHE_EVENTS = 65_536
"""Recent events kept as protobuf messages: fan-out converts each event once, not per watcher."""


def job_to_proto(record: JobRecord) -> progress_pb2.Job:
    msg = progress_pb2.Job(
        job_id=record.job_id,
        state=serde.state_to_proto(record.state),
        node=record.node,
        request_id=record.request.request_id,
        request=serde.request_to_proto(record.request),
        created_at=serde.ts_to_proto(record.created_at),
        started_at=serde.ts_to_proto(record.started_at),
        finished_at=serde.ts_to_proto(record.finished_at),
        percentage=record.percentage,
        message=record.message,
        last_seq=record.last_seq,
        attempt=record.attempt,
    )
    if record.result is not None:
        msg.result.CopyFrom(serde.result_to_proto(record.result))
    if record.error is not None:
        msg.error.CopyFrom(serde.error_to_proto(record.error))
    return msg


class OrchestratorServicer(orchestrator_pb2_grpc.OrchestratorServicer):
    def __init__(
        self,
        *,
        book: JobBook,
        dispatcher: Dispatcher,
        registry: NodeRegistry,
        repository: ModelRepository,
        validate: Callable[[TrainingRequest], None],
    ) -> None:
        self._book = book
        self._dispatcher = dispatcher
        self._registry = registry
        self._repository = repository
        self._validate = validate
        self._wire_cache: OrderedDict[tuple[str, int], progress_pb2.ProgressEvent] = OrderedDict()

    def _wire(self, event: JobEvent) -> progress_pb2.ProgressEvent:
        """The event's message, built once however many watchers stream it (bounded cache)."""
        key = (event.job_id, event.seq)
        message = self._wire_cache.get(key)
        if message is None:
            message = serde.event_to_proto(event)
            self._wire_cache[key] = message
            if len(self._wire_cache) > WIRE_CACHE_EVENTS:
                self._wire_cache.popitem(last=False)
        return message

    async def _submit(self, request: spb.TrainRequest) -> JobRecord:
        train_request = serde.request_from_proto(request)
        try:
            self._validate(train_request)
        except SpecError as exc:
            if request.strategy_yaml and exc.field.startswith("strategy."):
                # The user wrote YAML, so the field to fix is in strategy_yaml.
                path = exc.field.removeprefix("strategy.")
                raise SpecError("strategy_yaml", f"{path}: {exc.message}") from exc
            raise
        # A placement that cannot succeed with the nodes as they are (require_gpu and no GPU
        # node, an unknown named node) is refused now, not queued to fail later.
        await self._registry.refresh()
        choose(train_request.placement, self._registry.statuses())
        record, created = self._book.create(train_request)
        if created:
            self._dispatcher.submit(record)
        return record

    @rpc_method
    async def Train(
        self, request: spb.TrainRequest, context: Context
    ) -> AsyncIterator[progress_pb2.ProgressEvent]:
        record = await self._submit(request)
        async for event in self._book.watch(record.job_id, 0):
            yield self._wire(event)

    @rpc_method
    async def SubmitJob(self, request: spb.TrainRequest, context: Context) -> progress_pb2.Job:
        return job_to_proto(await self._submit(request))

    @rpc_method
    async def WatchJob(
        self, request: opb.WatchJobRequest, context: Context
    ) -> AsyncIterator[progress_pb2.ProgressEvent]:
        async for event in self._book.watch(request.job_id, request.after_seq):
            yield self._wire(event)

    @rpc_method
    async def GetJob(self, request: opb.GetJobRequest, context: Context) -> progress_pb2.Job:
        return job_to_proto(self._book.get(request.job_id))

    @rpc_method
    async def ListJobs(
        self, request: opb.ListJobsRequest, context: Context
    ) -> opb.ListJobsResponse:
        try:
            states = [serde.state_from_proto(s) for s in request.states]
        except ValueError as exc:
            raise errors.InvalidArgumentError(str(exc), field="states") from None
        page, token = self._book.list(states, request.page_size, request.page_token)
        return opb.ListJobsResponse(jobs=[job_to_proto(r) for r in page], next_page_token=token)

    @rpc_method
    async def CancelJob(self, request: opb.CancelJobRequest, context: Context) -> progress_pb2.Job:
        record = await self._dispatcher.cancel(request.job_id, request.reason)
        return job_to_proto(record)

    @rpc_method
    async def ListNodes(
        self, request: opb.ListNodesRequest, context: Context
    ) -> opb.ListNodesResponse:
        await self._registry.refresh()
        return opb.ListNodesResponse(
            nodes=[serde.node_status_to_proto(s) for s in self._registry.statuses()]
        )

    @rpc_method
    async def RegisterNode(
        self, request: opb.RegisterNodeRequest, context: Context
    ) -> opb.RegisterNodeResponse:
        address = request.address or request.info.address
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise errors.InvalidArgumentError(
                f"{address!r} is not HOST:PORT the orchestrator can dial", field="address"
            )
        if self._registry.heartbeat(address):
            asyncio.create_task(self._registry.refresh(force=True))  # noqa: RUF006 - best effort
        return opb.RegisterNodeResponse(
            node_id=request.info.node_id or address,
            heartbeat_interval_seconds=self._registry.heartbeat_interval_s,
        )

    @rpc_method
    async def ListModels(
        self, request: opb.ListModelsRequest, context: Context
    ) -> opb.ListModelsResponse:
        if request.page_size < 0:
            raise errors.InvalidArgumentError("must be >= 0", field="page_size")
        refs = await asyncio.to_thread(self._repository.catalogue, request.strategy)
        token_ok = request.page_token.isascii() and request.page_token.isdigit()
        start = int(request.page_token) if token_ok else 0
        if request.page_token and not token_ok:
            raise errors.InvalidArgumentError(
                "not a token this server returned", field="page_token"
            )
        size = min(request.page_size or 100, 1000)
        page = refs[start : start + size]
        end = start + len(page)
        return opb.ListModelsResponse(
            models=[serde.model_ref_to_proto(r) for r in page],
            next_page_token=str(end) if end < len(refs) else "",
        )

    @rpc_method
    async def GetModel(self, request: opb.GetModelRequest, context: Context) -> opb.Model:
        stored = await asyncio.to_thread(self._repository.get, request.name)
        metadata = stored.metadata
        import json

        return opb.Model(
            ref=serde.model_ref_to_proto(stored.ref),
            training_metrics=_floats(metadata.get("training_metrics")),
            test_metrics=_floats(metadata.get("test_metrics")),
            feature_names=[str(n) for n in metadata.get("feature_names", [])],
            metadata_json=json.dumps(metadata, sort_keys=True),
        )

    @rpc_method
    async def DownloadModel(
        self, request: opb.DownloadModelRequest, context: Context
    ) -> AsyncIterator[opb.DownloadChunk]:
        stored = await asyncio.to_thread(self._repository.get, request.name)
        yield opb.DownloadChunk(header=serde.model_ref_to_proto(stored.ref))
        with stored.weights_path.open("rb") as f:
            while chunk := await asyncio.to_thread(f.read, DOWNLOAD_CHUNK_BYTES):
                yield opb.DownloadChunk(data=chunk)


def _floats(value: object) -> dict[str, float]:
    if not isinstance(value, dict):
        return {}
    return {str(k): float(v) for k, v in value.items() if isinstance(v, int | float)}
