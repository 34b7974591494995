"""What the orchestrator leaves on disk: private state files, and no staged upload of a job
that ended without a model.

The job store holds every job's upload token, so the state directory is 0700 and the SQLite
files (the database and its -wal and -shm) are 0600, whether the orchestrator creates them or
finds them with looser modes. A job that ends FAILED or CANCELLED discards its staged upload
at once instead of leaving it for the staging TTL.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import stat
from pathlib import Path

import grpc
import pytest

from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.server import OrchestratorServer
from services.orchestrator.server import create_server as create_orchestrator
from shared.rpc import plumbing, serde
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc, upload_pb2, upload_pb2_grpc
from shared.rpc.v1 import progress_pb2 as ppb
from shared.rpc.v1 import strategy_pb2 as spb

pytestmark = pytest.mark.timeout(60)

MODEL = os.urandom(64 * 1024) * 4
"""The bytes of a "model" whose upload breaks off halfway (never a valid model: it is never
finished)."""


def add_job(server: OrchestratorServer) -> str:
    """A job in the store (not queued for placement: no node is needed to keep it alive)."""
    message = spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"])
    record, _ = server.book.create(serde.request_from_proto(message))
    return record.job_id


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def state_files(state: Path) -> list[Path]:
    return sorted(state.glob("jobs.sqlite3*"))


async def _start(state: Path, **config: float) -> OrchestratorServer:
    return await create_orchestrator(
        OrchestratorConfig(listen="127.0.0.1:0", state_dir=state, **config)  # type: ignore[arg-type]
    )


async def test_a_new_state_dir_is_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    server = await _start(state)
    try:
        add_job(server)  # a write: SQLite makes its -wal and -shm files
        names = [p.name for p in state_files(state)]
        assert names == ["jobs.sqlite3", "jobs.sqlite3-shm", "jobs.sqlite3-wal"]
        assert mode(state) == 0o700
        assert {p.name: mode(p) for p in state_files(state)} == dict.fromkeys(names, 0o600)
    finally:
        await server.stop(0)


async def test_an_existing_state_dir_with_loose_modes_is_made_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = await _start(state)
    await first.stop(0)
    state.chmod(0o755)
    for path in state_files(state):
        path.chmod(0o644)
    second = await _start(state)
    try:
        assert mode(state) == 0o700
        assert state_files(state)
        assert {mode(p) for p in state_files(state)} == {0o600}
    finally:
        await second.stop(0)


async def _stage_half_an_upload(server: OrchestratorServer, job_id: str) -> int:
    """Send the first half of a gzip stream for ``job_id``, as a trainer cut off mid-upload
    does; return the bytes the orchestrator says it keeps for a resume."""
    token = server.book.get(job_id).upload_token
    compressed = gzip.compress(MODEL, compresslevel=1)
    header = upload_pb2.UploadHeader(
        job_id=job_id,
        upload_token=token,
        sha256=hashlib.sha256(MODEL).hexdigest(),
        size_bytes=len(MODEL),
        compression="gzip",
        stream_id="s1",
    )

    async def chunks() -> object:
        yield upload_pb2.ModelChunk(header=header)
        yield upload_pb2.ModelChunk(data=compressed[: len(compressed) // 2])

    async with plumbing.create_channel(server.address) as channel:
        stub = upload_pb2_grpc.ModelUploadStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.UploadModel(chunks())  # type: ignore[arg-type]
        assert err.value.code() == grpc.StatusCode.DATA_LOSS  # truncated, kept for a resume
        status = await stub.GetUploadStatus(
            upload_pb2.UploadStatusRequest(job_id=job_id, upload_token=token)
        )
    return status.received_bytes


async def _received(server: OrchestratorServer, job_id: str) -> int:
    token = server.book.get(job_id).upload_token
    async with plumbing.create_channel(server.address) as channel:
        status = await upload_pb2_grpc.ModelUploadStub(channel).GetUploadStatus(
            upload_pb2.UploadStatusRequest(job_id=job_id, upload_token=token)
        )
    return status.received_bytes


async def _final(server: OrchestratorServer, job_id: str) -> ppb.ProgressEvent:
    async with plumbing.create_channel(server.address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        events = [e async for e in stub.WatchJob(opb.WatchJobRequest(job_id=job_id))]
    await asyncio.gather(*getattr(server, "cleanups", ()))  # the discard runs in a thread
    return events[-1]


def staged(state: Path, job_id: str) -> list[str]:
    return sorted(p.name for p in (state / "staging").glob(f"{job_id}*"))


async def test_a_cancelled_job_leaves_no_staged_upload(tmp_path: Path) -> None:
    state = tmp_path / "state"
    server = await _start(state)
    try:
        job_id = add_job(server)
        assert await _stage_half_an_upload(server, job_id) > 0
        assert staged(state, job_id) == [f"{job_id}.gz", f"{job_id}.json"]
        async with plumbing.create_channel(server.address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            await stub.CancelJob(opb.CancelJobRequest(job_id=job_id))
        final = await _final(server, job_id)
        assert final.state == ppb.JOB_STATE_CANCELLED
        assert staged(state, job_id) == []
        assert await _received(server, job_id) == 0
    finally:
        await server.stop(0)


async def test_a_failed_job_leaves_no_staged_upload(tmp_path: Path) -> None:
    """A job staged half an upload, the orchestrator restarted, and the job then failed (here:
    it waited past the queue timeout): the staged upload goes with it."""
    state = tmp_path / "state"
    first = await _start(state)
    try:
        job_id = add_job(first)
        assert await _stage_half_an_upload(first, job_id) > 0
    finally:
        await first.stop(0)
    assert staged(state, job_id) == [f"{job_id}.gz", f"{job_id}.json"]

    second = await _start(state, queue_timeout_s=0.05)  # the job is recovered, and waits
    try:
        final = await _final(second, job_id)
        assert final.state == ppb.JOB_STATE_FAILED
        assert final.error.code == "NODE_UNAVAILABLE"
        assert staged(state, job_id) == []
        assert await _received(second, job_id) == 0
    finally:
        await second.stop(0)
