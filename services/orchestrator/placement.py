"""Pick a node for a job: the request's placement first, then AUTO.

Pure function over node statuses, so every branch is tested without a network. Three outcomes:
- ``Choice``: run it there now;
- ``Wait``: no node can take it *now* (none serving, every eligible slot busy, the named node
  down): the job stays QUEUED, and ``Wait.reason`` says why;
- an error: no node the registry knows could *ever* take it (a named node that is unknown;
  ``require_gpu``, or GPU/CPU mode without fallback, when no known node is of that kind per its
  last ``GetInfo``). Submit refuses such a job.

The rules:
- a named node that is serving wins; if it is down, fall back only when the request allows it,
  else wait for it;
- ``require_gpu`` never runs on a CPU: it waits for a GPU node;
- GPU/CPU mode prefer that kind and fall back (when allowed, visibly) to the other;
- AUTO prefers GPU nodes with free slots, then CPU nodes, the least loaded first; ties go to the
  node listed first.
With no nodes known at all, a job waits (a trainer may register with ``--orchestrator`` later)
unless it names a node.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared import errors
from shared.nodes import NodeHealth, NodeStatus
from shared.spec import PlacementMode, PlacementSpec

SUMMARY_NODES = 8
"""Nodes listed by name in a message; the rest are counted ("and 3 more")."""
NO_NODES = "no trainer nodes are known yet; start one with --orchestrator or give --node"


@dataclass(frozen=True)
class Choice:
    address: str
    note: str = ""
    """Why this node, when it is not what the request asked for (a visible fallback)."""


@dataclass(frozen=True)
class Wait:
    reason: str
    """Why no node can take the job now (shown in the job's events while it waits)."""


def _free(node: NodeStatus) -> int:
    slots = node.info.slots if node.info else 1
    return slots - node.slots_used


def _is_gpu(node: NodeStatus) -> bool:
    return node.info is not None and node.info.device.kind.is_gpu


def _is_cpu(node: NodeStatus) -> bool:
    return node.info is not None and not node.info.device.kind.is_gpu


def choose(placement: PlacementSpec, nodes: Sequence[NodeStatus]) -> Choice | Wait:
    """Where the job runs now, or why it waits; raises when no known node could ever take it."""
    if placement.node:
        named = [
            n for n in nodes if placement.node in (n.address, n.info.node_id if n.info else "")
        ]
        if not named:
            known = f"known nodes: {_addresses(nodes)}" if nodes else NO_NODES
            raise errors.NotFoundError(
                f"no node {placement.node[:80]!r}; {known}", field="placement.node"
            )
        node = named[0]
        if node.health is NodeHealth.SERVING and (not placement.require_gpu or _is_gpu(node)):
            if _free(node) > 0:
                return Choice(node.address)
            return Wait(f"waiting for a free slot on node {node.address} (placement.node)")
        no_gpu = placement.require_gpu and _is_cpu(node)
        why = (
            f"node {node.address} has no GPU"
            if no_gpu
            else f"node {node.address} is {node.health.value}"
            + (f" ({node.detail})" if node.detail else "")
        )
        if not placement.allow_fallback:
            if no_gpu:
                raise errors.FailedPreconditionError(
                    f"{why}, and the request does not allow fallback", field="placement.node"
                )
            return Wait(f"{why}; waiting for it (the request does not allow fallback)")
        note = f"{why}; falling back to another node"
    elif not nodes:
        return Wait(NO_NODES)
    else:
        note = ""

    serving = [n for n in nodes if n.health is NodeHealth.SERVING]
    gpus = [n for n in serving if _is_gpu(n)]
    cpus = [n for n in serving if not _is_gpu(n)]
    if placement.require_gpu:
        if not any(_is_gpu(n) for n in nodes):
            raise errors.FailedPreconditionError(
                "the request requires a GPU, and no known node has one "
                f"({_summary(nodes)}); start a trainer on a CUDA or MPS host, or drop "
                "placement.require_gpu",
                field="placement.require_gpu",
            )
        order, wanted = [gpus], "GPU node"
    elif placement.mode is PlacementMode.GPU and not placement.allow_fallback:
        if not any(_is_gpu(n) for n in nodes):
            raise errors.FailedPreconditionError(
                f"GPU placement asked without fallback, and no known node has a GPU "
                f"({_summary(nodes)})",
                field="placement.mode",
            )
        order, wanted = [gpus], "GPU node"
    elif placement.mode is PlacementMode.CPU and not placement.allow_fallback:
        if not any(_is_cpu(n) for n in nodes):
            raise errors.FailedPreconditionError(
                f"CPU placement asked without fallback, and no known node is a CPU node "
                f"({_summary(nodes)})",
                field="placement.mode",
            )
        order, wanted = [cpus], "CPU node"
    elif placement.mode is PlacementMode.GPU:
        order, wanted = [gpus, cpus], "trainer node"
        if not gpus:
            note = note or "no serving GPU node; falling back to CPU"
    elif placement.mode is PlacementMode.CPU:
        order, wanted = [cpus, gpus], "trainer node"
    else:
        order, wanted = [gpus, cpus], "trainer node"

    if not any(order):
        return Wait(f"no {wanted} is serving ({_summary(nodes)})")
    for rank, group in enumerate(order):
        free = sorted((n for n in group if _free(n) > 0), key=lambda n: -_free(n))
        if free:
            if rank and not note and placement.mode is not PlacementMode.AUTO:
                # An explicit mode served by the other kind is a fallback, and shows as one.
                kind = placement.mode.value.upper()
                other = "CPU" if placement.mode is PlacementMode.GPU else "GPU"
                note = f"no free {kind} node; falling back to a {other} node"
            return Choice(free[0].address, note)
    busy = [n for group in order for n in group]
    return Wait(f"waiting for a free slot: every slot is busy on {_addresses(busy)}")


def _bounded(items: Sequence[str], sep: str) -> str:
    shown = sep.join(items[:SUMMARY_NODES])
    more = len(items) - SUMMARY_NODES
    return f"{shown}{sep}and {more} more" if more > 0 else shown


def _addresses(nodes: Sequence[NodeStatus]) -> str:
    return _bounded([n.address for n in nodes], ", ")


def _summary(nodes: Sequence[NodeStatus]) -> str:
    """Each node's address, health, device and detail; at most ``SUMMARY_NODES`` of them."""
    return _bounded(
        [
            f"{n.address}: {n.health.value}"
            + (f" {n.info.device.kind.value}" if n.info else "")
            + (f" ({n.detail})" if n.detail else "")
            for n in nodes
        ],
        "; ",
    )
