"""Wire the orchestrator: registry, job book, dispatcher, repository, servicers, health, and the
optional HTTP API and dashboard (``--http-listen``) in the same event loop."""

from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass, field
from typing import Any

import grpc

from services.signals import until_stop_signal
from shared.jobs import JobState
from shared.metrics import MetricsServer, serve_metrics
from shared.pipeline import validate_request
from shared.rpc import plumbing
from shared.rpc.v1 import orchestrator_pb2, orchestrator_pb2_grpc, upload_pb2, upload_pb2_grpc

from .config import OrchestratorConfig
from .configurations import ConfigurationRepository
from .datasets import DatasetStore
from .dispatch import Dispatcher
from .http_api import HttpApi
from .http_server import HttpServer, start_http
from .jobs import JobBook, JobRecord
from .metrics import OrchestratorMetrics
from .registry import NodeRegistry
from .repository import ModelRepository
from .servicer import OrchestratorServicer
from .store import JobStore, open_store, parse_store_url, secure_state_dir
from .upload import ModelUploadServicer

_LOGGER = logging.getLogger(__name__)
SERVICES = (
    orchestrator_pb2.DESCRIPTOR.services_by_name["Orchestrator"].full_name,
    upload_pb2.DESCRIPTOR.services_by_name["ModelUpload"].full_name,
)


@dataclass
class OrchestratorServer:
    server: grpc.aio.Server
    port: int
    address: str
    book: JobBook
    registry: NodeRegistry
    dispatcher: Dispatcher
    repository: ModelRepository
    datasets: DatasetStore
    health: Any
    store: JobStore
    metrics: OrchestratorMetrics
    uploads: ModelUploadServicer
    metrics_server: MetricsServer | None = None
    http: HttpServer | None = None
    """The HTTP API and dashboard, when ``http_listen`` is set."""
    cleanups: set[asyncio.Task[None]] = field(default_factory=set)
    """Discards of staged uploads in flight (jobs that ended without a model)."""

    def job_finished(self, record: JobRecord) -> None:
        """A job that ended without a model (FAILED, CANCELLED) leaves no staged upload."""
        if record.state is JobState.SUCCEEDED:
            return
        task = asyncio.get_running_loop().create_task(
            asyncio.to_thread(self.uploads.discard, record.job_id)
        )
        self.cleanups.add(task)
        task.add_done_callback(self.cleanups.discard)

    async def stop(self, grace_s: float = 5.0) -> None:
        """Stop serving. Running jobs stay RUNNING in the store: a restart re-attaches to them.

        Watch streams (Train, WatchJob, and the HTTP API's event streams) end at once with
        UNAVAILABLE saying where to resume: they never end on their own, so waiting for them
        would only hold the exit for the whole grace. Calls that do work (uploads, downloads,
        unary calls) get ``grace_s`` to finish."""
        await plumbing.set_serving(self.health, SERVICES, serving=False)
        await self.dispatcher.stop()
        self.book.close()
        if self.http is not None:
            await asyncio.gather(self.server.stop(grace_s), self.http.stop())
        else:
            await self.server.stop(grace_s)
        if self.cleanups:
            await asyncio.gather(*self.cleanups, return_exceptions=True)
        await self.registry.close()
        self.store.close()
        if self.metrics_server is not None:
            self.metrics_server.stop()


async def create_server(config: OrchestratorConfig) -> OrchestratorServer:
    server = plumbing.create_server(config.security)
    port = plumbing.bind(server, config.listen, config.security)
    host = config.listen.rsplit(":", 1)[0]
    if host in ("", "0.0.0.0", "[::]", "::"):
        host = "127.0.0.1"
    address = config.advertise or f"{host}:{port}"

    registry = NodeRegistry(
        probe_timeout_s=config.probe_timeout_s,
        probe_interval_s=config.probe_interval_s,
        heartbeat_interval_s=config.heartbeat_interval_s,
        node_ttl_s=config.node_ttl_s,
        security=config.security,
    )
    for node in config.nodes:
        registry.add(node)
    secure_state_dir(config.state_dir)
    store = await asyncio.to_thread(open_store, config.store, config.state_dir)
    try:
        book = JobBook(store)
    except BaseException:
        store.close()
        raise
    repository = ModelRepository(config.state_dir / "models")
    configurations = await asyncio.to_thread(
        ConfigurationRepository, config.state_dir / "configurations"
    )
    datasets = await asyncio.to_thread(
        DatasetStore,
        config.state_dir / "datasets",
        max_file_bytes=config.max_dataset_file_bytes,
        max_dataset_bytes=config.max_dataset_bytes,
        max_files=config.max_dataset_files,
        max_bars=config.limits.max_bars,
    )
    dispatcher = Dispatcher(
        book,
        registry,
        repository,
        upload_target=address,
        datasets=datasets,
        max_attempts=config.max_attempts,
        queue_timeout_s=config.queue_timeout_s,
    )

    servicer = OrchestratorServicer(
        book=book,
        dispatcher=dispatcher,
        registry=registry,
        repository=repository,
        datasets=datasets,
        validate=functools.partial(validate_request, limits=config.limits),
        configurations=configurations,
    )
    orchestrator_pb2_grpc.add_OrchestratorServicer_to_server(servicer, server)
    uploads = ModelUploadServicer(
        book,
        repository,
        staging=config.state_dir / "staging",
        max_bytes=config.max_model_bytes,
        configurations=configurations,
    )
    upload_pb2_grpc.add_ModelUploadServicer_to_server(uploads, server)
    metrics = OrchestratorMetrics(book, registry, dispatcher)
    uploads.on_stored = metrics.upload_stored
    health = await plumbing.add_health_and_reflection(server, SERVICES)
    http = None
    if config.http_listen:
        api = HttpApi(book=book, servicer=servicer)
        try:
            http = await start_http(config.http_listen, api, config.security)
        except BaseException:
            await registry.close()
            store.close()
            raise
    await server.start()
    orchestrator = OrchestratorServer(
        server=server,
        port=port,
        address=address,
        book=book,
        registry=registry,
        dispatcher=dispatcher,
        repository=repository,
        datasets=datasets,
        health=health,
        store=store,
        metrics=metrics,
        uploads=uploads,
        metrics_server=serve_metrics(config.metrics_listen, metrics.registry),
        http=http,
    )
    book.on_finished = orchestrator.job_finished
    dispatcher.recover()
    dispatcher.start()
    _LOGGER.info(
        "orchestrator serving on %s (uploads via %s), job store %s, nodes: %s%s",
        config.listen,
        address,
        parse_store_url(config.store, config.state_dir).redacted,
        ", ".join(config.nodes) or "none yet",
        f"; dashboard {http.url}" if http is not None else "",
    )
    return orchestrator


async def serve(config: OrchestratorConfig, grace_s: float = 5.0) -> None:
    srv = await create_server(config)
    await until_stop_signal()
    _LOGGER.info("orchestrator shutting down")
    await srv.stop(grace_s)
