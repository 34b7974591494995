"""The upload receiver's edges: a job id is checked before any staging file is touched; a model
is stored only if its metadata reads the way GetModel reads it; staging file work (truncate,
fsync, unlink) never runs on the event loop; a job's staging can be discarded from any thread."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import threading
import time
from collections.abc import AsyncIterator

import grpc
import numpy as np
import pytest
from safetensors.numpy import save

from services.orchestrator import upload_session
from shared import errors
from shared.jobs import EventKind, JobEvent, JobState
from shared.rpc import plumbing
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc, upload_pb2, upload_pb2_grpc
from tests.conftest import Cluster
from tests.integration.test_trainer_hardening import field_violations
from tests.integration.test_upload import _header, _new_job, _staging, _status, _stored, _upload

pytestmark = pytest.mark.timeout(60)
MODEL_NAME = "default_fuzzy_mlp/SYNTH_1h"


def _model(metadata: dict[str, object]) -> bytes:
    rng = np.random.default_rng(5)
    tensors = {"layer.weight": rng.normal(0, 0.05, (64, 64)).astype(np.float32)}
    return save(tensors, metadata={"trainwire": json.dumps({"format_version": 1, **metadata})})


BAD_IDS = ["../../victim", "/tmp/x", "a/b", "x\n", "x" * 65, ".."]


@pytest.mark.parametrize("job_id", BAD_IDS)
async def test_a_path_like_job_id_is_refused_before_the_disk(cluster: Cluster, job_id: str) -> None:
    address = cluster.orchestrator.address
    before = sorted(p.name for p in cluster.state_dir.parent.iterdir())
    raw = _model({})
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _upload(address, _header(job_id, "t", raw), gzip.compress(raw))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert field_violations(err.value) == ["job_id"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _status(address, job_id, "t")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert field_violations(err.value) == ["job_id"]
    assert _staging(cluster.state_dir) == []
    assert sorted(p.name for p in cluster.state_dir.parent.iterdir()) == before


async def _get_model(cluster: Cluster, name: str) -> opb.Model:
    async with plumbing.create_channel(cluster.orchestrator.address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        reply: opb.Model = await stub.GetModel(opb.GetModelRequest(name=name))
        return reply


@pytest.mark.parametrize(
    ("metadata", "named"),
    [
        ({"feature_names": 7}, "feature_names"),
        ({"feature_names": ["rsi", 3]}, "feature_names"),
        ({"test_metrics": "high"}, "test_metrics"),
        ({"test_metrics": {"accuracy": "high"}}, "test_metrics"),
        ({"train_metrics": [0.5]}, "train_metrics"),
        ({"classes": "BUY"}, "classes"),
        ({"format_version": 99}, "format"),
    ],
    ids=["names-int", "names-mixed", "metrics-str", "metric-str", "train-list", "classes", "v99"],
)
async def test_a_model_whose_metadata_has_the_wrong_schema_is_not_stored(
    cluster: Cluster, metadata: dict[str, object], named: str
) -> None:
    job_id, token = _new_job(cluster.orchestrator)
    raw = _model(metadata)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _upload(cluster.orchestrator.address, _header(job_id, token, raw), gzip.compress(raw))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    assert named in (err.value.details() or "")
    assert _stored(cluster.state_dir) == []
    assert _staging(cluster.state_dir) == []
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _get_model(cluster, MODEL_NAME)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND, err.value.details()
    # A model with sound metadata still goes through for the same job, and reads back.
    good = _model({"feature_names": ["rsi", "macd"], "test_metrics": {"accuracy": 0.5}})
    await _upload(cluster.orchestrator.address, _header(job_id, token, good), gzip.compress(good))
    model = await _get_model(cluster, MODEL_NAME)
    assert list(model.feature_names) == ["rsi", "macd"]
    assert dict(model.test_metrics) == {"accuracy": 0.5}


async def test_discard_from_a_worker_thread_drops_a_staged_upload(cluster: Cluster) -> None:
    address = cluster.orchestrator.address
    job_id, token = _new_job(cluster.orchestrator)
    raw = _model({})
    packed = gzip.compress(raw)
    with pytest.raises(grpc.aio.AioRpcError):  # truncated: resumable, so it stays staged
        await _upload(address, _header(job_id, token, raw), packed[: len(packed) // 2])
    assert (await _status(address, job_id, token)).received_bytes == len(packed) // 2
    assert _staging(cluster.state_dir) != []

    await asyncio.to_thread(cluster.orchestrator.uploads.discard, job_id)

    assert (await _status(address, job_id, token)).received_bytes == 0
    assert _staging(cluster.state_dir) == []
    with pytest.raises(errors.InvalidArgumentError):
        await asyncio.to_thread(cluster.orchestrator.uploads.discard, "../staging")


async def test_staging_file_work_stays_off_the_event_loop(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every fsync of the staging (after appends, on a truncating resume, when a call breaks
    off or fails) runs on a worker thread, never on the thread that runs the event loop."""
    loop_thread = threading.get_ident()
    on_loop: list[int] = []
    fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        if threading.get_ident() == loop_thread:
            on_loop.append(fd)
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    address = cluster.orchestrator.address
    job_id, token = _new_job(cluster.orchestrator)
    raw = _model({})
    packed = gzip.compress(raw)
    cut = len(packed) // 2
    with pytest.raises(grpc.aio.AioRpcError):  # breaks off mid-stream: kept for a resume
        await _upload(address, _header(job_id, token, raw), packed[:cut])
    # A resume from before the staged end truncates the staging there, then completes.
    back = cut - 100
    await _upload(address, _header(job_id, token, raw, resume_offset=back), packed[back:])
    assert len(_stored(cluster.state_dir)) == 1
    # A model that is refused (bad metadata) is discarded.
    other, other_token = _new_job(cluster.orchestrator)
    bad = _model({"feature_names": 7})
    with pytest.raises(grpc.aio.AioRpcError):
        await _upload(address, _header(other, other_token, bad), gzip.compress(bad))
    assert on_loop == []


