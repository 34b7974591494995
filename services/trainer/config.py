"""The trainer node's configuration: one frozen dataclass, filled by ``main`` from flags/env."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared.rpc.plumbing import INSECURE, Security
from shared.spec import DEFAULT_LIMITS, JobLimits


@dataclass(frozen=True, kw_only=True)
class TrainerConfig:
    listen: str = "0.0.0.0:50052"
    """host:port to serve on; port 0 picks a free port (tests)."""
    work_dir: Path = Path("work")
    """Per-job scratch space: artifacts are spooled here until the orchestrator stores them."""
    data_dir: Path | None = None
    """Root of DIRECTORY data sources; requests name paths relative to it."""
    slots: int = 1
    """Jobs this node runs at once."""
    device: str = ""
    """Device override for every job (cpu, cuda, cuda:1, mps); empty = the best available."""
    orchestrator: str = ""
    """host:port of the orchestrator to register with; empty = static node (--node there)."""
    advertise: str = ""
    """The address the orchestrator should dial for this node; empty = derived from listen."""
    upload_attempts: int = 4
    """Attempts per model upload (exponential backoff between them)."""
    upload_backoff_s: float = 0.5
    """First backoff delay; doubles each attempt."""
    upload_window_s: float = 300.0
    """How long an upload keeps retrying while the orchestrator is unreachable (restarts)."""
    upload_workers: int = 0
    """Threads compressing gzip members in parallel; 0 = one per core."""
    torch_threads: int = 0
    """Intra-op threads per job; 0 = (cores - 1) / slots, at least 1."""
    limits: JobLimits = DEFAULT_LIMITS
    """The largest job accepted (model parameters, bars); the orchestrator and its trainers
    should be given the same limits, or a trainer refuses what the orchestrator queued."""
    metrics_listen: str = ""
    """host:port for Prometheus ``/metrics``; empty = no metrics endpoint."""
    insecure: bool = False
    """Allow serving a non-loopback address with neither a token nor TLS (an open executor)."""
    security: Security = INSECURE
    """TLS/mTLS and bearer token, for this server and for its calls to the orchestrator."""
