"""One call's model stream into the staging: resumed, inflated within limits, fsync'd, verified.

No gRPC and no protobuf. Every method but the constructor does blocking file work: call them on
a worker thread, one at a time, in order — ``start``, ``accept`` per chunk, ``finish`` — and
``end`` always, last. ``end`` may come from another thread while a step runs (the call was
cancelled): it stops a replay early, waits for the step, and later steps do nothing.

Resume. A session at ``resume_offset`` N needs the same stream (sha256, size and stream_id)
staged with at least N bytes, else FAILED_PRECONDITION naming the offset to use; with more, the
staged file is cut at N (the sender's stream is deterministic, so it re-sends identical bytes; a
racing old call may have staged a little more than the sender was told). The inflater is rebuilt
by inflating the staged prefix again — the same path whether or not the orchestrator restarted.
Only bytes that inflated cleanly are appended, so the staged file is always a valid prefix.

Durability. Appends are unbuffered writes, so they survive the process dying; both files are
fsync'd beside the stream every ``FSYNC_BYTES`` and when the session ends. After a power loss
the staged prefix may be shorter (the sender asks for its length) or end in garbage (the replay
or the sha256 fails, the staging is discarded, the sender starts over once). ``finish`` fsyncs
the inflated model, so a receipt is only sent for a model on disk.

Outcomes (``keep``: whether ``end`` leaves the staged prefix for a resume). Cut off, or the
stream ended early (DATA_LOSS, reason TRUNCATED): kept. Corrupt gzip, inflation past the declared
size, a compressed stream past ``compressed_limit``, a checksum or size mismatch (DATA_LOSS), a
file that is not a model (INVALID_ARGUMENT), or a whole stream — stored or not: discarded.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from dataclasses import dataclass
from io import FileIO
from pathlib import Path
from typing import Any

from shared import errors

from .inflate import Inflater, compressed_limit
from .upload_staging import Staging, UploadHeader, read_metadata

_LOGGER = logging.getLogger(__name__)
FSYNC_BYTES = 16 * 1024 * 1024
"""Staged bytes between background fsyncs (and one when every session ends)."""
REPLAY_BYTES = 1024 * 1024
"""Bytes read per step when a resumed session inflates its staged prefix again."""


@dataclass(frozen=True, kw_only=True)
class ReceivedModel:
    """A whole, verified model, inflated into ``path`` (fsync'd), ready to be stored. The file
    is deleted by ``Session.end`` unless it was moved away first."""

    path: Path
    sha256: str
    size_bytes: int
    metadata: dict[str, Any]
    received_bytes: int
    """The whole compressed stream's size."""


class Session:
    def __init__(self, staging: Staging, header: UploadHeader) -> None:
        """No file is touched until ``start``."""
        self.header = header
        self.staging = staging
        self.staged = staging.data(header.job_id)
        self.part = staging.root / f"{header.job_id}-{uuid.uuid4().hex}.part"
        self.limit = compressed_limit(header.size_bytes)
        self.received = header.resume_offset
        """Compressed bytes of the stream staged so far (the offset to resume at)."""
        self.keep = True
        self._inflater: Inflater | None = None
        self._out: FileIO | None = None
        self._lock = threading.Lock()
        self._ended = False
        self._unsynced = 0
        self._syncer: threading.Thread | None = None

    @property
    def inflated_bytes(self) -> int:
        return self._inflater.size if self._inflater is not None else 0

    def start(self) -> None:
        """Stage a new stream (offset 0: any staged before is replaced, stale stagings are
        swept), or take up the staged one at ``resume_offset``."""
        header = self.header
        offset = header.resume_offset
        with self._lock:
            if self._ended:
                return
            if offset == 0:
                self.staging.sweep()
                self.staging.begin(header)
            else:
                self._check_resume(offset)
            self._inflater = Inflater(self.part, header.size_bytes)
            self._out = self.staged.open("ab", buffering=0)
            if offset:
                self._replay(offset)

    def _check_resume(self, offset: int) -> None:
        job_id = self.header.job_id
        staged = self.staging.status(job_id)
        same = staged is not None and staged.record.same_stream(self.header)
        have = staged.received_bytes if staged is not None and same else 0
        if not same or offset > have:
            what = (
                f"{have} bytes of this stream are staged"
                if same
                else "no staged bytes of this stream (same sha256, size and stream_id)"
            )
            raise errors.FailedPreconditionError(
                f"cannot resume job {job_id} at byte {offset}: {what}; "
                f"expected resume_offset {have}",
                reason="RESUME_OFFSET_MISMATCH",
                field="resume_offset",
            )
        if offset < have:
            self.staging.truncate(job_id, offset)

    def _replay(self, length: int) -> None:
        with self.staged.open("rb") as f:
            done = 0
            while done < length and not self._ended:
                data = f.read(min(REPLAY_BYTES, length - done))
                if not data:
                    self.keep = False
                    raise errors.DataLossError(
                        f"the staged stream is shorter than {length} bytes", reason="STAGING_LOST"
                    )
                self._feed(data)
                done += len(data)

    def _feed(self, data: bytes) -> None:
        try:
            self._files()[0].feed(data)
        except errors.DataLossError:
            self.keep = False
            raise

    def _files(self) -> tuple[Inflater, FileIO]:
        if self._inflater is None or self._out is None:
            raise RuntimeError("the session was not started")
        return self._inflater, self._out

    def accept(self, data: bytes) -> None:
        """Inflate ``data`` and stage it; DATA_LOSS before a bad byte is staged."""
        with self._lock:
            if self._ended:
                return
            out = self._files()[1]
            if self.received + len(data) > self.limit:
                self.keep = False
                raise errors.DataLossError(
                    f"the compressed stream passes {self.limit} bytes, more than any gzip of "
                    "the declared size needs"
                )
            self._feed(data)
            view = memoryview(data)
            while view:
                view = view[out.write(view) :]
            self.received += len(data)
            self._unsynced += len(data)
            if self._unsynced >= FSYNC_BYTES and not (self._syncer and self._syncer.is_alive()):
                # Flush both files to disk beside the stream, not in its way: the disk works
                # while the next chunks inflate, and the final fsync finds little left to do.
                fds = (out.fileno(), self._files()[0].fileno())
                self._syncer = threading.Thread(target=_fsync_all, args=fds, daemon=True)
                self._syncer.start()
                self._unsynced = 0

    def finish(self) -> ReceivedModel:
        """The stream has ended: the model, whole, durable and checked, or the error."""
        header = self.header
        with self._lock:
            if self._ended:
                raise RuntimeError("the session has ended")
            inflater = self._files()[0]
            if not inflater.at_member_end or inflater.size != header.size_bytes:
                where = "inside a gzip member" if not inflater.at_member_end else "between members"
                raise errors.DataLossError(
                    f"the stream ended {where} after {self.received} compressed bytes "
                    f"({inflater.size} of the declared {header.size_bytes} bytes): truncated; "
                    f"resume with resume_offset {self.received}",
                    reason="TRUNCATED",
                )
            self.keep = False
            if header.compressed_size_bytes and self.received != header.compressed_size_bytes:
                raise errors.DataLossError(
                    f"received {self.received} compressed bytes, the header declared "
                    f"{header.compressed_size_bytes}",
                    reason="SIZE_MISMATCH",
                )
            self._close_files(sync_inflated=True)
            digest = inflater.sha.hexdigest()
            if digest != header.sha256:
                raise errors.DataLossError(
                    f"sha256 mismatch: the bytes hash to {digest}, the header says {header.sha256}",
                    reason="CHECKSUM_MISMATCH",
                    field="sha256",
                )
        return ReceivedModel(
            path=self.part,
            sha256=digest,
            size_bytes=inflater.size,
            metadata=read_metadata(self.part),
            received_bytes=self.received,
        )

    def end(self) -> None:
        """Close the files (fsync'd), delete the inflated file, and the staging unless
        ``keep``. From any thread; waits for the step in progress; safe to call twice."""
        self._ended = True
        with self._lock:
            self._close_files(sync_inflated=False)
            self.part.unlink(missing_ok=True)
            if not self.keep:
                self.staging.discard(self.header.job_id)

    def _close_files(self, *, sync_inflated: bool) -> None:
        if self._syncer is not None:  # never close a file another thread is syncing
            self._syncer.join()
            self._syncer = None
        if self._out is not None and not self._out.closed:
            os.fsync(self._out.fileno())
            self._out.close()
        if self._inflater is not None:
            self._inflater.close(sync=sync_inflated)


def _fsync_all(*fds: int) -> None:
    for fd in fds:
        try:
            os.fsync(fd)
        except OSError as exc:
            _LOGGER.warning("background fsync failed: %s", exc)
