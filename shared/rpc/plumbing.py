"""The one place for gRPC plumbing: channel and server options, health, reflection.

Both services and the client build channels and servers here, so message limits, keepalive,
TLS/mTLS, the bearer token and reflection are set once, with the reason beside each option.

Security (``Security``), one record for both sides of every connection:
- ``tls_cert``/``tls_key``: a server presents them; a client presents them as its certificate
  for mTLS. ``tls_ca``: a client verifies servers against it; a server given it *requires*
  client certificates signed by it (mTLS).
- ``token``: a shared bearer token. Servers refuse calls without ``authorization: Bearer
  <token>`` (UNAUTHENTICATED), except health checks and reflection, which load balancers and
  grpcurl ``list`` need; clients send it on every call. ``read_token_file`` reads one kept in a
  file (the CLI's ``--token-file``), so it need not appear on a command line.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

_LOGGER = logging.getLogger(__name__)

# grpc-stubs declares these generic; at runtime they are plain classes.
if TYPE_CHECKING:
    _AioUnaryUnary = grpc.aio.UnaryUnaryClientInterceptor[Any, Any]
    _AioUnaryStream = grpc.aio.UnaryStreamClientInterceptor[Any, Any]
    _AioStreamUnary = grpc.aio.StreamUnaryClientInterceptor[Any, Any]
    _AioStreamStream = grpc.aio.StreamStreamClientInterceptor[Any, Any]
    _UnaryUnary = grpc.UnaryUnaryClientInterceptor[Any, Any]
    _UnaryStream = grpc.UnaryStreamClientInterceptor[Any, Any]
    _StreamUnary = grpc.StreamUnaryClientInterceptor[Any, Any]
    _StreamStream = grpc.StreamStreamClientInterceptor[Any, Any]
    _AioServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    _AioUnaryUnary = grpc.aio.UnaryUnaryClientInterceptor
    _AioUnaryStream = grpc.aio.UnaryStreamClientInterceptor
    _AioStreamUnary = grpc.aio.StreamUnaryClientInterceptor
    _AioStreamStream = grpc.aio.StreamStreamClientInterceptor
    _UnaryUnary = grpc.UnaryUnaryClientInterceptor
    _UnaryStream = grpc.UnaryStreamClientInterceptor
    _StreamUnary = grpc.StreamUnaryClientInterceptor
    _StreamStream = grpc.StreamStreamClientInterceptor
    _AioServerInterceptor = grpc.aio.ServerInterceptor

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


@dataclass(frozen=True, kw_only=True)
class Security:
    """TLS/mTLS material and the bearer token; the default is plaintext without a token."""

    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    token: str = ""
    server_name: str = ""
    """Override the TLS name checked on servers (when dialling by IP); empty = from target."""

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None or self.tls_ca is not None

    def validate(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("--tls-cert and --tls-key go together")
        for path in (self.tls_cert, self.tls_key, self.tls_ca):
            if path is not None and not path.is_file():
                raise ValueError(f"{path}: no such file")
        if self.token and not _TOKEN_RE.fullmatch(self.token):
            raise ValueError(
                "the token must be printable ASCII without spaces (it travels in the "
                "'authorization' header)"
            )


_TOKEN_RE = re.compile(r"[!-~]+")
"""Printable ASCII, no spaces: what an HTTP/2 header value carries unchanged."""


def read_token_file(path: Path) -> str:
    """The bearer token kept in ``path``: its text without surrounding whitespace (the trailing
    newline of ``echo "$TOKEN" > file``, a mounted secret). Raises ``ValueError`` saying what is
    wrong: a token file that cannot be read, or is empty, is a configuration error."""
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"--token-file {path}: cannot read it ({exc})") from None
    if not token:
        raise ValueError(f"--token-file {path}: the file is empty")
    return token


INSECURE = Security()
_PUBLIC_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def _read(path: Path | None) -> bytes | None:
    return path.read_bytes() if path is not None else None


def _channel_credentials(security: Security) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=_read(security.tls_ca),
        private_key=_read(security.tls_key),
        certificate_chain=_read(security.tls_cert),
    )


def _channel_options(security: Security, service_config: str | None) -> list[tuple[str, int | str]]:
    options = list(CHANNEL_OPTIONS)
    if security.server_name:
        options.append(("grpc.ssl_target_name_override", security.server_name))
    if service_config is not None:
        # Per-method policy (retries, timeouts) as gRPC's service-config JSON; retries are on in
        # grpc by default, but say so, since the policy is useless without them.
        options.append(("grpc.service_config", service_config))
        options.append(("grpc.enable_retries", 1))
    return options


def _auth_metadata(security: Security) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {security.token}"),) if security.token else ()


class _AddsToken:
    """Adds ``authorization: Bearer <token>`` to a call's metadata."""

    def __init__(self, token: str) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),)

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()), *self._metadata)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


