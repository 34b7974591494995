"""Self-registration and heartbeats: a trainer started with --orchestrator joins on its own,
leaves the pool when its heartbeats stop, and comes back when they resume."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.server import create_server as create_orchestrator
from services.trainer.config import TrainerConfig
from services.trainer.registration import register_forever
from services.trainer.server import create_server as create_trainer
from shared.rpc import plumbing
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc

pytestmark = pytest.mark.timeout(60)


async def _until(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_a_late_trainer_joins_leaves_on_missed_heartbeats_and_returns(
    tmp_path: Path,
) -> None:
    orchestrator = await create_orchestrator(
        OrchestratorConfig(
            listen="127.0.0.1:0",
            state_dir=tmp_path / "state",
            heartbeat_interval_s=0.2,
            probe_interval_s=0.1,
        )
    )
    trainer = await create_trainer(
        TrainerConfig(
            listen="127.0.0.1:0", work_dir=tmp_path / "work", orchestrator=orchestrator.address
        )
    )
    channel = plumbing.create_channel(orchestrator.address)
    stub = orchestrator_pb2_grpc.OrchestratorStub(channel)

    async def node() -> opb.Node | None:
        reply = await stub.ListNodes(opb.ListNodesRequest())
        return reply.nodes[0] if reply.nodes else None

    async def health_is(value: int) -> bool:
        n = await node()
        return n is not None and n.health == value

    try:
        await _until(lambda: health_is(opb.NODE_HEALTH_SERVING))
        joined = await node()
        assert joined is not None
        assert joined.address == trainer.address and joined.source == "registered"
        assert joined.device.kind and joined.slots == 1

        assert trainer.registration is not None
        trainer.registration.cancel()  # the node stops heartbeating but keeps serving
        await _until(lambda: health_is(opb.NODE_HEALTH_UNREACHABLE))
        gone = await node()
        assert gone is not None and "heartbeat" in gone.detail

        trainer.registration = asyncio.create_task(
            register_forever(orchestrator.address, trainer.address, trainer.node_info)
        )
        await _until(lambda: health_is(opb.NODE_HEALTH_SERVING))
    finally:
        await channel.close(None)
        await trainer.stop(0)
        await orchestrator.stop(0)
