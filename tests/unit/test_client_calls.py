"""How the SDK calls: every unary call has a deadline, and reads are retried on UNAVAILABLE by
gRPC's service-config retry policy (not a loop in the SDK), against a fake orchestrator."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf.message import Message

from shared.client import AsyncClient, Client, UnavailableError
from shared.client.policy import IDEMPOTENT_METHODS, SERVICE, service_config
from shared.rpc import plumbing
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import progress_pb2 as ppb

pytestmark = pytest.mark.timeout(60)
_Request = TypeVar("_Request", bound=Message)


class FakeOrchestrator:
    """``ListNodes`` fails its first call with UNAVAILABLE, then answers; ``GetJob`` and
    ``CancelJob`` never answer."""

    def __init__(self) -> None:
        self.list_nodes_calls = 0
        self.cancel_calls = 0
        self._never = asyncio.Event()

    async def ListNodes(
        self, request: opb.ListNodesRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> opb.ListNodesResponse:
        self.list_nodes_calls += 1
        if self.list_nodes_calls == 1:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
        return opb.ListNodesResponse()

    async def GetJob(
        self, request: opb.GetJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ppb.Job:
        await self._never.wait()
        return ppb.Job()

    async def CancelJob(
        self, request: opb.CancelJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> ppb.Job:
        self.cancel_calls += 1
        await context.abort(grpc.StatusCode.UNAVAILABLE, "not now")
        return ppb.Job()

    def handlers(self) -> grpc.GenericRpcHandler[Any, Any]:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "ListNodes": _unary(self.ListNodes, opb.ListNodesRequest),
                "GetJob": _unary(self.GetJob, opb.GetJobRequest),
                "CancelJob": _unary(self.CancelJob, opb.CancelJobRequest),
            },
        )


def _unary(
    method: Callable[[_Request, grpc.aio.ServicerContext[Any, Any]], Awaitable[Message]],
    request: type[_Request],
) -> grpc.RpcMethodHandler[Any, Any]:
    return grpc.unary_unary_rpc_method_handler(
        method, request_deserializer=request.FromString, response_serializer=_serialize
    )


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeOrchestrator, str]]:
    servicer = FakeOrchestrator()
    server = plumbing.create_server()
    server.add_generic_rpc_handlers((servicer.handlers(),))
    port = plumbing.bind(server, "127.0.0.1:0")
    await server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        await server.stop(None)


def test_the_service_config_retries_only_reads_and_only_unavailable() -> None:
    [config] = json.loads(service_config())["methodConfig"]
    assert {(n["service"], n["method"]) for n in config["name"]} == {
        (SERVICE, m) for m in IDEMPOTENT_METHODS
    }
    assert SERVICE == "trainwire.v1.Orchestrator" or SERVICE.endswith(".Orchestrator")
    assert not {"SubmitJob", "CancelJob", "DeleteDataset"} & set(IDEMPOTENT_METHODS)
    assert config["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]


async def test_async_reads_are_retried_on_unavailable(fake: tuple[FakeOrchestrator, str]) -> None:
    servicer, address = fake
    async with AsyncClient(address, timeout=10) as tw:
        assert await tw.nodes() == []
    assert servicer.list_nodes_calls == 2


async def test_sync_reads_are_retried_on_unavailable(fake: tuple[FakeOrchestrator, str]) -> None:
    servicer, address = fake

    def run() -> None:
        with Client(address, timeout=10) as tw:
            assert tw.nodes() == []

    await asyncio.to_thread(run)
    assert servicer.list_nodes_calls == 2


async def test_writes_are_not_retried(fake: tuple[FakeOrchestrator, str]) -> None:
    servicer, address = fake
    async with AsyncClient(address) as tw:
        with pytest.raises(UnavailableError):
            await tw.cancel("j1")
    assert servicer.cancel_calls == 1


async def test_a_call_without_an_answer_ends_at_its_deadline(
    fake: tuple[FakeOrchestrator, str],
) -> None:
    _, address = fake
    start = time.monotonic()
    async with AsyncClient(address) as tw:  # the client's default deadline is far longer...
        with pytest.raises(UnavailableError):
            await tw.job("j1", timeout=0.2)  # ...and one call's own replaces it
    assert time.monotonic() - start < 10


async def test_a_sync_call_without_an_answer_ends_at_the_clients_deadline(
    fake: tuple[FakeOrchestrator, str],
) -> None:
    _, address = fake

    def run() -> float:
        start = time.monotonic()
        with Client(address, timeout=0.2) as tw, pytest.raises(UnavailableError):
            tw.job("j1")
        return time.monotonic() - start

    assert await asyncio.to_thread(run) < 10
