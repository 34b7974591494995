"""ModelUpload: only a sound, authorised, verified model is stored; big models stream through;
an interrupted upload resumes from the offset the orchestrator confirms, also across its
restart."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from safetensors.numpy import save, save_file

from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.server import OrchestratorServer
from services.orchestrator.server import create_server as create_orchestrator
from services.trainer.jobs import JobRunner, JobSpec
from services.trainer.uploader import (
    CHUNK_BYTES,
    CompressedStream,
    GzipOptions,
    Uploader,
    UploadTask,
)
from shared.jobs import JobState
from shared.pipeline.run import TrainingOutcome
from shared.rpc import plumbing
from shared.rpc.v1 import upload_pb2, upload_pb2_grpc
from shared.spec import TrainingRequest, default_strategy
from tests.conftest import Cluster
from tests.support.processes import free_port

pytestmark = pytest.mark.timeout(60)
REQUEST = TrainingRequest(symbols=("SYNTH",), timeframes=("1h",), strategy=default_strategy())
METADATA = {"trainwire": json.dumps({"format_version": 1})}


def model_bytes() -> bytes:
    tensors = {"layer.weight": np.arange(12, dtype=np.float32).reshape(3, 4)}
    return save(tensors, metadata=METADATA)


@pytest.fixture(scope="module")
def big_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~24 MB of trained-like float32 weights: far past gRPC's default 4 MiB message cap."""
    rng = np.random.default_rng(7)
    path = tmp_path_factory.mktemp("model") / "model.safetensors"
    save_file(
        {
            "layer0.weight": rng.normal(0, 0.05, (2048, 2048)).astype(np.float32),
            "layer1.weight": rng.normal(0, 0.05, (1024, 2048)).astype(np.float32),
            "layer1.bias": np.zeros(1024, dtype=np.float32),
        },
        str(path),
        metadata=METADATA,
    )
    return path


async def _chunks(
    header: upload_pb2.UploadHeader, data: bytes, size: int = 64 * 1024
) -> AsyncIterator[upload_pb2.ModelChunk]:
    yield upload_pb2.ModelChunk(header=header)
    for start in range(0, len(data), size):
        yield upload_pb2.ModelChunk(data=data[start : start + size])


def _new_job(server: OrchestratorServer) -> tuple[str, str]:
    record, _ = server.book.create(REQUEST)
    return record.job_id, record.upload_token


def _header(job_id: str, token: str, raw: bytes, **fields: Any) -> upload_pb2.UploadHeader:
    return upload_pb2.UploadHeader(
        job_id=job_id,
        upload_token=token,
        sha256=hashlib.sha256(raw).hexdigest(),
        size_bytes=len(raw),
        compression="gzip",
        **fields,
    )


async def _upload(
    address: str, header: upload_pb2.UploadHeader, data: bytes
) -> upload_pb2.UploadReceipt:
    async with plumbing.create_channel(address) as channel:
        stub = upload_pb2_grpc.ModelUploadStub(channel)
        return await stub.UploadModel(_chunks(header, data))


async def _status(address: str, job_id: str, token: str) -> upload_pb2.UploadStatus:
    async with plumbing.create_channel(address) as channel:
        stub = upload_pb2_grpc.ModelUploadStub(channel)
        return await stub.GetUploadStatus(
            upload_pb2.UploadStatusRequest(job_id=job_id, upload_token=token)
        )


def _task_header(task: UploadTask, **fields: Any) -> upload_pb2.UploadHeader:
    return upload_pb2.UploadHeader(
        job_id=task.job_id,
        upload_token=task.token,
        sha256=task.sha256,
        size_bytes=task.size_bytes,
        compression="gzip",
        **fields,
    )


def _task(address: str, job_id: str, token: str, path: Path) -> UploadTask:
    return UploadTask(
        target=address,
        job_id=job_id,
        token=token,
        path=path,
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        size_bytes=path.stat().st_size,
    )


def _stored(state_dir: Path) -> list[Path]:
    return list((state_dir / "models").rglob("model.safetensors"))


def _staging(state_dir: Path) -> list[str]:
    return sorted(p.name for p in (state_dir / "staging").iterdir())


