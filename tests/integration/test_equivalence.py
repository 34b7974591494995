"""Equivalence: the service trains exactly what the pipeline trains in-process.

The same request and seed give the same model bytes whether ``run_training`` is called directly
or the job goes client → orchestrator → trainer → upload → repository.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
import yaml

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
    """The shipped strategy cut to 2 epochs, trained on the CPU wherever the test runs.

    Bit-identical weights are a CPU promise (CUDA kernels need not be deterministic), so both
    runs name the device instead of taking the machine's best one.
    """
    strategy = yaml.safe_load(STRATEGY.read_text())
    assert strategy["training"]["epochs"] != 2, "the cut below must change the strategy"
    strategy["training"]["epochs"] = 2
    request = spb.TrainRequest(
        symbols=["SYNTH"], timeframes=["1h"], strategy_yaml=yaml.safe_dump(strategy)
    )
    request.data.bars = 1500
    request.placement.device = "cpu"
    return request


async def test_service_and_in_process_runs_give_identical_models(
    cluster: Cluster, tmp_path: Path
) -> None:
    events = [e async for e in cluster.stub.Train(_request())]
    last = events[-1]
    assert last.state == ppb.JOB_STATE_SUCCEEDED, last.error.message
    assert last.result.device.startswith("cpu"), last.result.device
    epochs = [e for e in events if e.kind == ppb.EVENT_KIND_EPOCH]
    assert epochs and epochs[-1].total_epochs == 2  # the YAML edit reached the trainer
    stored = next(cluster.models_dir.glob("rsi_mean_reversion/*_v1/model.safetensors"))

    local = run_training(
        serde.request_from_proto(_request()),
        work_dir=tmp_path / "local",
        progress=lambda update: None,
        cancel=CancellationToken(),
    )
    assert local.device == "cpu"

    served, served_meta = load_artifact(stored)
    mine, my_meta = load_artifact(local.artifact_path)
    assert served.keys() == mine.keys()
    assert all(torch.equal(served[k], mine[k]) for k in served)
    assert served_meta["feature_names"] == my_meta["feature_names"]
    assert local.sha256 == last.result.model.sha256
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == local.sha256
