"""The trainer nodes this orchestrator knows, and how healthy they are.

Nodes come from ``--node`` flags (static) or from ``RegisterNode`` (registered); a registered
node heartbeats by registering again, and one that misses ``MISSED_HEARTBEATS`` heartbeats leaves
the pool until its next heartbeat. Probes (grpc.health.v1 ``Check`` then
``Trainer.GetInfo``) run in parallel, each under a short deadline, and their results are cached
for ``probe_interval_s``: a black-holed node costs a submit at most one probe deadline, and
usually nothing. A node that fails a probe leaves the pool and returns when a probe succeeds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace

import grpc

from shared.nodes import NodeHealth, NodeInfo, NodeStatus
from shared.rpc import plumbing, serde
from shared.rpc.v1 import trainer_pb2, trainer_pb2_grpc

_LOGGER = logging.getLogger(__name__)

MISSED_HEARTBEATS = 3


@dataclass
class _Node:
    address: str
    source: str
    channel: grpc.aio.Channel
    health: NodeHealth = NodeHealth.UNKNOWN
    info: NodeInfo | None = None
    last_check: float = 0.0
    latency_ms: float = 0.0
    detail: str = "not probed yet"
    running: set[str] = field(default_factory=set)
    probing: asyncio.Task[None] | None = None
    last_heartbeat: float = 0.0


class NodeRegistry:
    def __init__(
        self,
        *,
        probe_timeout_s: float,
        probe_interval_s: float,
        security: plumbing.Security = plumbing.INSECURE,
        heartbeat_interval_s: float = 5.0,
    ) -> None:
        self._security = security
        self.heartbeat_interval_s = heartbeat_interval_s
        self._probe_timeout_s = probe_timeout_s
        self._probe_interval_s = probe_interval_s
        self._nodes: dict[str, _Node] = {}
        self.changed = asyncio.Event()
        """Set (and replaced) whenever a slot frees or a node's health changes."""

    # -- membership ----------------------------------------------------------------------------

    def add(self, address: str, source: str = "static") -> None:
        if address not in self._nodes:
            self._nodes[address] = _Node(
                address=address,
                source=source,
                channel=plumbing.create_channel(address, self._security),
            )
            _LOGGER.info("node %s added (%s)", address, source)

    def heartbeat(self, address: str) -> bool:
        """Record a registration/heartbeat of ``address``; True when it (re)joins the pool."""
        self.add(address, source="registered")
        node = self._nodes[address]
        node.source = "registered"
        lapsed = self._heartbeat_lapsed(node, time.monotonic())
        node.last_heartbeat = time.monotonic()
        return lapsed or node.health is not NodeHealth.SERVING

    def _heartbeat_lapsed(self, node: _Node, now: float) -> bool:
        if node.source != "registered" or not node.last_heartbeat:
            return False
        return now - node.last_heartbeat > MISSED_HEARTBEATS * self.heartbeat_interval_s

    def addresses(self) -> list[str]:
        return list(self._nodes)

    def channel(self, address: str) -> grpc.aio.Channel:
        return self._nodes[address].channel

    async def close(self) -> None:
        for node in self._nodes.values():
            if node.probing is not None:
                node.probing.cancel()
            await node.channel.close(None)

    # -- slots ---------------------------------------------------------------------------------

    def claim(self, address: str, job_id: str) -> None:
        self._nodes[address].running.add(job_id)

    def release(self, address: str, job_id: str) -> None:
        node = self._nodes.get(address)
        if node is not None and job_id in node.running:
            node.running.discard(job_id)
            self._notify()

    def free_slots(self, address: str) -> int:
        node = self._nodes[address]
        slots = node.info.slots if node.info else 1
        return max(0, slots - len(node.running))

    # -- health --------------------------------------------------------------------------------

    async def refresh(self, *, force: bool = False) -> None:
        """Probe, in parallel, every node whose last probe is older than the interval."""
        now = time.monotonic()
        due = [
            n for n in self._nodes.values() if force or now - n.last_check >= self._probe_interval_s
        ]
        if due:
            await asyncio.gather(*(self._probe_once(n) for n in due))

    async def _probe_once(self, node: _Node) -> None:
        # Concurrent refreshes share one in-flight probe per node.
        if node.probing is None or node.probing.done():
            node.probing = asyncio.create_task(self._probe(node))
        await asyncio.shield(node.probing)

    async def _probe(self, node: _Node) -> None:
        started = time.monotonic()
        before = node.health
        stub = trainer_pb2_grpc.TrainerStub(node.channel)
        if self._heartbeat_lapsed(node, started):
            node.health = NodeHealth.UNREACHABLE
            node.detail = f"missed {MISSED_HEARTBEATS} heartbeats; out until it registers again"
            node.last_check = time.monotonic()
            if before is not node.health:
                _LOGGER.warning("node %s is %s: %s", node.address, node.health.value, node.detail)
                self._notify()
            return
        serving = await plumbing.probe_health(node.channel, self._probe_timeout_s)
        if not serving:
            node.health = NodeHealth.UNREACHABLE
            node.detail = f"no SERVING health answer within {self._probe_timeout_s:.1f}s"
        else:
            try:
                info = await stub.GetInfo(
                    trainer_pb2.GetInfoRequest(), timeout=self._probe_timeout_s
                )
                node.info = serde.node_info_from_proto(info)
                node.health = NodeHealth.NOT_SERVING if info.draining else NodeHealth.SERVING
                node.detail = "draining" if info.draining else ""
            except grpc.RpcError as exc:
                node.health = NodeHealth.UNREACHABLE
                node.detail = f"GetInfo failed: {exc}"
        node.last_check = time.monotonic()
        node.latency_ms = (node.last_check - started) * 1000.0
        if node.health is not before:
            log = _LOGGER.info if node.health is NodeHealth.SERVING else _LOGGER.warning
            log("node %s is %s %s", node.address, node.health.value, node.detail)
            self._notify()

    def mark_unreachable(self, address: str, detail: str) -> None:
        node = self._nodes.get(address)
        if node is not None:
            node.health = NodeHealth.UNREACHABLE
            node.detail = detail
            node.last_check = time.monotonic()
            self._notify()

    def _notify(self) -> None:
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    # -- views ---------------------------------------------------------------------------------

    def statuses(self) -> list[NodeStatus]:
        wall_offset = time.time() - time.monotonic()
        return [
            NodeStatus(
                address=n.address,
                source=n.source,
                health=n.health,
                info=replace(n.info, slots_used=len(n.running)) if n.info else None,
                slots_used=len(n.running),
                last_check=n.last_check + wall_offset if n.last_check else 0.0,
                latency_ms=n.latency_ms,
                detail=n.detail,
            )
            for n in self._nodes.values()
        ]
