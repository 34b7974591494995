"""Orchestrator + trainer in-process on port 0: the whole flow over real gRPC."""

from __future__ import annotations

import hashlib
import json

import grpc
import pytest

from shared.device import select_device
from shared.rpc import plumbing
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import progress_pb2 as ppb
from shared.rpc.v1 import strategy_pb2 as spb
from shared.rpc.v1 import trainer_pb2 as tpb
from shared.rpc.v1 import trainer_pb2_grpc
from tests.conftest import Cluster

pytestmark = pytest.mark.timeout(180)

_DEVICE_KINDS = {
    "cpu": tpb.DEVICE_KIND_CPU,
    "cuda": tpb.DEVICE_KIND_CUDA,
    "mps": tpb.DEVICE_KIND_MPS,
}


def small_request(epochs: int = 2, **kw: object) -> spb.TrainRequest:
    req = spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"], **kw)  # type: ignore[arg-type]
    req.strategy.training.epochs = epochs
    req.data.bars = 1500
    return req


async def test_train_streams_progress_and_stores_the_model(cluster: Cluster) -> None:
    events = [e async for e in cluster.stub.Train(small_request())]

    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].state == ppb.JOB_STATE_QUEUED
    last = events[-1]
    assert last.state == ppb.JOB_STATE_SUCCEEDED, last
    assert last.percentage == 100.0
    percentages = [e.percentage for e in events]
    assert percentages == sorted(percentages), "progress went backwards"
    kinds = {e.kind for e in events}
    assert {ppb.EVENT_KIND_STEP, ppb.EVENT_KIND_EPOCH, ppb.EVENT_KIND_UPLOAD} <= kinds
    epochs = [e for e in events if e.kind == ppb.EVENT_KIND_EPOCH]
    assert [e.epoch for e in epochs][-1] == 2 and epochs[-1].total_epochs == 2
    assert "loss" in epochs[-1].metrics and "val_accuracy" in epochs[-1].metrics

    model = last.result.model
    assert model.name.startswith("default_fuzzy_mlp/SYNTH_1h_v")
    stored = cluster.models_dir / model.name
    weights = (stored / "model.safetensors").read_bytes()
    assert hashlib.sha256(weights).hexdigest() == model.sha256
    assert model.size_bytes == len(weights)
    metadata = json.loads((stored / "metadata.json").read_text())
    assert metadata["repository"]["job_id"] == last.job_id
    assert (cluster.models_dir / "default_fuzzy_mlp" / "SYNTH_1h_latest").resolve() == stored
    assert 0.0 <= last.result.test_metrics["accuracy"] <= 1.0

    job = await cluster.stub.GetJob(opb.GetJobRequest(job_id=last.job_id))
    assert job.state == ppb.JOB_STATE_SUCCEEDED
    assert job.node == cluster.trainer.address
    assert job.last_seq == last.seq
    assert job.result.model.sha256 == model.sha256


async def test_watch_resumes_after_a_seq_without_gap_or_duplicate(cluster: Cluster) -> None:
    job = await cluster.stub.SubmitJob(small_request())
    first = [e async for e in cluster.stub.WatchJob(opb.WatchJobRequest(job_id=job.job_id))]
    assert first[-1].state == ppb.JOB_STATE_SUCCEEDED
    cut = len(first) // 2
    rest = [
        e
        async for e in cluster.stub.WatchJob(opb.WatchJobRequest(job_id=job.job_id, after_seq=cut))
    ]
    assert [e.seq for e in rest] == [e.seq for e in first[cut:]]
    assert [e.message for e in rest] == [e.message for e in first[cut:]]


async def test_submit_is_idempotent_on_request_id(cluster: Cluster) -> None:
    a = await cluster.stub.SubmitJob(small_request(request_id="client-42"))
    b = await cluster.stub.SubmitJob(small_request(request_id="client-42"))
    assert a.job_id == b.job_id
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cluster.stub.SubmitJob(small_request(epochs=3, request_id="client-42"))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    await cluster.stub.CancelJob(opb.CancelJobRequest(job_id=a.job_id))


async def test_cancel_stops_a_running_job_and_stores_nothing(cluster: Cluster) -> None:
    job = await cluster.stub.SubmitJob(small_request(epochs=5000))
    events = []
    async for event in cluster.stub.WatchJob(opb.WatchJobRequest(job_id=job.job_id)):
        events.append(event)
        if event.kind in (ppb.EVENT_KIND_BATCH, ppb.EVENT_KIND_EPOCH) and len(events) < 10_000:
            cancelled = await cluster.stub.CancelJob(
                opb.CancelJobRequest(job_id=job.job_id, reason="user clicked cancel")
            )
            assert cancelled.job_id == job.job_id
            events.append(ppb.ProgressEvent())  # marker so we cancel once
            break
    final = [
        e
        async for e in cluster.stub.WatchJob(
            opb.WatchJobRequest(job_id=job.job_id, after_seq=events[-2].seq)
        )
    ]
    assert final[-1].state == ppb.JOB_STATE_CANCELLED
    assert final[-1].error.code == "CANCELLED"
    assert "user clicked cancel" in final[-1].error.message
    assert not any(e.kind == ppb.EVENT_KIND_UPLOAD for e in final)
    assert not list(cluster.models_dir.rglob("*.safetensors"))
    done = await cluster.stub.GetJob(opb.GetJobRequest(job_id=job.job_id))
    assert done.state == ppb.JOB_STATE_CANCELLED
    # The node is free again for the next job.
    events = [e async for e in cluster.stub.Train(small_request())]
    assert events[-1].state == ppb.JOB_STATE_SUCCEEDED


async def test_list_nodes_shows_the_trainer_and_its_device(cluster: Cluster) -> None:
    reply = await cluster.stub.ListNodes(opb.ListNodesRequest())
    assert len(reply.nodes) == 1
    node = reply.nodes[0]
    assert node.address == cluster.trainer.address
    assert node.health == opb.NODE_HEALTH_SERVING
    # The device is the one the trainer picked on this machine (CUDA > MPS > CPU), as the
    # trainer itself reports it, not an assumed "cpu".
    best = select_device("")
    channel = plumbing.create_channel(cluster.trainer.address)
    try:
        info = await trainer_pb2_grpc.TrainerStub(channel).GetInfo(tpb.GetInfoRequest())
    finally:
        await channel.close(None)
    assert node.device == info.device
    assert node.device.torch_device == best.torch_device
    assert node.device.kind == _DEVICE_KINDS[best.kind]
    assert node.device.name == best.name
    assert node.slots == 1
