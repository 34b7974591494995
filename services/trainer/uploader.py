"""Ship a finished model to the orchestrator: gzip-compressed, chunked, verified, retried.

The file is read and compressed block by block in a worker thread while chunks stream out, so
memory stays flat whatever the model's size and the event loop never blocks on zlib. The header
carries the sha256 of the uncompressed file; the orchestrator verifies it before storing.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from shared.jobs import ModelRef
from shared.rpc import plumbing, serde
from shared.rpc.v1 import upload_pb2, upload_pb2_grpc

_LOGGER = logging.getLogger(__name__)

CHUNK_BYTES = 512 * 1024
"""Compressed bytes per message: inside the 256 KiB–1 MiB band, well under the message cap."""
READ_BYTES = 1024 * 1024

_RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
}


class UploadError(Exception):
    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, kw_only=True)
class UploadTask:
    target: str
    job_id: str
    token: str
    path: Path
    sha256: str
    size_bytes: int
    security: plumbing.Security = plumbing.INSECURE


def gzip_chunks(path: Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The file as one gzip stream, cut into chunks of at most ``chunk_bytes``."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
    pending = bytearray()
    with path.open("rb") as f:
        while block := f.read(READ_BYTES):
            pending += compressor.compress(block)
            while len(pending) >= chunk_bytes:
                yield bytes(pending[:chunk_bytes])
                del pending[:chunk_bytes]
    pending += compressor.flush()
    for start in range(0, len(pending), chunk_bytes):
        yield bytes(pending[start : start + chunk_bytes])


async def _messages(task: UploadTask) -> AsyncIterator[upload_pb2.ModelChunk]:
    yield upload_pb2.ModelChunk(
        header=upload_pb2.UploadHeader(
            job_id=task.job_id,
            upload_token=task.token,
            sha256=task.sha256,
            size_bytes=task.size_bytes,
            compression="gzip",
            filename=task.path.name,
        )
    )
    chunks = gzip_chunks(task.path)
    done = object()
    while True:
        chunk = await asyncio.to_thread(next, chunks, done)
        if chunk is done:
            return
        assert isinstance(chunk, bytes)
        yield upload_pb2.ModelChunk(data=chunk)


async def upload_once(task: UploadTask, deadline_s: float | None = None) -> ModelRef:
    async with plumbing.create_channel(task.target, task.security) as channel:
        stub = upload_pb2_grpc.ModelUploadStub(channel)
        receipt = await stub.UploadModel(_messages(task), timeout=deadline_s)
    return serde.model_ref_from_proto(receipt.model)


async def upload(task: UploadTask, *, attempts: int = 4, backoff_s: float = 0.5) -> ModelRef:
    """Upload with exponential backoff on transient failures; raise ``UploadError`` otherwise."""
    delay = backoff_s
    for attempt in range(1, attempts + 1):
        try:
            return await upload_once(task)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
            detail = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
            if code not in _RETRYABLE or attempt == attempts:
                raise UploadError(
                    f"upload to {task.target} failed after {attempt} attempt(s): "
                    f"{code.name if code else 'error'}: {detail}",
                    code,
                ) from exc
            _LOGGER.warning(
                "upload of job %s attempt %d/%d failed (%s); retrying in %.1fs",
                task.job_id,
                attempt,
                attempts,
                code.name if code else exc,
                delay,
            )
            await asyncio.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")
