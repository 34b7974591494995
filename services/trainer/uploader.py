"""Ship a finished model to the orchestrator: parallel gzip, chunked, resumable, retried.

Compression. The file is cut into fixed blocks (``BLOCK_BYTES``, 1 MiB) and each block becomes
one gzip member, compressed on a thread pool of one worker per available core (zlib releases the
GIL). Concatenated members are one valid gzip stream (RFC 1952; ``gzip -d`` and zlib with
``wbits=31`` read them all). Members are emitted in order with a bounded look-ahead of
``workers + 2`` blocks, so memory is O(workers x block) whatever the model's size, and the event
loop never blocks on zlib or on the disk.

Level 1. Trained float32 weights are close to noise for deflate: higher levels save a fraction
of a percent of the bytes and cost throughput per core. Compression, not the network, bounds the
upload, so level 1 is the default (figures and the command that measures them:
``benchmarks/README.md``).

Resume. The compressed stream is deterministic: the same file, block size, level and zlib give
the same bytes, named by ``GzipOptions.stream_id``. Every attempt first asks the orchestrator
(``GetUploadStatus``) how many compressed bytes it already holds for the job, then sends the rest
with ``UploadHeader.resume_offset``. Member sizes seen on earlier attempts are remembered, so a
resume starts compressing at the member that holds the offset instead of at the beginning.

Retries. Transient codes are retried with exponential backoff (jittered, capped) up to
``attempts`` times; UNAVAILABLE — the orchestrator down or restarting — is retried for as long as
``unavailable_window_s`` (minutes by default), so a restart is ridden out and the upload resumes
from what the orchestrator staged before it went away.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import grpc

from shared.cancellation import CancellationToken, CancelledError
from shared.jobs import ModelRef
from shared.rpc import plumbing, serde
from shared.rpc.v1 import upload_pb2, upload_pb2_grpc

_LOGGER = logging.getLogger(__name__)

BLOCK_BYTES = 1024 * 1024
"""Uncompressed bytes per gzip member. Deflate only looks back 32 KiB, so the block size does not
change the ratio and a member costs a gzip header; memory in flight is proportional to it, so
the smallest block that keeps the header cost negligible wins (figures: ``benchmarks/README.md``).
Small blocks also make resume points finer."""
LEVEL = 1
"""zlib level: see the module docstring for the measurement behind it."""
CHUNK_BYTES = 512 * 1024
"""Compressed bytes per message: inside the 256 KiB–1 MiB band, well under the message cap."""
STATUS_DEADLINE_S = 10.0

_RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
}
_START_OVER = {grpc.StatusCode.DATA_LOSS, grpc.StatusCode.FAILED_PRECONDITION}
"""Codes after which a *resumed* call is retried once from byte 0."""


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


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS
        return os.cpu_count() or 1


@dataclass(frozen=True, kw_only=True)
class GzipOptions:
    block_bytes: int = BLOCK_BYTES
    level: int = LEVEL
    workers: int = 0
    """Compression threads; 0 = one per available core."""

    @property
    def stream_id(self) -> str:
        """Names the exact byte stream these options produce (zlib's output may change with
        its version, so that is part of the name)."""
        return (
            f"gzip-members;block={self.block_bytes};level={self.level};"
            f"zlib={zlib.ZLIB_RUNTIME_VERSION}"
        )


def compress_member(data: bytes, level: int = LEVEL) -> bytes:
    """``data`` as one complete gzip member (zlib's header: no name, mtime 0)."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def _read_block(path: Path, offset: int, length: int) -> bytes:
    parts: list[bytes] = []
    with path.open("rb", buffering=0) as f:
        while length > 0:
            part = os.pread(f.fileno(), length, offset)
            if not part:
                break
            parts.append(part)
            offset += len(part)
            length -= len(part)
    return b"".join(parts) if len(parts) != 1 else parts[0]


def _compress_block(path: Path, offset: int, length: int, level: int) -> bytes:
    return compress_member(_read_block(path, offset, length), level)


class ParallelGzip:
    """A file as concatenated gzip members, one per block, compressed on a thread pool.

    Iterate it (``for`` or ``async for``) inside ``with`` to get the members in order. At most
    ``window`` blocks are in flight — read, compressed, or done and waiting for the consumer —
    so memory stays O(window x block) whatever the file's size (``max_in_flight`` records it).
    """

    def __init__(self, path: Path, options: GzipOptions = GzipOptions(), *, first_block: int = 0):
        self.path = path
        self.options = options
        size = path.stat().st_size
        self.blocks = max(1, -(-size // options.block_bytes))  # an empty file is one empty member
        remaining = max(1, self.blocks - first_block)
        self.workers = max(1, min(options.workers or available_cores(), remaining))
        self.window = self.workers + 2
        self.max_in_flight = 0
        self._next = first_block
        self._pending: deque[Future[bytes]] = deque()
        self._pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> ParallelGzip:
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="gzip")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        for future in self._pending:
            future.cancel()
        self._pending.clear()
        if self._pool is not None:
            # Never wait: a worker mid-block finishes on its own and its result is dropped.
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def _fill(self) -> None:
        if self._pool is None:
            raise RuntimeError("use ParallelGzip inside a with block")
        block = self.options.block_bytes
        while len(self._pending) < self.window and self._next < self.blocks:
            self._pending.append(
                self._pool.submit(
                    _compress_block, self.path, self._next * block, block, self.options.level
                )
            )
            self._next += 1
        self.max_in_flight = max(self.max_in_flight, len(self._pending))

    def __iter__(self) -> Iterator[bytes]:
        self._fill()
        while self._pending:
            member = self._pending.popleft().result()
            self._fill()
            yield member

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self._fill()
        while self._pending:
            member = await asyncio.wrap_future(self._pending[0])
            self._pending.popleft()
            self._fill()
            yield member


class CompressedStream:
    """The file's deterministic compressed stream, from any byte offset, cut into chunks.

    Remembers the size of every member it has produced, so a resume at offset N starts at the
    member holding N; past what it knows, it compresses and skips (correct, only slower).
    """

    def __init__(self, path: Path, options: GzipOptions = GzipOptions()) -> None:
        self.path = path
        self.options = options
        self.member_sizes: list[int] = []
        self.max_in_flight = 0

    @property
    def total_bytes(self) -> int | None:
        """The whole stream's size, once every member has been produced."""
        blocks = max(1, -(-self.path.stat().st_size // self.options.block_bytes))
        return sum(self.member_sizes) if len(self.member_sizes) == blocks else None

    async def chunks(self, offset: int = 0, chunk_bytes: int = CHUNK_BYTES) -> AsyncIterator[bytes]:
        block = start = 0
        for size in self.member_sizes:
            if start + size > offset:
                break
            start += size
            block += 1
        skip = offset - start
        buffer = b""
        with ParallelGzip(self.path, self.options, first_block=block) as members:
            index = block
            async for member in members:
                if index == len(self.member_sizes):
                    self.member_sizes.append(len(member))
                index += 1
                if skip:
                    if skip >= len(member):
                        skip -= len(member)
                        continue
                    member, skip = member[skip:], 0
                buffer = buffer + member if buffer else member
                position = 0
                while len(buffer) - position >= chunk_bytes:
                    yield buffer[position : position + chunk_bytes]
                    position += chunk_bytes
                buffer = buffer[position:]
            self.max_in_flight = max(self.max_in_flight, members.max_in_flight)
        if skip:
            raise ValueError(f"offset {offset} is past the end of the compressed stream")
        if buffer:
            yield buffer


def gzip_chunks(path: Path, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The file's compressed stream in chunks, synchronously (tests, tools)."""
    buffer = b""
    with ParallelGzip(path) as members:
        for member in members:
            buffer += member
            while len(buffer) >= chunk_bytes:
                yield buffer[:chunk_bytes]
                buffer = buffer[chunk_bytes:]
    if buffer:
        yield buffer


@dataclass
class UploadStats:
    attempts: int = 0
    bytes_sent: int = 0
    """Compressed bytes sent, every attempt together."""
    last_call_bytes: int = 0
    """Compressed bytes sent by the call that succeeded."""
    resumed_from: int = 0
    """The offset the successful call started at (> 0 when it resumed)."""
    stream_bytes: int = 0
    """The whole compressed stream, per the receipt."""
    duplicate: bool = False
    errors: list[str] = field(default_factory=list)


class Uploader:
    """One model's upload: status, send from the confirmed offset, retry; ``run()`` once."""

    def __init__(
        self,
        task: UploadTask,
        *,
        attempts: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        unavailable_window_s: float = 300.0,
        options: GzipOptions = GzipOptions(),
        cancel: CancellationToken | None = None,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        self.task = task
        self.attempts = max(1, attempts)
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.unavailable_window_s = unavailable_window_s
        self.options = options
        self.cancel = cancel
        self.chunk_bytes = chunk_bytes
        self.stream = CompressedStream(task.path, options)
        self.stats = UploadStats()
        self._fresh = False  # set to start over after a resumed stream failed verification

    async def run(self) -> ModelRef:
        """Upload with backoff on transient failures; raise ``UploadError`` otherwise.

        ``attempts`` and the UNAVAILABLE window count failures *without progress*: an attempt
        that finds more bytes staged than the one before resets them, so a long upload over a
        flaky link is not given up while it keeps moving forward.
        """
        delay = self.backoff_s
        first_failure: float | None = None
        failures = 0
        furthest = 0
        restarted = False
        while True:
            self._check_cancel()
            self.stats.attempts += 1
            resumed = False
            try:
                async with plumbing.create_channel(self.task.target, self.task.security) as channel:
                    stub = upload_pb2_grpc.ModelUploadStub(channel)
                    stored, offset = await self._status(stub)
                    if stored is not None:
                        self.stats.duplicate = True
                        return stored
                    if offset > furthest:
                        furthest, failures, first_failure, delay = offset, 0, None, self.backoff_s
                    resumed = offset > 0
                    return await self._send(stub, offset)
            except grpc.RpcError as exc:
                code = exc.code() if isinstance(exc, grpc.aio.AioRpcError) else None
                detail = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
                name = code.name if code else "error"
                self.stats.errors.append(f"{name}: {detail}")
                failures += 1
                now = time.monotonic()
                first_failure = now if first_failure is None else first_failure
                retry = code in _RETRYABLE and failures < self.attempts
                if code is grpc.StatusCode.UNAVAILABLE:
                    retry = retry or now - first_failure + delay <= self.unavailable_window_s
                if resumed and not restarted and code in _START_OVER:
                    # The staged prefix did not fit our bytes (a different zlib, a disk that
                    # lost its tail, staging swept meanwhile): start over from byte 0, once.
                    self._fresh = restarted = retry = True
                    furthest = 0
                if not retry:
                    raise UploadError(
                        f"upload to {self.task.target} failed after {self.stats.attempts} "
                        f"attempt(s): {name}: {detail}",
                        code,
                    ) from exc
                pause = random.uniform(delay / 2, delay)
                _LOGGER.warning(
                    "upload of job %s attempt %d failed (%s: %s); retrying in %.1fs",
                    self.task.job_id,
                    self.stats.attempts,
                    name,
                    detail,
                    pause,
                )
                await self._sleep(pause)
                delay = min(delay * 2, self.max_backoff_s)

    async def _status(
        self, stub: upload_pb2_grpc.ModelUploadAsyncStub
    ) -> tuple[ModelRef | None, int]:
        """The stored model, if any, and the offset to resume at."""
        try:
            status = await stub.GetUploadStatus(
                upload_pb2.UploadStatusRequest(
                    job_id=self.task.job_id, upload_token=self.task.token
                ),
                timeout=STATUS_DEADLINE_S,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.UNIMPLEMENTED:  # an orchestrator without resume
                return None, 0
            raise
        if status.HasField("model") and status.model.sha256 == self.task.sha256:
            return serde.model_ref_from_proto(status.model), 0
        if self._fresh:
            self._fresh = False
            return None, 0
        if status.sha256 == self.task.sha256 and status.stream_id == self.options.stream_id:
            total = self.stream.total_bytes
            if total is None or status.received_bytes <= total:
                return None, status.received_bytes
        return None, 0

    async def _send(self, stub: upload_pb2_grpc.ModelUploadAsyncStub, offset: int) -> ModelRef:
        failure: list[BaseException] = []
        sent = 0

        async def messages() -> AsyncIterator[upload_pb2.ModelChunk]:
            nonlocal sent
            yield upload_pb2.ModelChunk(
                header=upload_pb2.UploadHeader(
                    job_id=self.task.job_id,
                    upload_token=self.task.token,
                    sha256=self.task.sha256,
                    size_bytes=self.task.size_bytes,
                    compression="gzip",
                    filename=self.task.path.name,
                    resume_offset=offset,
                    stream_id=self.options.stream_id,
                )
            )
            try:
                async for chunk in self.stream.chunks(offset, self.chunk_bytes):
                    self._check_cancel()
                    sent += len(chunk)
                    self.stats.bytes_sent += len(chunk)
                    yield upload_pb2.ModelChunk(data=chunk)
            except Exception as exc:
                failure.append(exc)  # grpc swallows it and cancels the call; re-raised below
                raise

        if offset:
            _LOGGER.info("job %s: resuming the upload at byte %d", self.task.job_id, offset)
        try:
            receipt = await stub.UploadModel(messages())
        except asyncio.CancelledError:
            if failure:
                raise self._local_failure(failure[0]) from failure[0]
            raise
        self.stats.last_call_bytes = sent
        self.stats.resumed_from = receipt.resume_offset
        self.stats.stream_bytes = receipt.received_bytes
        self.stats.duplicate = receipt.duplicate
        return serde.model_ref_from_proto(receipt.model)

    def _local_failure(self, exc: BaseException) -> BaseException:
        if isinstance(exc, CancelledError):
            return exc
        return UploadError(f"cannot read or compress {self.task.path}: {exc}")

    def _check_cancel(self) -> None:
        if self.cancel is not None:
            self.cancel.raise_if_cancelled()

    async def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self._check_cancel()
            await asyncio.sleep(min(left, 0.25))
        self._check_cancel()
