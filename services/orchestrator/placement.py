"""Pick a node for a job (seed 001, decision 4): the request's placement first, then AUTO.

Pure function over node statuses, so every branch is tested without a network:
- a named node that is serving wins; if it is down, fall back only when the request allows it;
- ``require_gpu`` with no serving GPU node is an error, never a silent CPU run;
- GPU/CPU mode prefer that kind and fall back (when allowed) to the other;
- AUTO prefers GPU nodes with free slots, then CPU nodes, the least loaded first.
``None`` means "nothing free right now": the job waits QUEUED for a slot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared import errors
from shared.nodes import NodeHealth, NodeStatus
from shared.spec import PlacementMode, PlacementSpec


@dataclass(frozen=True)
class Choice:
    address: str
    note: str = ""
    """Why this node, when it is not what the request asked for (a visible fallback)."""


def _free(node: NodeStatus) -> int:
    slots = node.info.slots if node.info else 1
    return slots - node.slots_used


def _is_gpu(node: NodeStatus) -> bool:
    return node.info is not None and node.info.device.kind.is_gpu


def choose(placement: PlacementSpec, nodes: Sequence[NodeStatus]) -> Choice | None:
    if not nodes:
        raise errors.UnavailableError(
            "no trainer nodes are configured; start the orchestrator with --node HOST:PORT"
        )
    serving = [n for n in nodes if n.health is NodeHealth.SERVING]
    note = ""

    if placement.node:
        named = [
            n for n in nodes if placement.node in (n.address, n.info.node_id if n.info else "")
        ]
        if not named:
            known = ", ".join(n.address for n in nodes)
            raise errors.NotFoundError(
                f"no node {placement.node!r}; known nodes: {known}", field="placement.node"
            )
        node = named[0]
        if node.health is NodeHealth.SERVING and (not placement.require_gpu or _is_gpu(node)):
            return Choice(node.address) if _free(node) > 0 else None
        why = (
            f"node {node.address} has no GPU"
            if node.health is NodeHealth.SERVING
            else f"node {node.address} is {node.health.value} ({node.detail})"
        )
        if not placement.allow_fallback:
            raise errors.FailedPreconditionError(
                f"{why}, and the request does not allow fallback", field="placement.node"
            )
        note = f"{why}; falling back to another node"

    gpus = [n for n in serving if _is_gpu(n)]
    cpus = [n for n in serving if not _is_gpu(n)]
    if placement.require_gpu:
        if not gpus:
            raise errors.FailedPreconditionError(
                "the request requires a GPU, and no serving node has one "
                f"({_summary(nodes)}); start a trainer on a CUDA or MPS host, or drop "
                "placement.require_gpu",
                field="placement.require_gpu",
            )
        order = [gpus]
    elif placement.mode is PlacementMode.GPU:
        order = [gpus, cpus] if placement.allow_fallback else [gpus]
        if not gpus and not placement.allow_fallback:
            raise errors.FailedPreconditionError(
                f"GPU placement asked and no serving node has a GPU ({_summary(nodes)})",
                field="placement.mode",
            )
        if not gpus:
            note = note or "no serving GPU node; falling back to CPU"
    elif placement.mode is PlacementMode.CPU:
        order = [cpus, gpus] if placement.allow_fallback else [cpus]
        if not cpus and not placement.allow_fallback:
            raise errors.FailedPreconditionError(
                f"CPU placement asked and no serving CPU node ({_summary(nodes)})",
                field="placement.mode",
            )
    else:
        order = [gpus, cpus]

    if not any(order):
        raise errors.UnavailableError(f"no trainer node is serving ({_summary(nodes)})")
    for rank, group in enumerate(order):
        free = sorted((n for n in group if _free(n) > 0), key=lambda n: -_free(n))
        if free:
            if rank and not note and placement.mode is not PlacementMode.AUTO:
                # An explicit mode served by the other kind is a fallback, and shows as one.
                wanted = placement.mode.value.upper()
                other = "CPU" if placement.mode is PlacementMode.GPU else "GPU"
                note = f"no free {wanted} node; falling back to a {other} node"
            return Choice(free[0].address, note)
    return None


def _summary(nodes: Sequence[NodeStatus]) -> str:
    return "; ".join(
        f"{n.address}: {n.health.value}"
        + (f" {n.info.device.kind.value}" if n.info else "")
        + (f" ({n.detail})" if n.detail else "")
        for n in nodes
    )
