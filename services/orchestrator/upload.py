"""The ``ModelUpload`` service: trainers send finished models here; stored only if sound.

This is the gRPC edge: messages become ``upload_staging.UploadHeader`` and byte chunks, the
per-job token is checked, errors become status codes (``shared.rpc.errors``), and every file
step runs on a worker thread in ``upload_session.Session`` (staging, inflation, limits, fsync,
sha256, safetensors metadata). The job id is checked (``shared.ids.check_job_id``) before
anything else, so it is always one plain file name; then the token, then the header's fields.

Nothing is stored until every check passes: the job exists and is not over, the token matches,
the declared size is within the cap, the gzip stream inflates to exactly that size, its sha256
matches, and the file opens as safetensors with trainwire metadata that reads the way every
reader reads it. ``GetUploadStatus`` reports the compressed bytes staged, and a sender that was
cut off continues with ``resume_offset`` = that length (``upload_session`` says what is kept
and what is discarded on each failure).

One call per job writes at a time: a new call for a job pre-empts the one still running (its
client has given up — the sender is the only holder of the token and retries only after a
failure), which ends ABORTED. ``ModelUploadServicer.discard`` drops a job's staging at once.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import grpc

from shared import errors
from shared.ids import check_job_id
from shared.job_requests import OptimizationRequest
from shared.jobs import ModelRef
from shared.rpc import serde, serde_results
from shared.rpc.errors import rpc_method
from shared.rpc.v1 import progress_pb2, upload_pb2, upload_pb2_grpc
from shared.spec import TrainingRequest

from .configurations import ConfigurationRepository
from .inflate import Inflater as _Inflater
from .inflate import compressed_limit
from .jobs import JobBook, JobRecord
from .repository import ModelRepository
from .upload_session import Session
from .upload_staging import STAGING_TTL_S, Staging, UploadHeader, read_metadata

__all__ = [
    "STAGING_TTL_S",
    "ModelUploadServicer",
    "_Inflater",
    "_to_the_end",
    "compressed_limit",
    "read_metadata",
]
"""``_Inflater``, ``_to_the_end`` and ``compressed_limit`` are also used by dataset uploads."""

_LOGGER = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]


def header_from_proto(header: upload_pb2.UploadHeader) -> UploadHeader:
    return UploadHeader(
        job_id=header.job_id,
        sha256=header.sha256,
        size_bytes=header.size_bytes,
        stream_id=header.stream_id,
        compression=header.compression,
        resume_offset=header.resume_offset,
        compressed_size_bytes=header.compressed_size_bytes,
    )


class ModelUploadServicer(upload_pb2_grpc.ModelUploadServicer):
    def __init__(
        self,
        book: JobBook,
        repository: ModelRepository,
        *,
        staging: Path,
        max_bytes: int,
        staging_ttl_s: float = STAGING_TTL_S,
        configurations: ConfigurationRepository | None = None,
    ) -> None:
        self._book = book
        self._repository = repository
        self._configurations = configurations
        self._staging = Staging(staging, staging_ttl_s)
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
        staged = await asyncio.to_thread(self._staging.status, request.job_id)
        if staged is not None:
            status.received_bytes = staged.received_bytes
            status.sha256 = staged.record.sha256
            status.stream_id = staged.record.stream_id
        return status

    @rpc_method
    async def UploadConfiguration(
        self, request: upload_pb2.ConfigurationUpload, context: Context
    ) -> progress_pb2.ConfigurationRef:
        if self._configurations is None:
            raise errors.FailedPreconditionError("this orchestrator stores no configurations")
        self._authorise(request.job_id, request.token)
        record = self._book.get(request.job_id)
        job = record.request
        if not isinstance(job, OptimizationRequest):
            raise errors.FailedPreconditionError(
                f"job {request.job_id} is a {record.kind} job; only an optimization job "
                "stores a configuration"
            )
        if self._configurations.by_job(request.job_id) is None and record.state.terminal:
            raise errors.FailedPreconditionError(
                f"job {request.job_id} is {record.state.value}; it takes no configuration"
            )
        ref = await asyncio.to_thread(
            self._configurations.store,
            request.job_id,
            request.configuration_json,
            request.sha256,
            strategy=job.strategy,
            symbols=job.symbols,
            timeframes=job.timeframes,
        )
        return serde_results.configuration_to_proto(ref)

    @rpc_method
    async def UploadModel(
        self, request_iterator: AsyncIterator[upload_pb2.ModelChunk], context: Context
    ) -> upload_pb2.UploadReceipt:
        first = await anext(aiter(request_iterator), None)
        if first is None or not first.HasField("header"):
            raise errors.InvalidArgumentError(
                "the first message must be the upload header", field="header"
            )
        self._authorise(first.header.job_id, first.header.upload_token)
        header = header_from_proto(first.header)
        header.check(self._max_bytes)
        record = self._book.get(header.job_id)
        _training_request(record)
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
        header: UploadHeader,
        request_iterator: AsyncIterator[upload_pb2.ModelChunk],
        context: Context,
    ) -> upload_pb2.UploadReceipt:
        job_id = header.job_id
        offset = header.resume_offset
        started = time.monotonic()
        session = Session(self._staging, header)
        try:
            await asyncio.to_thread(session.start)
            async for chunk in request_iterator:
                if chunk.HasField("header"):
                    raise errors.InvalidArgumentError(
                        "only the first message may be a header", field="header"
                    )
                if chunk.data:
                    await asyncio.to_thread(session.accept, chunk.data)
            if context.cancelled():  # the sender went away; its bytes stay staged
                _LOGGER.info(
                    "job %s: upload interrupted after %d compressed bytes; kept for a resume",
                    job_id,
                    session.received,
                )
                raise asyncio.CancelledError
            model = await asyncio.to_thread(session.finish)
            record = self._book.get(job_id)
            if record.state.terminal:  # it ended (cancelled, failed) while the model came
                raise errors.FailedPreconditionError(
                    f"job {job_id} ended {record.state.value} during the upload; it takes no model"
                )
            request = _training_request(record)
            ref = await asyncio.to_thread(
                self._repository.store,
                job_id=job_id,
                staged_weights=model.path,
                sha256=model.sha256,
                metadata=model.metadata,
                strategy=request.strategy.name,
                symbols=request.symbols,
                timeframes=request.timeframes,
            )
        finally:
            # Stored, or known bad: the staging goes; cut off: it stays for a resume.
            await _to_the_end(session.end)
        if self.on_stored is not None:
            self.on_stored(model.received_bytes - offset, time.monotonic() - started)
        _LOGGER.info(
            "job %s: model received (%d → %d bytes, %d in this call) and stored as %s",
            job_id,
            model.received_bytes,
            model.size_bytes,
            model.received_bytes - offset,
            ref.name,
        )
        return _receipt(job_id, ref, model.received_bytes, offset, duplicate=False)


def _training_request(record: JobRecord) -> TrainingRequest:
    """The job's training request: only a training job takes a model."""
    if not isinstance(record.request, TrainingRequest):
        raise errors.FailedPreconditionError(
            f"job {record.job_id} is a {record.kind} job; it takes no model (an optimization "
            "stores its configuration with UploadConfiguration)"
        )
    return record.request


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