# grpc.aio files an interceptor under the *first* call type it implements, so each call type
# needs its own class.
class _TokenUnaryUnary(_AddsToken, _AioUnaryUnary):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _TokenUnaryStream(_AddsToken, _AioUnaryStream):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _TokenStreamUnary(_AddsToken, _AioStreamUnary):
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


class _TokenStreamStream(_AddsToken, _AioStreamStream):
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


def _token_interceptors(token: str) -> list[_AddsToken]:
    kinds = (_TokenUnaryUnary, _TokenUnaryStream, _TokenStreamUnary, _TokenStreamStream)
    return [kind(token) for kind in kinds]


class _SyncTokenAuth(grpc.AuthMetadataPlugin):
    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(
        self, context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback
    ) -> None:
        callback((("authorization", f"Bearer {self._token}"),), None)


def create_channel(
    target: str, security: Security = INSECURE, *, service_config: str | None = None
) -> grpc.aio.Channel:
    """An asyncio channel to ``host:port`` with the shared options, TLS and token if configured.

    ``service_config``: gRPC service-config JSON (per-method retry policy), if any."""
    interceptors: Any = _token_interceptors(security.token) if security.token else None
    options = _channel_options(security, service_config)
    if security.tls:
        return grpc.aio.secure_channel(
            target, _channel_credentials(security), options=options, interceptors=interceptors
        )
    return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)


def create_sync_channel(
    target: str, security: Security = INSECURE, *, service_config: str | None = None
) -> grpc.Channel:
    """A blocking channel, for callers without an event loop (scripts, the CLI's helpers).

    ``service_config`` as for ``create_channel``."""
    options = _channel_options(security, service_config)
    if security.tls:
        credentials = _channel_credentials(security)
        if security.token:
            call = grpc.metadata_call_credentials(_SyncTokenAuth(security.token))
            credentials = grpc.composite_channel_credentials(credentials, call)
        return grpc.secure_channel(target, credentials, options=options)
    channel = grpc.insecure_channel(target, options=options)
    if security.token:
        metadata = _auth_metadata(security)
        return grpc.intercept_channel(channel, _SyncMetadataInterceptor(metadata))
    return channel


class _SyncMetadataInterceptor(
    _UnaryUnary,
    _UnaryStream,
    _StreamUnary,
    _StreamStream,
):
    """Bearer token on a plaintext blocking channel (call credentials need TLS)."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def _details(self, details: Any) -> Any:
        return _SyncCallDetails(
            details.method,
            details.timeout,
            (*(details.metadata or ()), *self._metadata),
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


@dataclass(frozen=True)
class _SyncCallDetails(grpc.ClientCallDetails):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


class _BearerTokenServerInterceptor(_AioServerInterceptor):
    """UNAUTHENTICATED for calls without the shared token (health and reflection exempt)."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        method = handler_call_details.method
        if method.startswith(_PUBLIC_SERVICES):
            return await continuation(handler_call_details)
        metadata = dict(handler_call_details.invocation_metadata or ())
        given = metadata.get("authorization", "")
        given_bytes = given.encode() if isinstance(given, str) else given
        if hmac.compare_digest(given_bytes, self._expected):
            return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)
        return _deny(handler, "missing or wrong bearer token: send 'authorization: Bearer <token>'")


def _deny(
    handler: grpc.RpcMethodHandler[Any, Any] | None, message: str
) -> grpc.RpcMethodHandler[Any, Any]:
    async def abort(request: object, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    if handler is not None and handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort)
    if handler is not None and handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    if handler is not None and handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort)
    return grpc.unary_unary_rpc_method_handler(abort)


def create_server(security: Security = INSECURE) -> grpc.aio.Server:
    interceptors = [_BearerTokenServerInterceptor(security.token)] if security.token else []
    return grpc.aio.server(options=list(SERVER_OPTIONS), interceptors=interceptors)


def bind(server: grpc.aio.Server, listen: str, security: Security = INSECURE) -> int:
    """Bind ``host:port`` (port 0 picks a free one) and return the port; fail loudly.

    With ``security.tls_cert`` the port serves TLS; with ``security.tls_ca`` as well, mTLS.
    """
    if security.tls_cert is not None and security.tls_key is not None:
        credentials = grpc.ssl_server_credentials(
            [(security.tls_key.read_bytes(), security.tls_cert.read_bytes())],
            root_certificates=_read(security.tls_ca),
            require_client_auth=security.tls_ca is not None,
        )
        port = server.add_secure_port(listen, credentials)
    else:
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
