"""The public Orchestrator RPCs: protobuf in, dataclasses to the domain, protobuf out."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any, TypeVar

import grpc

from shared import errors
from shared.artifacts.metadata import ArtifactError, check_metadata
from shared.datasets import DatasetInfo, check_dataset_name, check_sha256
from shared.ids import check_address, check_node_id
from shared.job_requests import BacktestRequest, OptimizationRequest
from shared.jobs import JobEvent
from shared.results import OptimizationSummary, OptimizerProgress
from shared.rpc import serde, serde_requests
from shared.rpc.errors import rpc_method
from shared.rpc.v1 import datasets_pb2 as dpb
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc, progress_pb2
from shared.rpc.v1 import strategy_pb2 as spb
from shared.spec import DataSource, SpecError, TrainingRequest

from . import pages
from .configurations import ConfigurationRepository
from .datasets import DatasetStore, receive_dataset
from .dispatch import Dispatcher
from .jobs import JobBook, JobRecord, job_key
from .placement import choose
from .registry import NodeRegistry
from .repository import ModelRepository, model_key
from .servicer_configurations import ConfigurationRpcs
from .servicer_kinds import KindRpcs

Context = grpc.aio.ServicerContext[Any, Any]
R = TypeVar("R", TrainingRequest, BacktestRequest, OptimizationRequest)
DOWNLOAD_CHUNK_BYTES = 512 * 1024
WIRE_CACHE_EVENTS = 65_536
"""Recent events kept as protobuf messages: fan-out converts each event once, not per watcher."""
REASON_MAX = 1024
"""Longest CancelJob.reason: it is stored in the job's events and shown to every watcher."""
STRATEGY_MAX = 80
_STRATEGY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MODEL_KEY_SHAPE = (str, str, int)
DATASET_KEY_SHAPE = (str,)


def dataset_key(info: DatasetInfo) -> tuple[str]:
    """ListDatasets' order (by name) and the key of its page tokens."""
    return (info.name,)


def job_to_proto(record: JobRecord) -> progress_pb2.Job:
    request = record.request
    msg = progress_pb2.Job(
        job_id=record.job_id,
        state=serde.state_to_proto(record.state),
        node=record.node,
        request_id=request.request_id,
        kind=serde_requests.kind_to_proto(request.kind),
        created_at=serde.ts_to_proto(record.created_at),
        percentage=record.percentage,
        message=record.message,
        last_seq=record.last_seq,
        attempt=record.attempt,
    )
    # Unset until they happen (JSON clients see no 1970-01-01).
    if record.started_at:
        msg.started_at.CopyFrom(serde.ts_to_proto(record.started_at))
    if record.finished_at:
        msg.finished_at.CopyFrom(serde.ts_to_proto(record.finished_at))
    if isinstance(request, BacktestRequest):
        msg.backtest.CopyFrom(serde_requests.backtest_request_to_proto(request))
    elif isinstance(request, OptimizationRequest):
        msg.optimize.CopyFrom(serde_requests.optimization_request_to_proto(request))
    else:
        msg.request.CopyFrom(serde.request_to_proto(request))
    if record.result is not None:
        msg.result.CopyFrom(serde.result_to_proto(record.result))
    if record.error is not None:
        msg.error.CopyFrom(serde.error_to_proto(record.error))
    _snapshot(msg, record)
    return msg


def _snapshot(msg: progress_pb2.Job, record: JobRecord) -> None:
    """Where the job is, for a poller: step i/n and its percentage, ETA, last update, the
    optimizer's progress, and a backtest's or optimization's result once it has one."""
    last, progress = record.last_event, record.progress
    if progress is not None:
        msg.step_index, msg.step_total = progress.step_index, progress.step_total
        msg.step_name, msg.step_percentage = progress.step_name, progress.step_percentage
        if progress.eta_seconds is not None and not record.state.terminal:
            msg.eta_seconds = progress.eta_seconds
        msg.device = progress.device
    if last is None:
        return
    msg.updated_at.CopyFrom(serde.ts_to_proto(last.time))
    msg.device = last.device or msg.device
    if last.backtest_result is not None:
        msg.backtest_result.CopyFrom(serde.backtest_to_proto(last.backtest_result))
    optimized = last.optimize_result
    if optimized is not None:
        msg.optimize_result.CopyFrom(serde.optimization_to_proto(optimized))
    optimizer = record.optimizer or _final_optimizer(optimized)
    if optimizer is not None:
        msg.optimizer.CopyFrom(serde.optimizer_to_proto(optimizer))


