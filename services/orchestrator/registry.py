"""The trainer nodes this orchestrator knows, and how healthy they are.

Nodes come from ``--node`` flags (static) or from ``RegisterNode`` (registered). A static node
stays static: a registration from its address refreshes its health, never its source, and it
never leaves the registry. A registered node heartbeats by registering again; one that misses
``MISSED_HEARTBEATS`` heartbeats leaves the pool until its next heartbeat, and one that has been
out of the pool (not SERVING, and no heartbeat) for longer than ``node_ttl_s`` is forgotten:
it leaves ``ListNodes`` until it registers again.

Probes (grpc.health.v1 ``Check`` then ``Trainer.GetInfo``) run in parallel, each under a short
deadline, and their results are cached for ``probe_interval_s``: a black-holed node costs a
submit at most one probe deadline, and usually nothing. A node that fails a probe leaves the
pool and returns when a probe succeeds.

Slots: a node's used slots are the jobs this orchestrator runs there plus the jobs the node
reports (``GetInfo.running_jobs``) that this orchestrator did not place there (another
orchestrator's, or ``Trainer.Train`` called directly). A node that refused a job for want of a
slot counts as full until its next probe.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from shared.nodes import NodeHealth, NodeInfo, NodeStatus
from shared.rpc import plumbing

from . import trainer_client
from .trainer_client import TrainerClient

_LOGGER = logging.getLogger(__name__)

MISSED_HEARTBEATS = 3
DETAIL_CHARS = 200
"""A node's detail (why it is out) is cut to this: it is shown in every placement message."""
STATIC = "static"
REGISTERED = "registered"
RECOVERED = "recovered"


@dataclass
class _Node:
    address: str
    source: str
    client: TrainerClient
    health: NodeHealth = NodeHealth.UNKNOWN
    info: NodeInfo | None = None
    last_check: float = 0.0
    latency_ms: float = 0.0
    detail: str = "not probed yet"
    running: set[str] = field(default_factory=set)
    """Jobs this orchestrator runs on the node now."""
    placed: set[str] = field(default_factory=set)
    """Jobs this orchestrator placed on the node that its last report may still list."""
    full: bool = False
    """The node refused a job for want of a slot; it counts as full until its next probe."""
    probing: asyncio.Task[None] | None = None
    last_heartbeat: float = 0.0
    out_since: float = 0.0
    """When the node last left the pool (or was added, if it never joined); 0 while SERVING."""

    def used(self) -> int:
        slots = self.info.slots if self.info else 1
        if self.full:
            return max(slots, len(self.running))
        if self.info is None:
            return len(self.running)
        if self.info.running_jobs:
            foreign = set(self.info.running_jobs) - self.placed - self.running
            return len(self.running) + len(foreign)
        return max(len(self.running), self.info.slots_used)


