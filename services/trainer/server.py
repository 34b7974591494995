"""Wire the trainer node: server factory, health, reflection, graceful shutdown."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from services.signals import until_stop_signal
from shared.metrics import MetricsServer, serve_metrics
from shared.nodes import DeviceKind, NodeDevice, NodeInfo
from shared.rpc import plumbing, serde
from shared.rpc.v1 import trainer_pb2, trainer_pb2_grpc

from .config import TrainerConfig
from .jobs import JobRunner
from .metrics import TrainerMetrics
from .registration import register_forever
from .servicer import TrainerServicer

_LOGGER = logging.getLogger(__name__)
SERVICE_NAME = trainer_pb2.DESCRIPTOR.services_by_name["Trainer"].full_name


@dataclass
class TrainerServer:
    server: grpc.aio.Server
    port: int
    address: str
    runner: JobRunner
    health: Any
    node_info: Callable[[], trainer_pb2.NodeInfo]
    metrics: TrainerMetrics
    metrics_server: MetricsServer | None = None
    registration: asyncio.Task[None] | None = None

    async def stop(self, grace_s: float = 5.0) -> None:
        if self.registration is not None:
            self.registration.cancel()
        await plumbing.set_serving(self.health, [SERVICE_NAME], serving=False)
        await self.runner.shutdown(grace_s)
        await self.server.stop(grace_s)
        if self.metrics_server is not None:
            self.metrics_server.stop()


def advertised_address(listen: str, port: int, advertise: str) -> str:
    """The address peers should dial: ``advertise`` if given, else listen with its real port."""
    if advertise:
        return advertise
    host = listen.rsplit(":", 1)[0]
    if host in ("", "0.0.0.0", "[::]", "::"):
        host = "127.0.0.1"  # a wildcard is not dialable; containers pass --advertise
    return f"{host}:{port}"


def is_loopback(listen: str) -> bool:
    """True when ``listen`` (HOST:PORT) binds a loopback address only: 127.0.0.0/8, ::1 or
    ``localhost``. A wildcard, a hostname or any other address is reachable from elsewhere."""
    host = listen.rpartition(":")[0]
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(config: TrainerConfig) -> None:
    """Refuse to serve an open remote executor: a trainer runs whatever jobs it is sent and
    writes where they say, so one reachable from other hosts needs callers to prove who they
    are — the bearer token, or mTLS (``tls_ca`` makes the server require client certificates).
    Raises ``ValueError`` (the CLI exits 2 with the message) unless ``config.insecure``."""
    security = config.security
    authenticated = bool(security.token) or (
        security.tls_cert is not None and security.tls_ca is not None
    )
    if authenticated or is_loopback(config.listen):
        return
    if config.insecure:
        _LOGGER.warning(
            "serving %s with neither a token nor mTLS (--insecure): anyone who reaches this "
            "port can run jobs on this node",
            config.listen,
        )
        return
    raise ValueError(
        f"refusing to serve {config.listen} with neither a token nor mTLS: anyone who can "
        "reach that port could run jobs on this node. Give the token the orchestrator uses "
        "(env TRAINWIRE_TOKEN, or --token-file PATH), or TLS with client certificates "
        "(--tls-cert, --tls-key and --tls-ca), or listen on 127.0.0.1; --insecure (env "
        "TRAINWIRE_INSECURE=1) serves it open anyway"
    )


async def create_server(
    config: TrainerConfig,
    *,
    pipeline: Callable[..., Any] | None = None,
) -> TrainerServer:
    check_exposure(config)
    from shared.device import select_device  # torch import: only when a server is built
    from shared.pipeline.run import run_training, validate_request

    device = select_device(config.device)
    _set_torch_threads(config.torch_threads, config.slots)
    await asyncio.to_thread(_warm_up)
    server = plumbing.create_server(config.security)
    port = plumbing.bind(server, config.listen, config.security)
    address = advertised_address(config.listen, port, config.advertise)
    # Built on a worker thread: it removes a killed trainer's leftovers (possibly big files).
    runner = await asyncio.to_thread(
        JobRunner,
        work_dir=config.work_dir,
        slots=config.slots,
        node=address,
        pipeline=pipeline or functools.partial(run_training, limits=config.limits),
        data_dir=config.data_dir,
        device=config.device,
        upload_attempts=config.upload_attempts,
        upload_backoff_s=config.upload_backoff_s,
        upload_window_s=config.upload_window_s,
        upload_workers=config.upload_workers,
        security=config.security,
        limits=config.limits,
    )
    metrics = TrainerMetrics(runner, device.torch_device)

    node_device = NodeDevice(
        kind=DeviceKind(device.kind),
        name=device.name,
        torch_device=device.torch_device,
        memory_bytes=device.memory_bytes or 0,
        supports_mixed_precision=device.supports_amp,
    )
    versions = _versions()

    def node_info() -> trainer_pb2.NodeInfo:
        return serde.node_info_to_proto(
            NodeInfo(
                node_id=address,
                address=address,
                device=node_device,
                slots=runner.slots,
                slots_used=len(runner.running()),
                running_jobs=tuple(r.job_id for r in runner.running()),
                versions=versions,
                draining=not runner.accepting,
            )
        )

    trainer_pb2_grpc.add_TrainerServicer_to_server(
        TrainerServicer(
            runner,
            node_info,
            functools.partial(validate_request, limits=config.limits),
            config.orchestrator,
        ),
        server,
    )
    health = await plumbing.add_health_and_reflection(server, [SERVICE_NAME])
    await server.start()
    _LOGGER.info(
        "trainer serving on %s (advertised as %s, device %s)", config.listen, address, device.name
    )
    srv = TrainerServer(
        server=server,
        port=port,
        address=address,
        runner=runner,
        health=health,
        node_info=node_info,
        metrics=metrics,
        metrics_server=serve_metrics(config.metrics_listen, metrics.registry),
    )
    if config.orchestrator:
        srv.registration = asyncio.create_task(
            register_forever(config.orchestrator, address, node_info, config.security),
            name="registration",
        )
    return srv


def _set_torch_threads(requested: int, slots: int) -> None:
    """Give each slot its share of the cores: torch's default (every core per op) makes
    concurrent jobs, and the event loop beside them, fight for the same cores; a batch then
    takes many times longer and Cancel waits that long for the next check."""
    import torch

    spare = max(1, (os.cpu_count() or 1) - 1)  # one core stays with the event loop and gRPC
    threads = requested or max(1, spare // max(1, slots))
    torch.set_num_threads(threads)
    _LOGGER.info("torch uses %d intra-op thread(s) per job", threads)


def _warm_up() -> None:
    """Pay one-time costs at startup, not in the first job: torch's optimizer import (seconds
    on a cold start; ``benchmarks/README.md``) and the backtest engine's compiled loops (read
    from numba's on-disk cache, or compiled once here)."""
    import torch

    from shared.backtest import warm_up as warm_up_backtests

    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    warm_up_backtests()


def _versions() -> dict[str, str]:
    import torch

    from shared import __version__

    return {
        "trainwire": __version__,
        "torch": str(torch.__version__),
        "grpcio": grpc.__version__,
        "python": platform.python_version(),
    }


async def serve(config: TrainerConfig, grace_s: float = 30.0) -> None:
    """Run until SIGTERM/SIGINT, then drain: NOT_SERVING, finish or cancel jobs, exit."""
    srv = await create_server(config)
    await until_stop_signal()
    _LOGGER.info("trainer shutting down (grace %.0fs)", grace_s)
    await srv.stop(grace_s)
