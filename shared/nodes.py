"""Trainer nodes as the orchestrator and the client see them (no torch import here)."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class DeviceKind(enum.Enum):
    CPU = "cpu"
    CUDA = "cuda"
    MPS = "mps"

    @property
    def is_gpu(self) -> bool:
        return self is not DeviceKind.CPU


@dataclass(frozen=True, kw_only=True)
class NodeDevice:
    kind: DeviceKind = DeviceKind.CPU
    name: str = ""
    torch_device: str = "cpu"
    memory_bytes: int = 0
    supports_mixed_precision: bool = False


@dataclass(frozen=True, kw_only=True)
class NodeInfo:
    """What a trainer says about itself (``Trainer.GetInfo``)."""

    node_id: str
    address: str
    device: NodeDevice = field(default_factory=NodeDevice)
    slots: int = 1
    slots_used: int = 0
    running_jobs: tuple[str, ...] = ()
    versions: Mapping[str, str] = field(default_factory=dict)
    draining: bool = False


class NodeHealth(enum.Enum):
    UNKNOWN = "unknown"
    SERVING = "serving"
    NOT_SERVING = "not_serving"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True, kw_only=True)
class NodeStatus:
    """A node in the orchestrator's registry, as ``ListNodes`` reports it."""

    address: str
    source: str
    health: NodeHealth
    info: NodeInfo | None
    slots_used: int
    last_check: float
    latency_ms: float
    detail: str = ""