class NodeRegistry:
    def __init__(
        self,
        *,
        probe_timeout_s: float,
        probe_interval_s: float,
        security: plumbing.Security = plumbing.INSECURE,
        heartbeat_interval_s: float = 5.0,
        node_ttl_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        connect: Callable[[str], TrainerClient] | None = None,
    ) -> None:
        self._connect = connect or (lambda address: trainer_client.connect(address, security))
        self.heartbeat_interval_s = heartbeat_interval_s
        self._probe_timeout_s = probe_timeout_s
        self._probe_interval_s = probe_interval_s
        self._node_ttl_s = node_ttl_s
        self.clock = clock
        """The monotonic clock of heartbeats, probes and the TTL (a fake one in tests)."""
        self._nodes: dict[str, _Node] = {}
        self.changed = asyncio.Event()
        """Set (and replaced) whenever a slot frees or a node's health changes."""

    # -- membership ----------------------------------------------------------------------------

    def add(self, address: str, source: str = STATIC) -> None:
        if address not in self._nodes:
            self._nodes[address] = _Node(
                address=address,
                source=source,
                client=self._connect(address),
                out_since=self.clock(),
            )
            _LOGGER.info("node %s added (%s)", address, source)

    def heartbeat(self, address: str) -> bool:
        """Record a registration/heartbeat of ``address``; True when it should be probed now
        (it (re)joins the pool, or is not serving). A static node's source never changes."""
        self.add(address, source=REGISTERED)
        node = self._nodes[address]
        if node.source == STATIC:
            return node.health is not NodeHealth.SERVING
        node.source = REGISTERED
        now = self.clock()
        lapsed = self._heartbeat_lapsed(node, now)
        node.last_heartbeat = now
        return lapsed or node.health is not NodeHealth.SERVING

    def _heartbeat_lapsed(self, node: _Node, now: float) -> bool:
        if node.source != REGISTERED or not node.last_heartbeat:
            return False
        return now - node.last_heartbeat > MISSED_HEARTBEATS * self.heartbeat_interval_s

    def client(self, address: str) -> TrainerClient:
        """The client of the node at ``address`` (one per node, shared by every job there)."""
        return self._nodes[address].client

    async def close(self) -> None:
        for node in self._nodes.values():
            if node.probing is not None:
                node.probing.cancel()
            await node.client.close()

    async def _forget_expired(self, now: float) -> None:
        """Drop registered nodes out of the pool, and silent, for longer than the TTL."""
        expired = [
            n
            for n in self._nodes.values()
            if n.source != STATIC
            and n.health is not NodeHealth.SERVING
            and not n.running
            and (n.probing is None or n.probing.done())
            and now - n.out_since > self._node_ttl_s
            and now - n.last_heartbeat > self._node_ttl_s
        ]
        for node in expired:
            del self._nodes[node.address]
            _LOGGER.info(
                "node %s forgotten: out of the pool for over %.0fs (%s)",
                node.address,
                self._node_ttl_s,
                node.detail,
            )
            await node.client.close()
        if expired:
            self._notify()

    # -- slots ---------------------------------------------------------------------------------

    def claim(self, address: str, job_id: str) -> None:
        node = self._nodes[address]
        node.running.add(job_id)
        node.placed.add(job_id)

    def release(self, address: str, job_id: str) -> None:
        node = self._nodes.get(address)
        if node is not None and job_id in node.running:
            node.running.discard(job_id)
            self._notify()

    async def refused_for_slots(self, address: str, detail: str) -> None:
        """The node answered RESOURCE_EXHAUSTED: read its slots again, and count it as full
        until its next regular probe (so a node whose report disagrees is not hammered)."""
        node = self._nodes.get(address)
        if node is None:
            return
        await self._probe_once(node)
        node.full = True
        _LOGGER.info("node %s has no free slot: %s", address, detail)

    # -- health --------------------------------------------------------------------------------

    async def refresh(self, *, force: bool = False) -> None:
        """Probe, in parallel, every node whose last probe is older than the interval; forget
        registered nodes that have been out for longer than the TTL."""
        now = self.clock()
        await self._forget_expired(now)
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
        started = self.clock()
        before = (node.health, node.used())
        if self._heartbeat_lapsed(node, started):
            self._set_health(
                node,
                NodeHealth.UNREACHABLE,
                f"missed {MISSED_HEARTBEATS} heartbeats; out until it registers again",
            )
            node.last_check = self.clock()
            self._changed(node, before)
            return
        probe = await node.client.probe(self._probe_timeout_s)
        if probe.info is None:
            self._set_health(node, NodeHealth.UNREACHABLE, probe.detail)
        else:
            node.info = probe.info
            node.full = False
            node.placed &= node.running | set(probe.info.running_jobs)
            self._set_health(
                node,
                NodeHealth.NOT_SERVING if probe.info.draining else NodeHealth.SERVING,
                "draining" if probe.info.draining else "",
            )
        node.last_check = self.clock()
        node.latency_ms = (node.last_check - started) * 1000.0
        self._changed(node, before)

    def _set_health(self, node: _Node, health: NodeHealth, detail: str) -> None:
        if health is NodeHealth.SERVING:
            node.out_since = 0.0
        elif not node.out_since:
            node.out_since = self.clock()
        node.health = health
        node.detail = detail if len(detail) <= DETAIL_CHARS else detail[: DETAIL_CHARS - 1] + "…"

    def _changed(self, node: _Node, before: tuple[NodeHealth, int]) -> None:
        if node.health is not before[0]:
            log = _LOGGER.info if node.health is NodeHealth.SERVING else _LOGGER.warning
            log("node %s is %s %s", node.address, node.health.value, node.detail)
        if (node.health, node.used()) != before:
            self._notify()

    def mark_unreachable(self, address: str, detail: str) -> None:
        node = self._nodes.get(address)
        if node is not None:
            self._set_health(node, NodeHealth.UNREACHABLE, detail)
            node.last_check = self.clock()
            self._notify()

    def _notify(self) -> None:
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    # -- views ---------------------------------------------------------------------------------

    def statuses(self) -> list[NodeStatus]:
        wall_offset = time.time() - self.clock()
        out = []
        for n in self._nodes.values():
            used = n.used()
            out.append(
                NodeStatus(
                    address=n.address,
                    source=n.source,
                    health=n.health,
                    info=replace(n.info, slots_used=used) if n.info else None,
                    slots_used=used,
                    last_check=n.last_check + wall_offset if n.last_check else 0.0,
                    latency_ms=n.latency_ms,
                    detail=n.detail,
                )
            )
        return out
