"""An identical retrain (the same model bytes) is not stored as a new version: the job says it
is identical to the version already stored, and a different model still gets a new version."""

from __future__ import annotations

import pytest

from services.orchestrator.repository import ModelRepository
from shared.rpc.v1 import progress_pb2 as ppb
from shared.rpc.v1 import strategy_pb2 as spb
from tests.conftest import Cluster

pytestmark = pytest.mark.timeout(180)


def request(epochs: int) -> spb.TrainRequest:
    req = spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"])
    req.strategy.training.epochs = epochs
    req.data.bars = 1500
    req.placement.device = "cpu"  # bit-identical weights are a CPU promise
    return req


async def test_an_identical_retrain_is_not_stored_again_and_says_so(cluster: Cluster) -> None:
    first = [e async for e in cluster.stub.Train(request(epochs=1))]
    second = [e async for e in cluster.stub.Train(request(epochs=1))]
    for events in (first, second):
        assert events[-1].state == ppb.JOB_STATE_SUCCEEDED, events[-1].error.message
    stored, again = first[-1].result.model, second[-1].result.model
    assert again.sha256 == stored.sha256
    assert again.name == stored.name == "default_fuzzy_mlp/SYNTH_1h_v1"
    assert "identical to v1" in second[-1].message and "not stored again" in second[-1].message
    assert "identical" not in first[-1].message
    family = cluster.models_dir / "default_fuzzy_mlp"
    assert sorted(p.name for p in family.glob("SYNTH_1h_v*")) == ["SYNTH_1h_v1"]

    # The second job keeps its model across a restart of the repository.
    reopened = ModelRepository(cluster.models_dir)
    ref = reopened.by_job(second[-1].job_id)
    assert ref is not None and ref.name == stored.name

    # A different model is a new version, as before.
    third = [e async for e in cluster.stub.Train(request(epochs=2))]
    assert third[-1].state == ppb.JOB_STATE_SUCCEEDED, third[-1].error.message
    assert third[-1].result.model.name == "default_fuzzy_mlp/SYNTH_1h_v2"
    assert "not stored again" not in third[-1].message
