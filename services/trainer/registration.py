"""Self-registration: a trainer started with --orchestrator joins the pool on its own.

It calls ``RegisterNode`` with the address the orchestrator should dial and its ``NodeInfo``,
then repeats the call as a heartbeat at the interval the orchestrator answers with. Failures are
logged and retried with backoff: an orchestrator that starts later, or restarts, is joined
when it comes up.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import grpc

from shared.rpc import plumbing
from shared.rpc.v1 import orchestrator_pb2, orchestrator_pb2_grpc, trainer_pb2

_LOGGER = logging.getLogger(__name__)


async def register_forever(
    orchestrator: str,
    address: str,
    node_info: Callable[[], trainer_pb2.NodeInfo],
    security: plumbing.Security = plumbing.INSECURE,
    *,
    timeout_s: float = 5.0,
) -> None:
    interval = 5.0
    backoff = 0.5
    registered = False
    async with plumbing.create_channel(orchestrator, security) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        while True:
            try:
                response = await stub.RegisterNode(
                    orchestrator_pb2.RegisterNodeRequest(address=address, info=node_info()),
                    timeout=timeout_s,
                )
                if not registered:
                    _LOGGER.info("registered with orchestrator %s as %s", orchestrator, address)
                registered = True
                interval = response.heartbeat_interval_seconds or interval
                backoff = 0.5
                await asyncio.sleep(interval)
            except grpc.RpcError as exc:
                if registered:
                    _LOGGER.warning("heartbeat to %s failed: %s", orchestrator, exc)
                registered = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, interval)