async def _send_partially(address: str, task: UploadTask, chunks: int, *, drop: bool = True) -> int:
    """Send the header and the first ``chunks`` chunks of the real compressed stream and wait
    until the orchestrator confirms them; then drop the call (the client goes away mid-stream),
    or with ``drop=False`` leave it hanging open while the caller goes on."""
    sent = asyncio.Event()
    stream = CompressedStream(task.path)

    async def messages() -> AsyncIterator[upload_pb2.ModelChunk]:
        yield upload_pb2.ModelChunk(header=_task_header(task, stream_id=GzipOptions().stream_id))
        count = 0
        async for chunk in stream.chunks():
            yield upload_pb2.ModelChunk(data=chunk)
            count += 1
            if count == chunks:
                break
        sent.set()
        await asyncio.Event().wait()  # hold the stream open until cancelled

    expected = chunks * CHUNK_BYTES
    channel = plumbing.create_channel(address)
    stub = upload_pb2_grpc.ModelUploadStub(channel)
    call = stub.UploadModel(messages())
    await sent.wait()
    for _ in range(400):
        status = await stub.GetUploadStatus(
            upload_pb2.UploadStatusRequest(job_id=task.job_id, upload_token=task.token)
        )
        if status.received_bytes == expected:
            break
        await asyncio.sleep(0.025)
    assert status.received_bytes == expected
    if drop:
        call.cancel()
        await channel.close(None)
    else:
        _HANGING.append((channel, call))
    return expected


_HANGING: list[tuple[grpc.aio.Channel, Any]] = []


# -- sound uploads -----------------------------------------------------------------------------


async def test_a_sound_upload_is_stored_and_a_repeat_is_idempotent(cluster: Cluster) -> None:
    job_id, token = _new_job(cluster.orchestrator)
    raw = model_bytes()
    # Two concatenated gzip members are still one valid gzip stream.
    packed = gzip.compress(raw[:100]) + gzip.compress(raw[100:])
    header = _header(job_id, token, raw)
    receipt = await _upload(cluster.orchestrator.address, header, packed)
    assert receipt.model.sha256 == header.sha256
    assert not receipt.duplicate and receipt.received_bytes == len(packed)
    (path,) = _stored(cluster.state_dir)
    assert path.read_bytes() == raw
    again = await _upload(cluster.orchestrator.address, header, packed)
    assert again.duplicate and again.model.name == receipt.model.name
    assert len(_stored(cluster.state_dir)) == 1
    assert _staging(cluster.state_dir) == []


async def test_a_model_larger_than_a_grpc_message_round_trips(
    cluster: Cluster, big_model: Path
) -> None:
    address = cluster.orchestrator.address
    job_id, token = _new_job(cluster.orchestrator)
    task = _task(address, job_id, token, big_model)
    uploader = Uploader(task, options=GzipOptions(workers=2))
    ref = await uploader.run()
    assert ref.sha256 == task.sha256 and ref.size_bytes == task.size_bytes
    (path,) = _stored(cluster.state_dir)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == task.sha256
    stats = uploader.stats
    assert stats.attempts == 1 and stats.resumed_from == 0 and not stats.duplicate
    assert stats.bytes_sent == stats.last_call_bytes == stats.stream_bytes > 4 * 1024 * 1024
    assert len(uploader.stream.member_sizes) > 1  # several gzip members
    assert _staging(cluster.state_dir) == []
    # Asked again, the uploader learns from GetUploadStatus that it is stored: nothing is sent.
    again = Uploader(task)
    assert (await again.run()).name == ref.name
    assert again.stats.duplicate and again.stats.bytes_sent == 0
    assert len(_stored(cluster.state_dir)) == 1


async def test_the_job_runner_deletes_its_spool_only_after_the_receipt(
    cluster: Cluster, big_model: Path, tmp_path: Path
) -> None:
    job_id, token = _new_job(cluster.orchestrator)
    seen_spool: list[bool] = []

    def pipeline(request: TrainingRequest, *, work_dir: Path, **_: Any) -> TrainingOutcome:
        artifact = work_dir / "model.safetensors"
        shutil.copyfile(big_model, artifact)
        return TrainingOutcome(
            artifact_path=artifact,
            sha256=hashlib.sha256(artifact.read_bytes()).hexdigest(),
            size_bytes=artifact.stat().st_size,
            device="cpu",
            train_metrics={},
            test_metrics={},
            feature_importance={},
            feature_names=(),
            samples=0,
        )

    runner = JobRunner(work_dir=tmp_path / "w", slots=1, node="n", pipeline=pipeline)
    run = runner.start(
        JobSpec(
            job_id=job_id,
            request=REQUEST,
            upload_target=cluster.orchestrator.address,
            upload_token=token,
        )
    )
    async for event in run.events_after(0):
        if "Uploading" in event.message:
            seen_spool.append((tmp_path / "w" / "jobs" / job_id / "model.safetensors").exists())
    assert run.state is JobState.SUCCEEDED
    assert seen_spool == [True]
    assert run.task is not None
    await run.task  # the spool is removed (off the event loop) as the job's last act
    assert not (tmp_path / "w" / "jobs" / job_id).exists()
    assert len(_stored(cluster.state_dir)) == 1
    await runner.shutdown(0)