async def test_a_job_that_ends_during_its_upload_takes_no_model(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled while its model streams in: the finished stream is not stored, and the
    staging is gone."""
    address = cluster.orchestrator.address
    job_id, token = _new_job(cluster.orchestrator)
    raw = _model({})
    packed = gzip.compress(raw)
    loop = asyncio.get_running_loop()
    half_staged, ended = asyncio.Event(), asyncio.Event()
    accept = upload_session.Session.accept

    def staging_accept(session: upload_session.Session, data: bytes) -> None:
        accept(session, data)
        loop.call_soon_threadsafe(half_staged.set)

    monkeypatch.setattr(upload_session.Session, "accept", staging_accept)

    async def messages() -> AsyncIterator[upload_pb2.ModelChunk]:
        yield upload_pb2.ModelChunk(header=_header(job_id, token, raw))
        yield upload_pb2.ModelChunk(data=packed[: len(packed) // 2])
        await ended.wait()
        yield upload_pb2.ModelChunk(data=packed[len(packed) // 2 :])

    async with plumbing.create_channel(address) as channel:
        call = upload_pb2_grpc.ModelUploadStub(channel).UploadModel(messages())
        await half_staged.wait()  # the orchestrator took the call for a running job
        cancelled = JobEvent(
            job_id=job_id,
            seq=0,
            time=time.time(),
            state=JobState.CANCELLED,
            kind=EventKind.LIFECYCLE,
            message="Cancelled: by the test",
        )
        cluster.orchestrator.book.append(job_id, cancelled)
        ended.set()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, err.value.details()
    assert "takes no model" in (err.value.details() or "")
    assert _stored(cluster.state_dir) == []
    assert _staging(cluster.state_dir) == []