def _final_optimizer(result: OptimizationSummary | None) -> OptimizerProgress | None:
    """A finished optimization's last progress, from its result (a job read from the store)."""
    if result is None:
        return None
    scored = [t for t in result.trials if t.state in ("complete", "failed")]
    return OptimizerProgress(
        iteration=len(scored),
        total_iterations=len(scored),
        current_score=scored[-1].score if scored else math.nan,
        best_score=result.best_score,
        best_params=dict(result.best_params),
        objective=result.objective,
    )


class OrchestratorServicer(ConfigurationRpcs, KindRpcs, orchestrator_pb2_grpc.OrchestratorServicer):
    def __init__(
        self,
        *,
        book: JobBook,
        dispatcher: Dispatcher,
        registry: NodeRegistry,
        repository: ModelRepository,
        datasets: DatasetStore,
        validate: Callable[[TrainingRequest], None],
        configurations: ConfigurationRepository | None = None,
    ) -> None:
        self._configurations = configurations
        self._datasets = datasets
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
        self._check_open()
        train_request = serde.request_from_proto(request)
        try:
            self._validate(train_request)
        except SpecError as exc:
            if request.strategy_yaml and exc.field.startswith("strategy."):
                # The user wrote YAML, so the field to fix is in strategy_yaml.
                path = exc.field.removeprefix("strategy.")
                raise SpecError("strategy_yaml", f"{path}: {exc.message}") from exc
            date = exc.field.removeprefix("data.")
            if (
                request.strategy_yaml
                and date in ("start", "end")
                and not getattr(request.data, date)
            ):
                # The date came from the YAML's training_data, not from the request's data.
                raise SpecError("strategy_yaml", f"training_data.{date}: {exc.message}") from exc
            raise
        return await self._admit(train_request)

    def _check_open(self) -> None:
        if self._book.closing:
            raise errors.UnavailableError(
                "the orchestrator is shutting down; submit the job again once it is back",
                reason="SHUTTING_DOWN",
            )

    async def _admit(self, request: R) -> JobRecord:
        """Queue a validated request of any kind: pin its dataset version, refuse a placement
        that cannot succeed, create the job (or find it again by request_id)."""
        if request.data.source is DataSource.DATASET:
            request = await self._pin_dataset(request)
        # A placement that cannot succeed with the nodes as they are (require_gpu and no GPU
        # node, an unknown named node) is refused now, not queued to fail later.
        await self._registry.refresh()
        choose(request.placement, self._registry.statuses())
        record, created = await self._book.create_job(request)
        if created:
            self._dispatcher.submit(record)
        return record

    async def _pin_dataset(self, request: R) -> R:
        """The request with ``data.dataset_sha256`` set to the version the job will train on:
        the one the request names, else the dataset's newest (or, for a repeated
        ``request_id``, the version its job was given), so the job's data cannot change under
        it. An unknown dataset or version is NOT_FOUND now, not a failed job later."""
        data = request.data
        check_dataset_name(data.dataset, "data.dataset")
        if data.dataset_sha256:
            check_sha256(data.dataset_sha256, "data.dataset_sha256")
            ref, field = f"{data.dataset}@{data.dataset_sha256}", "data.dataset_sha256"
        else:
            earlier = await self._book.find_request(request.request_id)
            pinned = earlier.request.data if earlier is not None else None
            if pinned is not None and pinned.dataset == data.dataset and pinned.dataset_sha256:
                return replace(request, data=replace(data, dataset_sha256=pinned.dataset_sha256))
            ref, field = data.dataset, "data.dataset"
        info = await asyncio.to_thread(self._datasets.get, ref, field)
        return replace(request, data=replace(data, dataset_sha256=info.sha256))

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
        return job_to_proto(await self._book.fetch(request.job_id))

    @rpc_method
    async def ListJobs(
        self, request: opb.ListJobsRequest, context: Context
    ) -> opb.ListJobsResponse:
        try:
            states = [serde.state_from_proto(s) for s in request.states]
        except ValueError as exc:
            raise errors.InvalidArgumentError(str(exc), field="states") from None
        size = pages.page_size(request.page_size, 50)
        token_key = pages.decode_token(request.page_token, "jobs", (float, str))
        after = (float(token_key[0]), str(token_key[1])) if token_key is not None else None
        # One page off the store (and one more, to know whether a next page exists).
        found = await self._book.list_jobs(states, after=after, limit=size + 1)
        jobs, token = pages.paginate(
            found,
            kind="jobs",
            key=job_key,
            shape=(float, str),
            to_proto=job_to_proto,
            page_token=request.page_token,
            size=size,
            descending=True,
        )
        return opb.ListJobsResponse(jobs=jobs, next_page_token=token)

    @rpc_method
    async def CancelJob(self, request: opb.CancelJobRequest, context: Context) -> progress_pb2.Job:
        if len(request.reason) > REASON_MAX:
            raise errors.InvalidArgumentError(
                f"{len(request.reason)} characters; a reason is at most {REASON_MAX}",
                field="reason",
            )
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
        if request.address or not request.info.address:
            address = check_address(request.address, field="address")
        else:
            address = check_address(request.info.address, field="info.address")
        if request.info.node_id:
            check_node_id(request.info.node_id, field="info.node_id")
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
        size = pages.page_size(request.page_size, 100)
        strategy = request.strategy
        if strategy and not (
            len(strategy) <= STRATEGY_MAX
            and strategy.isascii()
            and _STRATEGY_RE.fullmatch(strategy)
        ):
            raise errors.InvalidArgumentError(
                f"not a strategy name: use the strategy as ListModels shows it (up to "
                f"{STRATEGY_MAX} letters, digits, '.', '_' or '-'), or none for every strategy",
                field="strategy",
            )
        pages.decode_token(request.page_token, "models", MODEL_KEY_SHAPE)  # before any disk
        refs = await asyncio.to_thread(self._repository.catalogue, strategy)
        models, token = pages.paginate(
            refs,
            kind="models",
            key=model_key,
            shape=MODEL_KEY_SHAPE,
            to_proto=serde.model_ref_to_proto,
            page_token=request.page_token,
            size=size,
        )
        return opb.ListModelsResponse(models=models, next_page_token=token)

    @rpc_method
    async def GetModel(self, request: opb.GetModelRequest, context: Context) -> opb.Model:
        stored = await asyncio.to_thread(self._repository.get, request.name)
        try:
            summary = check_metadata(stored.metadata)
        except ArtifactError as exc:  # stored before uploads were checked this way
            raise errors.DataLossError(
                f"model {stored.ref.name} has unreadable metadata ({exc}); re-train it"
            ) from exc
        return opb.Model(
            ref=serde.model_ref_to_proto(stored.ref),
            training_metrics=summary.training_metrics,
            test_metrics=summary.test_metrics,
            feature_names=list(summary.feature_names),
            metadata_json=json.dumps(stored.metadata, sort_keys=True),
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

    # -- datasets ----------------------------------------------------------------------------

    @rpc_method
    async def UploadDataset(
        self, request_iterator: AsyncIterator[dpb.DatasetChunk], context: Context
    ) -> dpb.Dataset:
        info = await receive_dataset(self._datasets, request_iterator, context)
        return serde.dataset_to_proto(info)

    @rpc_method
    async def ListDatasets(
        self, request: dpb.ListDatasetsRequest, context: Context
    ) -> dpb.ListDatasetsResponse:
        size = pages.page_size(request.page_size, 100)
        pages.decode_token(request.page_token, "datasets", DATASET_KEY_SHAPE)  # before any disk
        found = await asyncio.to_thread(self._datasets.listing)
        datasets, token = pages.paginate(
            found,
            kind="datasets",
            key=dataset_key,
            shape=DATASET_KEY_SHAPE,
            to_proto=serde.dataset_to_proto,
            page_token=request.page_token,
            size=size,
        )
        return dpb.ListDatasetsResponse(datasets=datasets, next_page_token=token)

    @rpc_method
    async def GetDataset(self, request: dpb.GetDatasetRequest, context: Context) -> dpb.Dataset:
        info = await asyncio.to_thread(self._datasets.get, request.name)
        return serde.dataset_to_proto(info)

    @rpc_method
    async def DeleteDataset(
        self, request: dpb.DeleteDatasetRequest, context: Context
    ) -> dpb.Dataset:
        if "@" in request.name:
            raise errors.InvalidArgumentError(
                "DeleteDataset deletes every version of a dataset: give its name without @sha256",
                field="name",
            )
        info = await asyncio.to_thread(self._datasets.delete, request.name)
        return serde.dataset_to_proto(info)

    @rpc_method
    async def DownloadDatasetFile(
        self, request: dpb.DownloadDatasetFileRequest, context: Context
    ) -> AsyncIterator[dpb.DatasetChunk]:
        path = await asyncio.to_thread(self._datasets.blob, request.sha256)
        try:
            f = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:  # deleted between the two steps
            raise errors.NotFoundError(
                f"no dataset file with sha256 {request.sha256}", field="sha256"
            ) from None
        try:
            size = await asyncio.to_thread(lambda: os.fstat(f.fileno()).st_size)
            yield dpb.DatasetChunk(
                file=dpb.DatasetFileHeader(sha256=request.sha256, size_bytes=size)
            )
            while chunk := await asyncio.to_thread(f.read, DOWNLOAD_CHUNK_BYTES):
                yield dpb.DatasetChunk(data=chunk)
        finally:
            await asyncio.to_thread(f.close)
