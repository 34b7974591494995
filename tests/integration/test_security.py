"""TLS, mTLS and the bearer token, configured once and applied on every hop.

Orchestrator and trainer both serve mTLS with a shared token; the orchestrator dials the trainer,
the trainer uploads to the orchestrator, all through the same ``Security`` record.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.server import OrchestratorServer
from services.orchestrator.server import create_server as create_orchestrator
from services.trainer.config import TrainerConfig
from services.trainer.server import create_server as create_trainer
from shared.rpc import plumbing
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc
from shared.rpc.v1 import progress_pb2 as ppb
from shared.rpc.v1 import strategy_pb2 as spb
from tests.support.certs import Certs, make_certs

pytestmark = pytest.mark.timeout(120)
TOKEN = "s3cret-token"


@pytest.fixture
def certs(tmp_path: Path) -> Certs:
    return make_certs(tmp_path / "certs")


@pytest.fixture
async def secure_orchestrator(tmp_path: Path, certs: Certs) -> AsyncIterator[OrchestratorServer]:
    service = plumbing.Security(
        tls_cert=certs.server_cert, tls_key=certs.server_key, tls_ca=certs.ca, token=TOKEN
    )
    trainer = await create_trainer(
        TrainerConfig(listen="127.0.0.1:0", work_dir=tmp_path / "work", security=service)
    )
    orchestrator = await create_orchestrator(
        OrchestratorConfig(
            listen="127.0.0.1:0",
            nodes=(trainer.address,),
            state_dir=tmp_path / "state",
            security=service,
        )
    )
    try:
        yield orchestrator
    finally:
        await orchestrator.stop(0)
        await trainer.stop(0)


def _client(certs: Certs, **overrides: object) -> plumbing.Security:
    fields: dict[str, object] = {
        "tls_cert": certs.client_cert,
        "tls_key": certs.client_key,
        "tls_ca": certs.ca,
        "token": TOKEN,
    }
    fields.update(overrides)
    return plumbing.Security(**fields)  # type: ignore[arg-type]


async def test_a_job_runs_end_to_end_over_mtls_with_a_token(
    secure_orchestrator: OrchestratorServer, certs: Certs
) -> None:
    request = spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"])
    request.strategy.training.epochs = 1
    request.data.bars = 1200
    async with plumbing.create_channel(secure_orchestrator.address, _client(certs)) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        events = [e async for e in stub.Train(request)]
    assert events[-1].state == ppb.JOB_STATE_SUCCEEDED, events[-1].error.message
    assert events[-1].result.model.sha256


async def test_calls_without_the_token_are_unauthenticated_but_health_is_open(
    secure_orchestrator: OrchestratorServer, certs: Certs
) -> None:
    for token in ("", "wrong"):
        security = _client(certs, token=token)
        async with plumbing.create_channel(secure_orchestrator.address, security) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.ListJobs(opb.ListJobsRequest())
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "Bearer" in (err.value.details() or "")
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in stub.WatchJob(opb.WatchJobRequest(job_id="x")):
                    pass
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            health = health_pb2_grpc.HealthStub(channel)
            reply = await health.Check(health_pb2.HealthCheckRequest())
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_mtls_refuses_a_client_without_a_certificate(
    secure_orchestrator: OrchestratorServer, certs: Certs
) -> None:
    security = _client(certs, tls_cert=None, tls_key=None)
    async with plumbing.create_channel(secure_orchestrator.address, security) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListJobs(opb.ListJobsRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_plaintext_client_cannot_talk_to_a_tls_server(
    secure_orchestrator: OrchestratorServer,
) -> None:
    security = plumbing.Security(token=TOKEN)
    async with plumbing.create_channel(secure_orchestrator.address, security) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListJobs(opb.ListJobsRequest(), timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_sync_client_sends_the_token_over_tls(
    secure_orchestrator: OrchestratorServer, certs: Certs
) -> None:
    """The CLI's blocking channel carries the token too (call credentials over TLS)."""

    def list_nodes(security: plumbing.Security) -> int:
        with plumbing.create_sync_channel(secure_orchestrator.address, security) as channel:
            reply = orchestrator_pb2_grpc.OrchestratorStub(channel).ListNodes(
                opb.ListNodesRequest(), timeout=10
            )
        return len(reply.nodes)

    assert await asyncio.to_thread(list_nodes, _client(certs)) == 1
    with pytest.raises(grpc.RpcError) as err:
        await asyncio.to_thread(list_nodes, _client(certs, token="wrong"))
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_security_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="go together"):
        plumbing.Security(tls_cert=tmp_path / "c.pem").validate()
    with pytest.raises(ValueError, match="no such file"):
        plumbing.Security(tls_ca=tmp_path / "missing.pem").validate()


async def test_token_without_tls_on_both_client_kinds(tmp_path: Path) -> None:
    orchestrator = await create_orchestrator(
        OrchestratorConfig(
            listen="127.0.0.1:0",
            state_dir=tmp_path / "state",
            security=plumbing.Security(token=TOKEN),
        )
    )
    try:

        def list_nodes(token: str) -> int:
            security = plumbing.Security(token=token)
            with plumbing.create_sync_channel(orchestrator.address, security) as channel:
                stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
                return len(stub.ListNodes(opb.ListNodesRequest(), timeout=10).nodes)

        assert await asyncio.to_thread(list_nodes, TOKEN) == 0
        with pytest.raises(grpc.RpcError) as err:
            await asyncio.to_thread(list_nodes, "")
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        security = plumbing.Security(token=TOKEN)
        async with plumbing.create_channel(orchestrator.address, security) as channel:
            reply = await orchestrator_pb2_grpc.OrchestratorStub(channel).ListNodes(
                opb.ListNodesRequest()
            )
            assert len(reply.nodes) == 0
    finally:
        await orchestrator.stop(0)
