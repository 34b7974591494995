"""The orchestrator's configuration: one frozen dataclass, filled by ``main`` from flags/env."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shared.rpc.plumbing import INSECURE, Security
from shared.spec import DEFAULT_LIMITS, JobLimits

from .store import parse_store_url


@dataclass(frozen=True, kw_only=True)
class OrchestratorConfig:
    listen: str = "0.0.0.0:50051"
    """host:port to serve on; port 0 picks a free port (tests)."""
    nodes: tuple[str, ...] = field(default_factory=tuple)
    """Static trainer node addresses (host:port), from --node."""
    state_dir: Path = Path("state")
    """Where models (``models/``), datasets (``datasets/``), the job store (``jobs.sqlite3``)
    and upload staging live."""
    store: str = ""
    """The job store, as a URL: ``sqlite:///ABS/PATH``, ``sqlite:REL/PATH`` (under
    ``state_dir``), ``postgresql://USER@HOST:PORT/DB`` or ``memory:`` (this process only);
    empty = ``jobs.sqlite3`` in ``state_dir``. A bad URL is a ``ValueError`` here."""
    advertise: str = ""
    """The address trainers should dial to upload models; empty = derived from listen."""
    probe_timeout_s: float = 1.0
    """Deadline of one health probe; a black-holed node costs at most this."""
    heartbeat_interval_s: float = 5.0
    """Registered nodes heartbeat at this interval; three missed take a node out of the pool."""
    probe_interval_s: float = 2.0
    """How long a probe result is trusted before the node is probed again."""
    max_model_bytes: int = 4 * 1024**3
    """Largest uncompressed model an upload may declare."""
    max_dataset_file_bytes: int = 2 * 1024**3
    """Largest file (uncompressed) a dataset upload may declare."""
    max_dataset_bytes: int = 8 * 1024**3
    """Largest dataset (its files' uncompressed bytes together) an upload may declare."""
    max_dataset_files: int = 256
    """Most files one dataset may hold."""
    max_attempts: int = 2
    """Runs a job may get: a node lost mid-job costs one, and the job moves to another node."""
    queue_timeout_s: float = 0.0
    """How long a job may wait QUEUED for a node that can take it; 0 = as long as it takes."""
    node_ttl_s: float = 600.0
    """A registered node out of the pool (missed heartbeats, failed probes) and silent (no
    heartbeat) for longer than this is forgotten: it leaves ``ListNodes`` until it registers
    again. Static nodes stay."""
    limits: JobLimits = DEFAULT_LIMITS
    """The largest job accepted (model parameters, bars); the orchestrator and its trainers
    should be given the same limits, or a trainer refuses what the orchestrator queued."""
    metrics_listen: str = ""
    """host:port for Prometheus ``/metrics``; empty = no metrics endpoint."""
    http_listen: str = ""
    """host:port for the HTTP API (``/api/v1/``, Server-Sent Events) and the dashboard
    (``/``); empty = no HTTP server. Served with the same token and TLS as gRPC."""
    security: Security = INSECURE
    """TLS/mTLS and bearer token, for this server and for its calls to trainer nodes."""

    def __post_init__(self) -> None:
        parse_store_url(self.store, self.state_dir)  # raises ValueError, naming the forms
