"""The node registry under hostile or careless registrations.

- A ``RegisterNode`` from a static (``--node``) node's address never demotes it: it stays
  static, is never counted out for missed heartbeats, and keeps taking jobs.
- ``RegisterNode`` takes only ``HOST:PORT`` addresses the orchestrator can dial over TCP;
  anything else is INVALID_ARGUMENT naming the field, and nothing joins the registry.
- A registered node that has been out of the pool for longer than the node TTL is forgotten;
  a static node never is.

The registry's clock is replaced by one the test moves, so "three missed heartbeats later" and
"past the TTL" take no wall-clock time.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import pytest_asyncio

from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.registry import MISSED_HEARTBEATS
from services.orchestrator.server import OrchestratorServer
from services.orchestrator.server import create_server as create_orchestrator
from services.trainer.config import TrainerConfig
from services.trainer.server import create_server as create_trainer
from shared.rpc import plumbing
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc, trainer_pb2
from shared.rpc.v1 import progress_pb2 as ppb
from shared.rpc.v1 import strategy_pb2 as spb
from tests.integration.test_bad_input import field_violations
from tests.support.processes import free_port

pytestmark = pytest.mark.timeout(120)

HEARTBEAT_S = 5.0
TTL_S = 60.0


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Orchestrator:
    server: OrchestratorServer
    stub: orchestrator_pb2_grpc.OrchestratorAsyncStub
    clock: FakeClock

    async def nodes(self) -> dict[str, opb.Node]:
        reply = await self.stub.ListNodes(opb.ListNodesRequest())
        return {n.address: n for n in reply.nodes}


async def _orchestrator(tmp_path: Path, nodes: tuple[str, ...]) -> Orchestrator:
    server = await create_orchestrator(
        OrchestratorConfig(
            listen="127.0.0.1:0",
            nodes=nodes,
            state_dir=tmp_path / "state",
            heartbeat_interval_s=HEARTBEAT_S,
            node_ttl_s=TTL_S,
            probe_timeout_s=0.5,
        )
    )
    clock = FakeClock()
    server.registry.clock = clock
    channel = plumbing.create_channel(server.address)
    return Orchestrator(server, orchestrator_pb2_grpc.OrchestratorStub(channel), clock)


@pytest_asyncio.fixture
async def bare(tmp_path: Path) -> AsyncIterator[Orchestrator]:
    """An orchestrator with no nodes and no trainer."""
    orchestrator = await _orchestrator(tmp_path, ())
    try:
        yield orchestrator
    finally:
        await orchestrator.server.stop(0)


# -- a static node stays static ---------------------------------------------------------------


async def test_registering_a_static_nodes_address_never_takes_it_out_of_the_pool(
    tmp_path: Path,
) -> None:
    trainer = await create_trainer(
        TrainerConfig(listen="127.0.0.1:0", work_dir=tmp_path / "work", upload_backoff_s=0.05)
    )
    orchestrator = await _orchestrator(tmp_path, (trainer.address,))
    try:
        reply = await orchestrator.stub.RegisterNode(
            opb.RegisterNodeRequest(address=trainer.address)
        )
        assert reply.heartbeat_interval_seconds == HEARTBEAT_S
        node = (await orchestrator.nodes())[trainer.address]
        assert (node.source, node.health) == ("static", opb.NODE_HEALTH_SERVING)

        # Far past three missed heartbeats (and the TTL): a static node owes no heartbeats.
        orchestrator.clock.advance(10 * MISSED_HEARTBEATS * HEARTBEAT_S + 2 * TTL_S)
        node = (await orchestrator.nodes())[trainer.address]
        assert (node.source, node.health) == ("static", opb.NODE_HEALTH_SERVING), node

        request = spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"])
        request.strategy.training.epochs = 1
        request.data.bars = 1500
        events = [e async for e in orchestrator.stub.Train(request)]
        assert events[-1].state == ppb.JOB_STATE_SUCCEEDED, events[-1]
        assert events[-1].node == trainer.address
    finally:
        await orchestrator.server.stop(0)
        await trainer.stop(0)


# -- addresses ------------------------------------------------------------------------------


BAD_ADDRESSES = [
    pytest.param("A" * 1_000_000 + ":50052", id="1MB-host"),
    pytest.param("gpu host:50052", id="space"),
    pytest.param("unix:/tmp/trainer.sock", id="unix-socket"),
    pytest.param("unix:///tmp/trainer.sock:50052", id="unix-socket-with-port"),
    pytest.param("gpu-host:\u0665\u0660\u0660\u0665\u0662", id="arabic-indic-digits"),
    pytest.param("gpu-host:\u00b2", id="superscript-port"),
    pytest.param("gpu-host:0", id="port-0"),
    pytest.param("gpu-host:65536", id="port-65536"),
    pytest.param("gpu-host", id="no-port"),
    pytest.param(":50052", id="no-host"),
    pytest.param("http://gpu-host:50052", id="url"),
    pytest.param("gpu-h\u00f6st:50052", id="non-ascii-host"),
    pytest.param("gpu-host:50052\n", id="trailing-newline"),
    pytest.param("[::1:50052", id="broken-ipv6"),
    pytest.param("::1:50052", id="ipv6-without-brackets"),
]


@pytest.mark.parametrize("address", BAD_ADDRESSES)
@pytest.mark.parametrize("where", ["address", "info.address"])
async def test_register_node_refuses_an_address_it_cannot_dial(
    bare: Orchestrator, address: str, where: str
) -> None:
    request = (
        opb.RegisterNodeRequest(address=address)
        if where == "address"
        else opb.RegisterNodeRequest(info=trainer_pb2.NodeInfo(address=address))
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await bare.stub.RegisterNode(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert field_violations(err.value) == [where]
    assert "HOST:PORT" in (err.value.details() or "")
    assert len(err.value.details() or "") < 1100
    assert await bare.nodes() == {}


async def test_register_node_without_any_address_is_refused(bare: Orchestrator) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await bare.stub.RegisterNode(opb.RegisterNodeRequest())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(err.value) == ["address"]
    assert await bare.nodes() == {}


async def test_register_node_refuses_a_huge_node_id(bare: Orchestrator) -> None:
    request = opb.RegisterNodeRequest(
        address="127.0.0.1:9", info=trainer_pb2.NodeInfo(node_id="n" * 100_000)
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await bare.stub.RegisterNode(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(err.value) == ["info.node_id"]
    assert await bare.nodes() == {}


@pytest.mark.parametrize(
    "address", ["127.0.0.1:9", "[::1]:9", "trainer-3.internal:50052", "localhost:1"]
)
async def test_register_node_takes_hostnames_and_ip_literals(
    bare: Orchestrator, address: str
) -> None:
    await bare.stub.RegisterNode(opb.RegisterNodeRequest(address=address))
    node = (await bare.nodes())[address]
    assert node.source == "registered"


# -- forgetting nodes that are gone ------------------------------------------------------------


async def test_a_registered_node_that_stops_heartbeating_is_forgotten_after_the_ttl(
    tmp_path: Path,
) -> None:
    trainer = await create_trainer(TrainerConfig(listen="127.0.0.1:0", work_dir=tmp_path / "work"))
    dead_static = f"127.0.0.1:{free_port()}"  # nothing listens there
    orchestrator = await _orchestrator(tmp_path, (dead_static,))
    try:
        await orchestrator.stub.RegisterNode(opb.RegisterNodeRequest(address=trainer.address))
        nodes = await orchestrator.nodes()
        assert nodes[trainer.address].health == opb.NODE_HEALTH_SERVING
        assert nodes[dead_static].health == opb.NODE_HEALTH_UNREACHABLE

        # Heartbeats stop: out of the pool after three missed ones, but still listed.
        orchestrator.clock.advance(MISSED_HEARTBEATS * HEARTBEAT_S + 1)
        nodes = await orchestrator.nodes()
        assert nodes[trainer.address].health == opb.NODE_HEALTH_UNREACHABLE
        assert "heartbeat" in nodes[trainer.address].detail

        # Out for longer than the TTL: forgotten. The static node, out all along, stays.
        orchestrator.clock.advance(TTL_S + 1)
        nodes = await orchestrator.nodes()
        assert list(nodes) == [dead_static]
        assert nodes[dead_static].source == "static"

        # A forgotten node that registers again is back, and serving.
        await orchestrator.stub.RegisterNode(opb.RegisterNodeRequest(address=trainer.address))
        nodes = await orchestrator.nodes()
        assert nodes[trainer.address].health == opb.NODE_HEALTH_SERVING
        assert nodes[trainer.address].source == "registered"
    finally:
        await orchestrator.server.stop(0)
        await trainer.stop(0)


async def test_a_registered_address_nobody_answers_at_is_forgotten_after_the_ttl(
    bare: Orchestrator,
) -> None:
    address = f"127.0.0.1:{free_port()}"
    await bare.stub.RegisterNode(opb.RegisterNodeRequest(address=address))
    assert (await bare.nodes())[address].health == opb.NODE_HEALTH_UNREACHABLE
    bare.clock.advance(TTL_S / 2)
    assert address in await bare.nodes()  # not yet
    bare.clock.advance(TTL_S / 2 + 1)
    assert await bare.nodes() == {}
