"""Receive models from trainers (``ModelUpload``) and store them — only if sound; resumably.

Nothing is stored until every check passes: the job exists, the per-job token matches, the
declared size is within the cap, the gzip stream (one or more members) inflates to exactly the
declared size (inflation is bounded, so a gzip bomb stops at the cap), its sha256 matches the
header, and the file opens as safetensors with trainwire metadata that reads the way every
reader reads it (``shared.artifacts.metadata``: the format version, and each key the type
``GetModel`` and ``load_model`` rely on). The model is inflated into a temporary file that is
renamed into the repository, or deleted on any failure. The job id is checked
(``shared.ids.check_job_id``) before anything else, so it is always one plain file name.

Resume. The *compressed* stream is staged per job in ``staging/<job>.gz`` as it arrives, beside
``staging/<job>.json`` (the header: sha256, size, stream_id; never the token). Only bytes that
inflated cleanly are appended, so the staged file is always a valid prefix of the stream. A call
that breaks off (client gone, connection lost, orchestrator stopped) keeps that prefix;
``GetUploadStatus`` reports its length, and the sender continues with ``resume_offset`` = that
length. A resumed call rebuilds the inflater by re-reading the staged prefix from disk — the
same code path whether or not the orchestrator restarted in between — then continues with the
new bytes. A resume_offset past the staged length is FAILED_PRECONDITION naming the expected
offset; one before it truncates the staged file there (the sender's stream is deterministic, so
it re-sends identical bytes; a racing old call may have staged a little more than the sender
was told).

What is durable. Appends are unbuffered writes, so they survive the orchestrator's process
dying; they are fsync'd in the background every ``FSYNC_BYTES`` and when a call ends, and the
header file is written atomically (temp file, fsync, rename). Correctness never depends on it:
the sender asks for the staged length after any failure, and the sha256 checks the end result.
After a power loss the staged prefix may be shorter than it was (GetUploadStatus shows the
shorter length) or end in garbage (the replay or the sha256 fails with DATA_LOSS, the staging is
discarded, the sender starts over once). The inflated model is fsync'd before it is stored, so a
receipt — after which the trainer deletes its spool — is only sent for a model on disk.

Outcomes. A stream that ends before the gzip stream or the declared size does is DATA_LOSS
(reason TRUNCATED) but *resumable*: its prefix stays staged. Corrupt gzip, inflation past the
declared size, a sha256 or compressed-size mismatch (DATA_LOSS) and a file that is not a model
(INVALID_ARGUMENT) discard the staging. Only one call per job writes at a time: a new call for a
job pre-empts the one still running (its client has given up — the sender is the only holder of
the token and retries only after a failure). Staged uploads older than ``STAGING_TTL_S`` are
swept away, and ``ModelUploadServicer.discard`` drops a job's at once (a job that ended without
a model). Every blocking step on the staging (truncate, fsync, unlink) runs on a worker thread.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import re
import threading
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc
from safetensors import safe_open

from shared import errors
from shared.artifacts.metadata import METADATA_KEY, ArtifactError, read_artifact_metadata
from shared.ids import check_job_id
from shared.jobs import ModelRef
from shared.rpc import serde
from shared.rpc.errors import rpc_method
from shared.rpc.v1 import upload_pb2, upload_pb2_grpc

from .jobs import JobBook
from .repository import ModelRepository

_LOGGER = logging.getLogger(__name__)
_SHA256 = re.compile(r"[0-9a-f]{64}")
FSYNC_BYTES = 16 * 1024 * 1024
"""Staged bytes between fsyncs (and one when every call ends)."""
STAGING_TTL_S = 24 * 3600.0
"""A staged, unfinished upload untouched this long is deleted."""
REPLAY_BYTES = 1024 * 1024

Context = grpc.aio.ServicerContext[Any, Any]


def compressed_limit(size_bytes: int) -> int:
    """The most compressed bytes a gzip of ``size_bytes`` needs (stored blocks cost ~0.01 %,
    each member ~20 bytes), with room for small members; more is not an honest stream."""
    return size_bytes + size_bytes // 8 + 1024 * 1024


class _Inflater:
    """Inflate concatenated gzip members into a file, never past ``limit`` bytes."""

    def __init__(self, out: Path, limit: int) -> None:
        self._file = out.open("wb")
        self._limit = limit
        self._d: Any = zlib.decompressobj(31)
        self.size = 0
        self.sha = hashlib.sha256()

    def feed(self, data: bytes) -> None:
        while data:
            if self._d is None:  # the previous member ended exactly at a chunk boundary
                self._d = zlib.decompressobj(31)
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
                self._d = None  # the next concatenated member, if any, starts a new one
            else:
                data = b""

    def _write(self, out: bytes) -> None:
        self.size += len(out)
        if self.size > self._limit:
            raise errors.DataLossError(f"the stream inflates past the declared {self._limit} bytes")
        self.sha.update(out)
        self._file.write(out)

    @property
    def at_member_end(self) -> bool:
        return self._d is None

    def fileno(self) -> int:
        return self._file.fileno()

    def close(self, *, sync: bool = False) -> None:
        if not self._file.closed:
            self._file.flush()
            if sync:
                os.fsync(self._file.fileno())
            self._file.close()


class _Session:
    """One call's work on a job's staged stream. File work runs on a worker thread; ``close``
    (from the event loop, also when the call is cancelled) waits for the one step in progress."""

    def __init__(self, staged: Path, part: Path, size_bytes: int, offset: int) -> None:
        self.staged = staged
        self.part = part
        self.inflater = _Inflater(part, size_bytes)
        self.received = offset
        self.limit = compressed_limit(size_bytes)
        self._lock = threading.Lock()
        self._abort = False
        self._unsynced = 0
        self._syncer: threading.Thread | None = None
        self._out = staged.open("ab", buffering=0)

    def replay(self, length: int) -> None:
        """Inflate the first ``length`` staged bytes again (a resumed call)."""
        with self._lock, self.staged.open("rb") as f:
            done = 0
            while done < length and not self._abort:
                data = f.read(min(REPLAY_BYTES, length - done))
                if not data:
                    raise errors.DataLossError(
                        f"the staged stream is shorter than {length} bytes", reason="STAGING_LOST"
                    )
                self.inflater.feed(data)
                done += len(data)

    def accept(self, data: bytes) -> None:
        with self._lock:
            if self._abort:
                return
            if self.received + len(data) > self.limit:
                raise errors.DataLossError(
                    f"the compressed stream passes {self.limit} bytes, more than any gzip of "
                    "the declared size needs"
                )
            self.inflater.feed(data)  # raises before a bad byte is staged
            self._out.write(data)
            self.received += len(data)
            self._unsynced += len(data)
            if self._unsynced >= FSYNC_BYTES and not (self._syncer and self._syncer.is_alive()):
                # Flush both files to disk beside the stream, not in its way: the disk works
                # while the next chunks inflate, and the final fsync finds little left to do.
                fds = (self._out.fileno(), self.inflater.fileno())
                self._syncer = threading.Thread(target=_fsync_all, args=fds, daemon=True)
                self._syncer.start()
                self._unsynced = 0

    def close(self, *, keep_inflated: bool = False) -> None:
        """Close both files (fsync'd); ``keep_inflated`` makes the inflated file durable too,
        before it is stored and a receipt lets the sender delete its copy."""
        self._abort = True
        with self._lock:
            if self._syncer is not None:
                self._syncer.join()
                self._syncer = None
            if not self._out.closed:
                os.fsync(self._out.fileno())
                self._out.close()
            self.inflater.close(sync=keep_inflated)


def _fsync_all(*fds: int) -> None:
    for fd in fds:
        try:
            os.fsync(fd)
        except OSError as exc:
            _LOGGER.warning("background fsync failed: %s", exc)


class _Staging:
    """The staged streams: ``<job>.gz`` (compressed prefix) and ``<job>.json`` (its header).

    Blocking file work: call ``begin``, ``truncate``, ``discard`` and ``sweep`` on a worker
    thread. They may run on several at once: a lock keeps each one whole (a ``discard`` never
    lands between the two files of a ``begin``)."""

    def __init__(self, root: Path, ttl_s: float) -> None:
        self.root = root
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)
        # Inflated files and header temp files of calls a restart cut off.
        for leftover in (*root.glob("*.part"), *root.glob(".*.tmp")):
            leftover.unlink(missing_ok=True)
        self.sweep()

    def data(self, job_id: str) -> Path:
        return self.root / f"{check_job_id(job_id)}.gz"

    def _meta(self, job_id: str) -> Path:
        return self.root / f"{check_job_id(job_id)}.json"

    def header(self, job_id: str) -> dict[str, Any] | None:
        try:
            loaded = json.loads(self._meta(job_id).read_text())
        except (OSError, ValueError):
            return None
        return loaded if isinstance(loaded, dict) else None

    def received(self, job_id: str) -> int:
        try:
            return self.data(job_id).stat().st_size
        except FileNotFoundError:
            return 0

    def begin(self, job_id: str, header: dict[str, Any]) -> None:
        with self._lock:
            self._discard(job_id)
            tmp = self.root / f".{check_job_id(job_id)}-{uuid.uuid4().hex}.tmp"
            with tmp.open("wb") as f:
                f.write(json.dumps(header, sort_keys=True).encode())
                f.flush()
                os.fsync(f.fileno())
            self.data(job_id).touch()
            os.replace(tmp, self._meta(job_id))
            fd = os.open(self.root, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def truncate(self, job_id: str, length: int) -> None:
        with self._lock, self.data(job_id).open("r+b") as f:
            f.truncate(length)
            os.fsync(f.fileno())

    def discard(self, job_id: str) -> None:
        """Delete the job's staged stream and header, if any (from any thread)."""
        with self._lock:
            self._discard(job_id)

    def _discard(self, job_id: str) -> None:
        self._meta(job_id).unlink(missing_ok=True)
        self.data(job_id).unlink(missing_ok=True)

    def sweep(self) -> None:
        """Delete staged streams untouched for ``ttl_s``, and headers without a stream."""
        cutoff = time.time() - self.ttl_s
        for path in self._staged("*.gz"):
            try:
                stale = path.stat().st_mtime < cutoff
            except FileNotFoundError:
                continue
            if stale:
                _LOGGER.info("dropping stale staged upload %s", path.name)
                self.discard(path.stem)
        for path in self._staged("*.json"):
            if not self.data(path.stem).exists():
                path.unlink(missing_ok=True)

    def _staged(self, pattern: str) -> list[Path]:
        """Files matching ``pattern`` named by a job id (no other name is one of ours)."""
        found = []
        for path in self.root.glob(pattern):
            try:
                check_job_id(path.stem)
            except errors.InvalidArgumentError:
                continue
            found.append(path)
        return found


def read_metadata(path: Path) -> dict[str, Any]:
    """The trainwire metadata of a safetensors file, read and checked by the same code every
    reader of a stored model uses; INVALID_ARGUMENT saying what is wrong otherwise."""
    try:
        with safe_open(str(path), framework="numpy") as f:
            keys = list(f.keys())
    except Exception as exc:
        raise errors.InvalidArgumentError(
            f"the model is not a safetensors file: {exc}", reason="NOT_A_MODEL"
        ) from None
    if not keys:
        raise errors.InvalidArgumentError("the model file holds no tensors", reason="NOT_A_MODEL")
    try:
        return read_artifact_metadata(path)
    except ArtifactError as exc:
        raise errors.InvalidArgumentError(
            f"the model's {METADATA_KEY!r} metadata: {exc}", reason="BAD_MODEL_METADATA"
        ) from None


def _header_record(header: upload_pb2.UploadHeader) -> dict[str, Any]:
    return {
        "job_id": header.job_id,
        "sha256": header.sha256,
        "size_bytes": header.size_bytes,
        "compression": header.compression,
        "stream_id": header.stream_id,
        "started_at": time.time(),
    }


def _same_stream(staged: dict[str, Any] | None, header: upload_pb2.UploadHeader) -> bool:
    return staged is not None and (
        staged.get("sha256"),
        staged.get("size_bytes"),
        staged.get("stream_id"),
    ) == (header.sha256, header.size_bytes, header.stream_id)


class ModelUploadServicer(upload_pb2_grpc.ModelUploadServicer):
    def __init__(
        self,
        book: JobBook,
        repository: ModelRepository,
        *,
        staging: Path,
        max_bytes: int,
        staging_ttl_s: float = STAGING_TTL_S,
    ) -> None:
        self._book = book
        self._repository = repository
        self._staging = _Staging(staging, staging_ttl_s)
        self._max_bytes = max_bytes
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # per job: lock, calls using it
        self._active: dict[str, asyncio.Task[Any]] = {}
        self._preempted: set[asyncio.Task[Any]] = set()
        self.on_stored: Callable[[int, float], None] | None = None
        """Called with (compressed bytes received in the call, its seconds) per stored model."""

    def discard(self, job_id: str) -> None:
        """Drop ``job_id``'s staged upload, if any: for a job that ended without a model.
        Blocking file work, safe from any thread (call it on a worker thread, not the loop);
        raises ``InvalidArgumentError`` for a malformed id. A call still receiving for the job
        finds its staging gone and cannot be resumed; it stores nothing for a job that ended."""
        self._staging.discard(job_id)

    def _authorise(self, job_id: str, token: str) -> None:
        check_job_id(job_id)  # first: a job id also names files in the staging directory
        record = self._book.get(job_id)
        if not hmac.compare_digest(token.encode(), record.upload_token.encode()):
            raise errors.PermissionDeniedError(
                f"the upload token does not match job {job_id}", field="upload_token"
            )

    @rpc_method
    async def GetUploadStatus(
        self, request: upload_pb2.UploadStatusRequest, context: Context
    ) -> upload_pb2.UploadStatus:
        self._authorise(request.job_id, request.upload_token)
        status = upload_pb2.UploadStatus(job_id=request.job_id)
        stored = self._repository.by_job(request.job_id)
        if stored is not None:
            status.model.CopyFrom(serde.model_ref_to_proto(stored))
            return status
        staged = await asyncio.to_thread(self._staging.header, request.job_id)
        if staged is not None:
            status.received_bytes = await asyncio.to_thread(self._staging.received, request.job_id)
            status.sha256 = str(staged.get("sha256", ""))
            status.stream_id = str(staged.get("stream_id", ""))
        return status

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
        self._authorise(header.job_id, header.upload_token)
        record = self._book.get(header.job_id)
        if not _SHA256.fullmatch(header.sha256):
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
        if header.resume_offset < 0:
            raise errors.InvalidArgumentError("must be >= 0", field="resume_offset")
        stored = self._repository.by_job(header.job_id)
        if stored is not None:
            if stored.sha256 != header.sha256:
                raise errors.AlreadyExistsError(
                    f"job {header.job_id} already stored a different model ({stored.name})"
                )
            await asyncio.to_thread(self._staging.discard, header.job_id)
            return _receipt(header.job_id, stored, 0, 0, duplicate=True)
        if record.state.terminal:
            raise errors.FailedPreconditionError(
                f"job {header.job_id} is {record.state.value}; it takes no model"
            )

        job_id = header.job_id
        previous = self._active.get(job_id)
        if previous is not None and not previous.done() and previous not in self._preempted:
            _LOGGER.info("job %s: a new upload call pre-empts the one still running", job_id)
            self._preempted.add(previous)
            previous.cancel()
        lock, users = self._locks.get(job_id, (asyncio.Lock(), 0))
        self._locks[job_id] = (lock, users + 1)
        task = asyncio.current_task()
        try:
            async with lock:
                if task is not None:
                    self._active[job_id] = task
                try:
                    return await self._receive(header, request_iterator, context)
                finally:
                    if self._active.get(job_id) is task:
                        del self._active[job_id]
        except asyncio.CancelledError:
            if task is None or task not in self._preempted:
                raise
            # Tell the old caller, if it still listens, instead of leaving its call hanging.
            task.uncancel()
            await context.abort(
                grpc.StatusCode.ABORTED,
                f"a newer upload call for job {job_id} took over; ask GetUploadStatus",
            )
            raise AssertionError("unreachable") from None  # abort raises
        finally:
            self._preempted.discard(task)
            lock, users = self._locks[job_id]
            if users > 1:
                self._locks[job_id] = (lock, users - 1)
            else:
                del self._locks[job_id]

    async def _receive(
        self,
        header: upload_pb2.UploadHeader,
        request_iterator: AsyncIterator[upload_pb2.ModelChunk],
        context: Context,
    ) -> upload_pb2.UploadReceipt:
        job_id = header.job_id
        offset = header.resume_offset
        staging = self._staging
        started = time.monotonic()
        if offset == 0:
            await asyncio.to_thread(staging.sweep)
            await asyncio.to_thread(staging.begin, job_id, _header_record(header))
        else:
            staged = await asyncio.to_thread(staging.header, job_id)
            have = await asyncio.to_thread(staging.received, job_id)
            if not _same_stream(staged, header):
                have = 0
            if staged is None or not _same_stream(staged, header) or offset > have:
                what = (
                    f"{have} bytes of this stream are staged"
                    if _same_stream(staged, header)
                    else "no staged bytes of this stream (same sha256, size and stream_id)"
                )
                raise errors.FailedPreconditionError(
                    f"cannot resume job {job_id} at byte {offset}: {what}; "
                    f"expected resume_offset {have}",
                    reason="RESUME_OFFSET_MISMATCH",
                    field="resume_offset",
                )
            if offset < have:
                await asyncio.to_thread(staging.truncate, job_id, offset)

        part = staging.root / f"{job_id}-{uuid.uuid4().hex}.part"
        session = _Session(staging.data(job_id), part, header.size_bytes, offset)
        keep = True  # the staged prefix, for a resume; False once it is known bad or stored
        try:
            try:
                if offset:
                    await asyncio.to_thread(session.replay, offset)
                async for chunk in request_iterator:
                    if chunk.HasField("header"):
                        raise errors.InvalidArgumentError(
                            "only the first message may be a header", field="header"
                        )
                    if chunk.data:
                        await asyncio.to_thread(session.accept, chunk.data)
            except errors.DataLossError:
                keep = False
                raise
            inflater = session.inflater
            if context.cancelled():  # the sender went away; its bytes stay staged
                _LOGGER.info(
                    "job %s: upload interrupted after %d compressed bytes; kept for a resume",
                    job_id,
                    session.received,
                )
                raise asyncio.CancelledError
            if not inflater.at_member_end or inflater.size != header.size_bytes:
                where = "inside a gzip member" if not inflater.at_member_end else "between members"
                raise errors.DataLossError(
                    f"the stream ended {where} after {session.received} compressed bytes "
                    f"({inflater.size} of the declared {header.size_bytes} bytes): truncated; "
                    f"resume with resume_offset {session.received}",
                    reason="TRUNCATED",
                )
            keep = False
            if header.compressed_size_bytes and session.received != header.compressed_size_bytes:
                raise errors.DataLossError(
                    f"received {session.received} compressed bytes, the header declared "
                    f"{header.compressed_size_bytes}",
                    reason="SIZE_MISMATCH",
                )
            await asyncio.to_thread(session.close, keep_inflated=True)
            digest = inflater.sha.hexdigest()
            if digest != header.sha256:
                raise errors.DataLossError(
                    f"sha256 mismatch: the bytes hash to {digest}, the header says {header.sha256}",
                    reason="CHECKSUM_MISMATCH",
                    field="sha256",
                )
            metadata = await asyncio.to_thread(read_metadata, part)
            record = self._book.get(job_id)
            if record.state.terminal:  # it ended (cancelled, failed) while the model came
                raise errors.FailedPreconditionError(
                    f"job {job_id} ended {record.state.value} during the upload; it takes no model"
                )
            request = record.request
            ref = await asyncio.to_thread(
                self._repository.store,
                job_id=job_id,
                staged_weights=part,
                sha256=digest,
                metadata=metadata,
                strategy=request.strategy.name,
                symbols=request.symbols,
                timeframes=request.timeframes,
            )
        finally:
            # Stored, or known bad: the staging goes; cut off: it stays for a resume.
            await _to_the_end(_clean_up, session, part, staging, job_id if not keep else "")
        if self.on_stored is not None:
            self.on_stored(session.received - offset, time.monotonic() - started)
        _LOGGER.info(
            "job %s: model received (%d → %d bytes, %d in this call) and stored as %s",
            job_id,
            session.received,
            inflater.size,
            session.received - offset,
            ref.name,
        )
        return _receipt(job_id, ref, session.received, offset, duplicate=False)


def _clean_up(session: _Session, part: Path, staging: _Staging, discard: str) -> None:
    """After a call: close its files (fsync'd), delete the inflated temp file, and the staged
    stream of job ``discard`` if given."""
    session.close()
    part.unlink(missing_ok=True)
    if discard:
        staging.discard(discard)


async def _to_the_end(fn: Callable[..., None], *args: Any) -> None:
    """Run ``fn(*args)`` on a worker thread and wait until it is done, even if this task is
    cancelled meanwhile (the cancellation is re-raised after): file clean-up must not be cut
    off half-way, nor block the event loop."""
    future = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    cancelled = False
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            cancelled = True
    future.result()
    if cancelled:
        raise asyncio.CancelledError


def _receipt(
    job_id: str, ref: ModelRef, received: int, offset: int, *, duplicate: bool
) -> upload_pb2.UploadReceipt:
    return upload_pb2.UploadReceipt(
        job_id=job_id,
        model=serde.model_ref_to_proto(ref),
        received_bytes=received,
        duplicate=duplicate,
        resume_offset=offset,
    )
