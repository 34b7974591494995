"""Receive models from trainers (``ModelUpload.UploadModel``) and store them — only if sound.

Nothing is stored until every check passes: the job exists and is running, the per-job token
matches, the declared size is within the cap, the gzip stream (one or more members) inflates to
exactly the declared size (inflation is bounded, so a gzip bomb stops at the cap), its sha256
matches the header, and the file opens as safetensors with trainwire metadata. The bytes are
staged in a temporary file that is renamed into the repository, or deleted on any failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import re
import uuid
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
from safetensors import safe_open

from shared import errors
from shared.jobs import ModelRef
from shared.rpc import serde
from shared.rpc.errors import rpc_method
from shared.rpc.v1 import upload_pb2, upload_pb2_grpc

from .jobs import JobBook
from .repository import ModelRepository

_LOGGER = logging.getLogger(__name__)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
METADATA_KEY = "trainwire"

Context = grpc.aio.ServicerContext[Any, Any]


class _Inflater:
    """Inflate concatenated gzip members into a file, never past ``limit`` bytes."""

    def __init__(self, out: Path, limit: int) -> None:
        self._file = out.open("wb")
        self._limit = limit
        self._d = zlib.decompressobj(31)
        self.size = 0
        self.compressed = 0
        self.sha = hashlib.sha256()

    def feed(self, data: bytes) -> None:
        self.compressed += len(data)
        while data:
            room = self._limit - self.size
            try:
                out = self._d.decompress(data, room + 1)
            except zlib.error as exc:
                raise errors.DataLossError(f"the gzip stream is corrupt: {exc}") from None
            self._write(out)
            if self._d.unconsumed_tail:
                data = self._d.unconsumed_tail
            elif self._d.eof:
                data = self._d.unused_data
                if data:
                    self._d = zlib.decompressobj(31)  # the next concatenated member
            else:
                data = b""

    def _write(self, out: bytes) -> None:
        self.size += len(out)
        if self.size > self._limit:
            raise errors.DataLossError(f"the stream inflates past the declared {self._limit} bytes")
        self.sha.update(out)
        self._file.write(out)

    def finish(self) -> None:
        if not self._d.eof:
            raise errors.DataLossError(
                "the gzip stream ended early: truncated upload", reason="TRUNCATED"
            )
        self._file.flush()
        self.close()

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def read_metadata(path: Path) -> dict[str, Any]:
    """The trainwire metadata of a safetensors file; raises if it is not one."""
    try:
        with safe_open(str(path), framework="numpy") as f:
            keys = list(f.keys())
            raw = (f.metadata() or {}).get(METADATA_KEY)
    except Exception as exc:
        raise errors.InvalidArgumentError(f"the model is not a safetensors file: {exc}") from None
    if not keys:
        raise errors.InvalidArgumentError("the model file holds no tensors")
    if raw is None:
        raise errors.InvalidArgumentError(f"the model has no {METADATA_KEY!r} metadata")
    try:
        metadata = json.loads(raw)
    except ValueError as exc:
        raise errors.InvalidArgumentError(f"the model's metadata is not JSON: {exc}") from None
    if not isinstance(metadata, dict):
        raise errors.InvalidArgumentError("the model's metadata is not a JSON object")
    return metadata


class ModelUploadServicer(upload_pb2_grpc.ModelUploadServicer):
    def __init__(
        self, book: JobBook, repository: ModelRepository, *, staging: Path, max_bytes: int
    ) -> None:
        self._book = book
        self._repository = repository
        self._staging = staging
        self._staging.mkdir(parents=True, exist_ok=True)
        self._max_bytes = max_bytes

    @rpc_method
    async def UploadModel(
        self, request_iterator: AsyncIterator[upload_pb2.ModelChunk], context: Context
    ) -> upload_pb2.UploadReceipt:
        first = await anext(aiter(request_iterator), None)
        if first is None or not first.HasField("header"):
            raise errors.InvalidArgumentError(
                "the first message must be the upload header", field="header"
            )
        header = first.header
        record = self._book.get(header.job_id)
        if not hmac.compare_digest(header.upload_token.encode(), record.upload_token.encode()):
            raise errors.PermissionDeniedError(
                f"the upload token does not match job {header.job_id}", field="upload_token"
            )
        if not _SHA256.match(header.sha256):
            raise errors.InvalidArgumentError(
                "must be the 64 lowercase hex digits of the file's sha256", field="sha256"
            )
        if header.compression != "gzip":
            raise errors.InvalidArgumentError(
                f"unsupported compression {header.compression!r}; use 'gzip'",
                field="compression",
            )
        if header.size_bytes <= 0:
            raise errors.InvalidArgumentError("must be > 0", field="size_bytes")
        if header.size_bytes > self._max_bytes:
            raise errors.ResourceExhaustedError(
                f"the model is {header.size_bytes} bytes; this orchestrator accepts at most "
                f"{self._max_bytes}",
                field="size_bytes",
            )
        stored = self._repository.by_job(header.job_id)
        if stored is not None:
            if stored.sha256 != header.sha256:
                raise errors.AlreadyExistsError(
                    f"job {header.job_id} already stored a different model ({stored.name})"
                )
            return _receipt(header.job_id, stored, 0, duplicate=True)
        if record.state.terminal:
            raise errors.FailedPreconditionError(
                f"job {header.job_id} is {record.state.value}; it takes no model"
            )

        staged = self._staging / f"{header.job_id}-{uuid.uuid4().hex}.part"
        inflater = _Inflater(staged, header.size_bytes)
        try:
            async for chunk in request_iterator:
                if chunk.HasField("header"):
                    raise errors.InvalidArgumentError(
                        "only the first message may be a header", field="header"
                    )
                await asyncio.to_thread(inflater.feed, chunk.data)
            inflater.finish()
            if inflater.size != header.size_bytes:
                raise errors.DataLossError(
                    f"received {inflater.size} bytes, the header declared {header.size_bytes}",
                    reason="TRUNCATED",
                )
            digest = inflater.sha.hexdigest()
            if digest != header.sha256:
                raise errors.DataLossError(
                    f"sha256 mismatch: the bytes hash to {digest}, the header says {header.sha256}",
                    reason="CHECKSUM_MISMATCH",
                    field="sha256",
                )
            metadata = await asyncio.to_thread(read_metadata, staged)
            request = record.request
            ref = await asyncio.to_thread(
                self._repository.store,
                job_id=header.job_id,
                staged_weights=staged,
                sha256=digest,
                metadata=metadata,
                strategy=request.strategy.name,
                symbols=request.symbols,
                timeframes=request.timeframes,
            )
        finally:
            inflater.close()
            staged.unlink(missing_ok=True)
        _LOGGER.info(
            "job %s: model received (%d → %d bytes) and stored as %s",
            header.job_id,
            inflater.compressed,
            inflater.size,
            ref.name,
        )
        return _receipt(header.job_id, ref, inflater.compressed, duplicate=False)


def _receipt(
    job_id: str, ref: ModelRef, received: int, *, duplicate: bool
) -> upload_pb2.UploadReceipt:
    return upload_pb2.UploadReceipt(
        job_id=job_id,
        model=serde.model_ref_to_proto(ref),
        received_bytes=received,
        duplicate=duplicate,
    )