# -- resume --------------------------------------------------------------------------------------


async def test_an_interrupted_upload_resumes_from_the_confirmed_offset(
    cluster: Cluster, big_model: Path
) -> None:
    address = cluster.orchestrator.address
    job_id, token = _new_job(cluster.orchestrator)
    task = _task(address, job_id, token, big_model)
    confirmed = await _send_partially(address, task, chunks=12)
    assert (await _status(address, job_id, token)).received_bytes == confirmed
    assert _stored(cluster.state_dir) == []

    uploader = Uploader(task)  # a fresh sender: no member index, it compresses and skips
    ref = await uploader.run()
    stats = uploader.stats
    assert ref.sha256 == task.sha256
    assert stats.resumed_from == confirmed
    assert stats.last_call_bytes == stats.stream_bytes - confirmed < stats.stream_bytes
    (path,) = _stored(cluster.state_dir)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == task.sha256
    assert _staging(cluster.state_dir) == []


async def test_a_resume_pre_empts_a_call_still_hanging_open(
    cluster: Cluster, big_model: Path
) -> None:
    """The first call never finished (a half-open connection); the sender's resume takes over
    the job's staged stream rather than waiting for the old call to time out."""
    address = cluster.orchestrator.address
    job_id, token = _new_job(cluster.orchestrator)
    task = _task(address, job_id, token, big_model)
    confirmed = await _send_partially(address, task, chunks=6, drop=False)
    try:
        uploader = Uploader(task)
        ref = await asyncio.wait_for(uploader.run(), 30)
        assert ref.sha256 == task.sha256
        assert uploader.stats.resumed_from == confirmed and uploader.stats.attempts == 1
        (channel, call) = _HANGING.pop()
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await asyncio.wait_for(call, 10)  # the old call was ended by the server
        assert err.value.code() == grpc.StatusCode.ABORTED
    finally:
        for channel, call in _HANGING:
            call.cancel()
            await channel.close(None)
        _HANGING.clear()
    assert len(_stored(cluster.state_dir)) == 1
    assert _staging(cluster.state_dir) == []


class _CuttingProxy:
    """A TCP proxy that cuts its first connection after ``cut_after`` bytes from the client:
    the network failing mid-upload. Later connections pass through."""

    def __init__(self, upstream: str, cut_after: int) -> None:
        self.host, port = upstream.rsplit(":", 1)
        self.upstream_port = int(port)
        self.cut_after = cut_after
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"127.0.0.1:{port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        budget = self.cut_after if self.connections == 0 else None
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection(self.host, self.upstream_port)

        async def pipe(
            src: asyncio.StreamReader, dst: asyncio.StreamWriter, limit: int | None
        ) -> None:
            forwarded = 0
            try:
                while data := await src.read(64 * 1024):
                    dst.write(data)
                    await dst.drain()
                    forwarded += len(data)
                    if limit is not None and forwarded >= limit:
                        break
            except (ConnectionError, OSError):
                pass
            finally:
                for w in (writer, up_writer):
                    w.transport.abort()

        await asyncio.gather(pipe(reader, up_writer, budget), pipe(up_reader, writer, None))

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def test_a_dropped_connection_is_retried_and_resumed(
    cluster: Cluster, big_model: Path
) -> None:
    job_id, token = _new_job(cluster.orchestrator)
    proxy = _CuttingProxy(cluster.orchestrator.address, cut_after=8 * 1024 * 1024)
    target = await proxy.start()
    try:
        task = _task(target, job_id, token, big_model)
        uploader = Uploader(task, backoff_s=0.05)
        ref = await uploader.run()
    finally:
        await proxy.close()
    stats = uploader.stats
    assert ref.sha256 == task.sha256
    assert stats.attempts >= 2 and proxy.connections >= 2, stats.errors
    assert stats.resumed_from > 0
    assert stats.last_call_bytes == stats.stream_bytes - stats.resumed_from < stats.stream_bytes
    (path,) = _stored(cluster.state_dir)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == task.sha256
    assert _staging(cluster.state_dir) == []


