"""Seed 004's equivalence test: the service trains exactly what the pipeline trains in-process.

The same request and seed give the same model bytes whether ``run_training`` is called directly
or the job goes client → orchestrator → trainer → upload → repository.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from shared.artifacts.artifact import load_artifact
from shared.cancellation import CancellationToken
from shared.pipeline.run import run_training
from shared.rpc import serde
from shared.rpc.v1 import progress_pb2 as ppb
from shared.rpc.v1 import strategy_pb2 as spb
from tests.conftest import Cluster

pytestmark = pytest.mark.timeout(180)

STRATEGY = Path(__file__).resolve().parents[2] / "strategies" / "rsi_mean_reversion.yaml"


def _request() -> spb.TrainRequest:
    text = STRATEGY.read_text().replace("epochs: 30", "epochs: 2")
    request = spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"], strategy_yaml=text)
    request.data.bars = 1500
    return request


async def test_service_and_in_process_runs_give_identical_models(
    cluster: Cluster, tmp_path: Path
) -> None:
    events = [e async for e in cluster.stub.Train(_request())]
    last = events[-1]
    assert last.state == ppb.JOB_STATE_SUCCEEDED, last.error.message
    stored = next(cluster.models_dir.glob("rsi_mean_reversion/*_v1/model.safetensors"))

    local = run_training(
        serde.request_from_proto(_request()),
        work_dir=tmp_path / "local",
        progress=lambda update: None,
        cancel=CancellationToken(),
        device="cpu",
    )

    served, served_meta = load_artifact(stored)
    mine, my_meta = load_artifact(local.artifact_path)
    assert served.keys() == mine.keys()
    assert all(torch.equal(served[k], mine[k]) for k in served)
    assert served_meta["feature_names"] == my_meta["feature_names"]
    assert local.sha256 == last.result.model.sha256
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == local.sha256
