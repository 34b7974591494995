"""The one place for gRPC plumbing: channel and server options, health, reflection.

Both services and the client build channels and servers here, so message limits, keepalive and
reflection are set once, with the reason beside each option.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

_LOGGER = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Per-message cap on both sides. Models travel in ≤ 1 MiB chunks, so nothing legitimate comes
near it; a larger message is an error, refused before it is buffered."""

CHANNEL_OPTIONS: Sequence[tuple[str, int | str]] = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # Training streams can be quiet for minutes between epochs on slow nodes; keepalive pings
    # notice a dead peer (a crashed trainer, a cut network) in ~30 s instead of hours.
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # Reconnect quickly after a trainer restarts, rather than backing off for up to 2 minutes.
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 5_000),
    # Each node gets its own connection even if two addresses resolve alike.
    ("grpc.use_local_subchannel_pool", 1),
)

SERVER_OPTIONS: Sequence[tuple[str, int | str]] = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # Accept the clients' 20 s keepalive pings instead of answering GOAWAY too_many_pings.
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    # SO_REUSEPORT would let two servers silently share a port; a second orchestrator on the same
    # port must fail to start instead.
    ("grpc.so_reuseport", 0),
)


def create_channel(target: str) -> grpc.aio.Channel:
    """An insecure asyncio channel to ``host:port`` with the shared options."""
    return grpc.aio.insecure_channel(target, options=list(CHANNEL_OPTIONS))


def create_sync_channel(target: str) -> grpc.Channel:
    """A blocking channel, for callers without an event loop (scripts, the CLI's helpers)."""
    return grpc.insecure_channel(target, options=list(CHANNEL_OPTIONS))


def create_server() -> grpc.aio.Server:
    return grpc.aio.server(options=list(SERVER_OPTIONS))


def bind(server: grpc.aio.Server, listen: str) -> int:
    """Bind ``host:port`` (port 0 picks a free one) and return the port; fail loudly."""
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen}: address in use or not available")
    return port


async def add_health_and_reflection(
    server: grpc.aio.Server, service_names: Sequence[str]
) -> HealthServicer:
    """Serve grpc.health.v1 (overall "" plus each service) and reflection for grpcurl."""
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    for name in ("", *service_names):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        (
            *service_names,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    return health


async def set_serving(health: HealthServicer, service_names: Sequence[str], serving: bool) -> None:
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for name in ("", *service_names):
        await health.set(name, status)


async def probe_health(channel: grpc.aio.Channel, deadline_s: float) -> bool:
    """True when the peer answers SERVING within ``deadline_s`` seconds (a gRPC deadline)."""
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        response = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=deadline_s)
    except grpc.RpcError as exc:
        _LOGGER.debug("health probe failed: %s", exc)
        return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)