async def test_an_upload_rides_out_an_orchestrator_restart_and_resumes(
    tmp_path: Path, big_model: Path
) -> None:
    """The orchestrator stops mid-upload; the sender retries UNAVAILABLE until a new one is
    up on the same state dir, and resumes from the bytes the first one staged."""
    state = tmp_path / "state"
    listen = f"127.0.0.1:{free_port()}"
    config = OrchestratorConfig(listen=listen, state_dir=state)
    first = await create_orchestrator(config)
    job_id, token = _new_job(first)
    # The job runs on a node that is away: the restarted orchestrator keeps it RUNNING while it
    # tries to re-attach, as it would for a real trainer in its upload phase.
    record = first.book.get(job_id)
    first.book.save_placement(replace(record, node=f"127.0.0.1:{free_port()}", attempt=1))
    task = _task(listen, job_id, token, big_model)
    try:
        confirmed = await _send_partially(listen, task, chunks=10)
    finally:
        await first.stop(0)

    uploader = Uploader(task, backoff_s=0.1, max_backoff_s=0.5, unavailable_window_s=30)
    upload = asyncio.create_task(uploader.run())
    await asyncio.sleep(1.0)
    assert not upload.done()  # riding out UNAVAILABLE
    second = await create_orchestrator(config)
    try:
        ref = await asyncio.wait_for(upload, 30)
    finally:
        await second.stop(0)
    stats = uploader.stats
    assert ref.sha256 == task.sha256
    assert any("UNAVAILABLE" in e for e in stats.errors)
    assert stats.resumed_from == confirmed
    assert stats.last_call_bytes == stats.stream_bytes - confirmed
    (path,) = _stored(state)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == task.sha256
    assert _staging(state) == []


async def test_a_resume_at_the_wrong_offset_is_refused_naming_the_expected_one(
    cluster: Cluster, big_model: Path
) -> None:
    address = cluster.orchestrator.address
    job_id, token = _new_job(cluster.orchestrator)
    task = _task(address, job_id, token, big_model)
    confirmed = await _send_partially(address, task, chunks=4)
    stream_id = GzipOptions().stream_id
    cases = [
        (
            _task_header(task, stream_id=stream_id, resume_offset=confirmed + 100),
            confirmed,
        ),
        (_task_header(task, stream_id="other", resume_offset=confirmed), 0),
    ]
    for header, expected in cases:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _upload(address, header, b"")
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, err.value.details()
        assert f"expected resume_offset {expected}" in (err.value.details() or "")
    # The staged prefix is untouched, and a correct resume completes the upload.
    assert (await _status(address, job_id, token)).received_bytes == confirmed
    uploader = Uploader(task)
    assert (await uploader.run()).sha256 == task.sha256
    assert uploader.stats.resumed_from == confirmed
    assert len(_stored(cluster.state_dir)) == 1


async def test_a_truncated_stream_is_data_loss_but_resumable(cluster: Cluster) -> None:
    address = cluster.orchestrator.address
    job_id, token = _new_job(cluster.orchestrator)
    raw = model_bytes()
    packed = gzip.compress(raw)
    cut = len(packed) // 2
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _upload(address, _header(job_id, token, raw), packed[:cut])
    assert err.value.code() == grpc.StatusCode.DATA_LOSS
    assert f"resume with resume_offset {cut}" in (err.value.details() or "")
    assert _stored(cluster.state_dir) == []
    status = await _status(address, job_id, token)
    assert status.received_bytes == cut and status.sha256 == hashlib.sha256(raw).hexdigest()
    receipt = await _upload(address, _header(job_id, token, raw, resume_offset=cut), packed[cut:])
    assert receipt.resume_offset == cut and receipt.received_bytes == len(packed)
    (path,) = _stored(cluster.state_dir)
    assert path.read_bytes() == raw
    assert _staging(cluster.state_dir) == []


