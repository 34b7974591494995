"""Shared fixtures: real in-process servers on port 0, torn down after each test.

Under CI every skip is a failure: with ``CI`` set to a true value (``CI=true``, as CI and
``.ci/run`` set it), a skipped test fails with its skip reason, unless it is marked
``@pytest.mark.optional_component(...)`` (it needs something CI can never have, such as a GPU).
The real-process tests skip when tmux, docker-compose, iproute2 or iptables is missing; in CI
that means ``.ci/run`` failed to install them, and the suite must say so rather than pass.
The rule lives in ``tests/support/ci_skips.py``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.server import OrchestratorServer
from services.orchestrator.server import create_server as create_orchestrator
from services.trainer.config import TrainerConfig
from services.trainer.server import TrainerServer
from services.trainer.server import create_server as create_trainer
from shared.rpc import plumbing
from shared.rpc.v1 import orchestrator_pb2_grpc

pytest_plugins = ["tests.support.ci_skips", "tests.support.postgres"]


@dataclass
class Cluster:
    orchestrator: OrchestratorServer
    trainer: TrainerServer
    stub: orchestrator_pb2_grpc.OrchestratorAsyncStub
    state_dir: Path

    @property
    def models_dir(self) -> Path:
        return self.state_dir / "models"


@contextlib.asynccontextmanager
async def start_cluster(root: Path) -> AsyncIterator[Cluster]:
    """A trainer and an orchestrator on port 0 under ``root`` (work/, state/), and a client."""
    trainer = await create_trainer(
        TrainerConfig(listen="127.0.0.1:0", work_dir=root / "work", upload_backoff_s=0.05)
    )
    orchestrator = await create_orchestrator(
        OrchestratorConfig(listen="127.0.0.1:0", nodes=(trainer.address,), state_dir=root / "state")
    )
    channel = plumbing.create_channel(orchestrator.address)
    try:
        yield Cluster(
            orchestrator=orchestrator,
            trainer=trainer,
            stub=orchestrator_pb2_grpc.OrchestratorStub(channel),
            state_dir=root / "state",
        )
    finally:
        await channel.close(None)
        await orchestrator.stop(0)
        await trainer.stop(0)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with start_cluster(tmp_path) as running:
        yield running
