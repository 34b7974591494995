"""ModelUpload.UploadModel: only a sound, authorised, verified model is stored."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from safetensors.numpy import save

from shared.rpc import plumbing
from shared.rpc.v1 import upload_pb2, upload_pb2_grpc
from shared.spec import TrainingRequest, default_strategy
from tests.conftest import Cluster

pytestmark = pytest.mark.timeout(60)


def model_bytes() -> bytes:
    tensors = {"layer.weight": np.arange(12, dtype=np.float32).reshape(3, 4)}
    return save(tensors, metadata={"trainwire": json.dumps({"format_version": 1})})


async def _chunks(
    header: upload_pb2.UploadHeader, data: bytes, size: int = 64 * 1024
) -> AsyncIterator[upload_pb2.ModelChunk]:
    yield upload_pb2.ModelChunk(header=header)
    for start in range(0, len(data), size):
        yield upload_pb2.ModelChunk(data=data[start : start + size])


def _new_job(cluster: Cluster) -> tuple[str, str]:
    record, _ = cluster.orchestrator.book.create(
        TrainingRequest(symbols=("SYNTH",), timeframes=("1h",), strategy=default_strategy())
    )
    return record.job_id, record.upload_token


async def _upload(
    cluster: Cluster, header: upload_pb2.UploadHeader, data: bytes
) -> upload_pb2.UploadReceipt:
    async with plumbing.create_channel(cluster.orchestrator.address) as channel:
        stub = upload_pb2_grpc.ModelUploadStub(channel)
        return await stub.UploadModel(_chunks(header, data))


def _stored(cluster: Cluster) -> list[Path]:
    return list(cluster.models_dir.rglob("model.safetensors"))


async def test_a_sound_upload_is_stored_and_a_repeat_is_idempotent(cluster: Cluster) -> None:
    job_id, token = _new_job(cluster)
    raw = model_bytes()
    # Two concatenated gzip members are still one valid gzip stream.
    packed = gzip.compress(raw[:100]) + gzip.compress(raw[100:])
    header = upload_pb2.UploadHeader(
        job_id=job_id,
        upload_token=token,
        sha256=hashlib.sha256(raw).hexdigest(),
        size_bytes=len(raw),
        compression="gzip",
    )
    receipt = await _upload(cluster, header, packed)
    assert receipt.model.sha256 == header.sha256
    assert not receipt.duplicate
    (path,) = _stored(cluster)
    assert path.read_bytes() == raw
    again = await _upload(cluster, header, packed)
    assert again.duplicate and again.model.name == receipt.model.name
    assert len(_stored(cluster)) == 1


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda h, d: (h.__setattr__("sha256", "0" * 64), d)[1], grpc.StatusCode.DATA_LOSS),
        (
            lambda h, d: (h.__setattr__("upload_token", "wrong"), d)[1],
            grpc.StatusCode.PERMISSION_DENIED,
        ),
        (lambda h, d: d[: len(d) // 2], grpc.StatusCode.DATA_LOSS),
        (lambda h, d: b"not gzip at all" + d, grpc.StatusCode.DATA_LOSS),
        (lambda h, d: (h.__setattr__("size_bytes", 10), d)[1], grpc.StatusCode.DATA_LOSS),
        (
            lambda h, d: (h.__setattr__("compression", "zstd"), d)[1],
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (lambda h, d: (h.__setattr__("job_id", "nope"), d)[1], grpc.StatusCode.NOT_FOUND),
        (lambda h, d: (h.__setattr__("sha256", "xyz"), d)[1], grpc.StatusCode.INVALID_ARGUMENT),
    ],
    ids=[
        "wrong-sha256",
        "wrong-token",
        "truncated",
        "corrupt-gzip",
        "bomb-past-declared-size",
        "unknown-compression",
        "unknown-job",
        "malformed-sha256",
    ],
)
async def test_a_bad_upload_is_rejected_and_nothing_is_stored(
    cluster: Cluster, mutate: object, code: grpc.StatusCode
) -> None:
    job_id, token = _new_job(cluster)
    raw = model_bytes()
    header = upload_pb2.UploadHeader(
        job_id=job_id,
        upload_token=token,
        sha256=hashlib.sha256(raw).hexdigest(),
        size_bytes=len(raw),
        compression="gzip",
    )
    data = mutate(header, gzip.compress(raw))  # type: ignore[operator]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _upload(cluster, header, data)
    assert err.value.code() == code, err.value.details()
    assert _stored(cluster) == []
    assert list((cluster.state_dir / "staging").iterdir()) == []
    # The service keeps serving: the right upload still goes through.
    header = upload_pb2.UploadHeader(
        job_id=job_id,
        upload_token=token,
        sha256=hashlib.sha256(raw).hexdigest(),
        size_bytes=len(raw),
        compression="gzip",
    )
    receipt = await _upload(cluster, header, gzip.compress(raw))
    assert receipt.model.sha256 == hashlib.sha256(raw).hexdigest()


async def test_a_file_that_is_not_safetensors_is_refused(cluster: Cluster) -> None:
    job_id, token = _new_job(cluster)
    raw = b"\x00" * 4096
    header = upload_pb2.UploadHeader(
        job_id=job_id,
        upload_token=token,
        sha256=hashlib.sha256(raw).hexdigest(),
        size_bytes=len(raw),
        compression="gzip",
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _upload(cluster, header, gzip.compress(raw))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "safetensors" in (err.value.details() or "")
    assert _stored(cluster) == []
