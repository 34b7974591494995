"""Shared helpers for the benchmarks: machine description, medians, JSON report.

Every benchmark prints, as its last line, one JSON object on one line. Timings on shared
machines are noisy, so each benchmark measures *ours* and a *bare baseline* side by side,
interleaved, in one run, and reports medians and their ratio with the machine they ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any


def machine() -> dict[str, Any]:
    """Describe the machine the numbers came from."""
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    return info


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def timed(fn: Callable[[], object]) -> float:
    """Wall seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(
    cases: dict[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Run every case ``repeats`` times, alternating between cases so drift hits all alike."""
    for _ in range(warmup):
        for fn in cases.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            samples[name].append(timed(fn))
    return samples


def base_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="few repeats; a smoke run for CI")
    parser.add_argument("--repeats", type=int, default=None, help="override the repeat count")
    return parser


def report(name: str, results: dict[str, Any]) -> None:
    """Print the benchmark's JSON report to stdout."""
    json.dump({"benchmark": name, "machine": machine(), **results}, sys.stdout)
    sys.stdout.write("\n")