async def test_a_resume_that_does_not_verify_starts_over_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Staged bytes that claim our stream_id but are not our bytes (another zlib, say): the
    resumed stream fails to verify (DATA_LOSS), the staging is discarded, and the sender starts
    over from byte 0 — and succeeds."""
    address = cluster.orchestrator.address
    job_id, token = _new_job(cluster.orchestrator)
    raw = _padded_model()
    path = tmp_path / "model.safetensors"
    path.write_bytes(raw)
    foreign = gzip.compress(raw, 9)  # a valid gzip of the same bytes, but not our stream
    cut = len(foreign) // 2
    with pytest.raises(grpc.aio.AioRpcError):
        await _upload(
            address, _header(job_id, token, raw, stream_id=GzipOptions().stream_id), foreign[:cut]
        )
    assert (await _status(address, job_id, token)).received_bytes == cut
    uploader = Uploader(_task(address, job_id, token, path), backoff_s=0.05)
    ref = await uploader.run()
    assert ref.sha256 == hashlib.sha256(raw).hexdigest()
    assert uploader.stats.attempts == 2 and uploader.stats.errors[0].startswith("DATA_LOSS")
    assert uploader.stats.resumed_from == 0
    (stored,) = _stored(cluster.state_dir)
    assert stored.read_bytes() == raw
    assert _staging(cluster.state_dir) == []


# -- rejections ----------------------------------------------------------------------------------

Mutation = Callable[[upload_pb2.UploadHeader, bytes], bytes]


def _set(name: str, value: object) -> Mutation:
    def mutate(header: upload_pb2.UploadHeader, data: bytes) -> bytes:
        setattr(header, name, value)
        return data

    return mutate


def _corrupt_middle(header: upload_pb2.UploadHeader, data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 16]) + data[middle + 16 :]


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (_set("sha256", "0" * 64), grpc.StatusCode.DATA_LOSS),
        (_set("upload_token", "wrong"), grpc.StatusCode.PERMISSION_DENIED),
        (lambda h, d: b"not gzip at all" + d, grpc.StatusCode.DATA_LOSS),
        (_corrupt_middle, grpc.StatusCode.DATA_LOSS),
        (lambda h, d: d + b"trailing garbage", grpc.StatusCode.DATA_LOSS),
        (_set("size_bytes", 10), grpc.StatusCode.DATA_LOSS),
        (_set("compressed_size_bytes", 5), grpc.StatusCode.DATA_LOSS),
        (_set("compression", "zstd"), grpc.StatusCode.INVALID_ARGUMENT),
        (_set("job_id", "nope"), grpc.StatusCode.NOT_FOUND),
        (_set("sha256", "xyz"), grpc.StatusCode.INVALID_ARGUMENT),
        (_set("resume_offset", -1), grpc.StatusCode.INVALID_ARGUMENT),
        (_set("resume_offset", 10), grpc.StatusCode.FAILED_PRECONDITION),
    ],
    ids=[
        "wrong-sha256",
        "wrong-token",
        "not-gzip",
        "corrupt-gzip",
        "trailing-garbage",
        "bomb-past-declared-size",
        "compressed-size-mismatch",
        "unknown-compression",
        "unknown-job",
        "malformed-sha256",
        "negative-offset",
        "resume-with-nothing-staged",
    ],
)
async def test_a_bad_upload_is_rejected_and_nothing_is_stored(
    cluster: Cluster, mutate: Mutation, code: grpc.StatusCode
) -> None:
    address = cluster.orchestrator.address
    job_id, token = _new_job(cluster.orchestrator)
    raw = _padded_model()
    header = _header(job_id, token, raw)
    data = mutate(header, gzip.compress(raw))
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _upload(address, header, data)
    assert err.value.code() == code, err.value.details()
    assert _stored(cluster.state_dir) == []
    assert _staging(cluster.state_dir) == []
    # The service keeps serving: the right upload still goes through.
    receipt = await _upload(address, _header(job_id, token, raw), gzip.compress(raw))
    assert receipt.model.sha256 == hashlib.sha256(raw).hexdigest()


def _padded_model() -> bytes:
    """A small model with enough random weights that a corrupted middle breaks deflate."""
    rng = np.random.default_rng(3)
    tensors = {"layer.weight": rng.normal(0, 0.05, (64, 64)).astype(np.float32)}
    return save(tensors, metadata=METADATA)


async def test_a_file_that_is_not_safetensors_is_refused(cluster: Cluster) -> None:
    job_id, token = _new_job(cluster.orchestrator)
    raw = b"\x00" * 4096
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _upload(cluster.orchestrator.address, _header(job_id, token, raw), gzip.compress(raw))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "safetensors" in (err.value.details() or "")
    assert _stored(cluster.state_dir) == []
    assert _staging(cluster.state_dir) == []


async def test_status_needs_the_job_token(cluster: Cluster) -> None:
    job_id, _ = _new_job(cluster.orchestrator)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _status(cluster.orchestrator.address, job_id, "wrong")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
