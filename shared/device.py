"""Which device trains: CUDA > MPS > CPU, or the one an override names.

``select_device("")`` picks the best available device; an override (``cpu``, ``cuda``,
``cuda:1``, ``mps``, ``gpu`` = the best GPU) that names a device this machine lacks raises
``ValueError`` with a message that says what is there. If asking torch about accelerators
itself fails (a broken driver), detection logs a warning and falls back to the CPU.
"""

from __future__ import annotations

import logging
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class DeviceInfo:
    kind: str
    """``cuda``, ``mps`` or ``cpu``."""
    name: str
    """Human name: ``NVIDIA H100 80GB HBM3``, ``Apple MPS``, the CPU model."""
    torch_device: str
    """What ``torch.device(...)`` takes: ``cuda:0``, ``mps``, ``cpu``."""
    memory_bytes: int | None = None
    """Device memory (host RAM for the CPU) when it can be queried."""
    supports_amp: bool = False
    """Whether mixed precision (autocast) is worth using here."""

    def as_torch(self) -> torch.device:
        return torch.device(self.torch_device)


def _cuda_count() -> int:
    try:
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception as exc:  # a broken driver must not take the trainer down
        _LOGGER.warning("CUDA detection failed, ignoring CUDA: %s", exc)
        return 0


def _mps_available() -> bool:
    try:
        backend = getattr(torch.backends, "mps", None)
        return bool(backend is not None and backend.is_available())
    except Exception as exc:
        _LOGGER.warning("MPS detection failed, ignoring MPS: %s", exc)
        return False


def _cuda_info(index: int) -> DeviceInfo:
    name, memory = f"CUDA device {index}", None
    try:
        name = torch.cuda.get_device_name(index)
        memory = int(torch.cuda.get_device_properties(index).total_memory)
    except Exception as exc:
        _LOGGER.warning("cannot query CUDA device %d: %s", index, exc)
    return DeviceInfo(
        kind="cuda",
        name=name,
        torch_device=f"cuda:{index}",
        memory_bytes=memory,
        supports_amp=True,
    )


def _mps_info() -> DeviceInfo:
    memory: int | None = None
    try:
        memory = int(torch.mps.recommended_max_memory())
    except Exception:  # older torch or no query support: memory stays unknown
        memory = None
    return DeviceInfo(
        kind="mps", name="Apple MPS", torch_device="mps", memory_bytes=memory, supports_amp=True
    )


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "CPU"


def cpu_info() -> DeviceInfo:
    memory: int | None = None
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        memory = None
    return DeviceInfo(kind="cpu", name=_cpu_name(), torch_device="cpu", memory_bytes=memory)


def available_devices() -> tuple[DeviceInfo, ...]:
    """Every device this machine can train on, best first (the CPU is always last)."""
    devices = [_cuda_info(i) for i in range(_cuda_count())]
    if _mps_available():
        devices.append(_mps_info())
    devices.append(cpu_info())
    return tuple(devices)


def select_device(override: str = "") -> DeviceInfo:
    """The best device, or the one ``override`` names (``ValueError`` if it is not here)."""
    wanted = override.strip().lower()
    if wanted in ("", "auto"):
        return available_devices()[0]
    if wanted == "cpu":
        return cpu_info()
    if wanted == "mps":
        if not _mps_available():
            raise ValueError("device override 'mps' is not available: this machine has no MPS")
        return _mps_info()
    if wanted == "gpu":
        best = available_devices()[0]
        if best.kind == "cpu":
            raise ValueError("device override 'gpu' is not available: no CUDA or MPS device")
        return best
    if wanted == "cuda" or wanted.startswith("cuda:"):
        index_text = wanted.partition(":")[2] or "0"
        if not (index_text.isascii() and index_text.isdigit()):
            raise ValueError(f"device override {override!r} is not valid: use cuda or cuda:N")
        index, count = int(index_text), _cuda_count()
        if index >= count:
            raise ValueError(
                f"device override {override!r} is not available: this machine has {count} "
                "CUDA device(s)"
            )
        return _cuda_info(index)
    raise ValueError(
        f"unknown device override {override!r}: use cpu, cuda, cuda:N, mps, gpu or leave it empty"
    )
