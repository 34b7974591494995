"""The staging directory of model uploads, and the checks a model passes before it is stored.

No gRPC and no protobuf: the servicer (``upload.py``) turns its messages into ``UploadHeader``
and calls in here, on a worker thread — every method of ``Staging`` does blocking file work, and
several may run at once. One call's stream is an ``upload_session.Session``.

Layout. Per job, ``<job>.gz`` holds the *compressed* stream received so far and ``<job>.json``
its ``StagedRecord`` (sha256, size, stream_id; never the token), written atomically (temp file,
fsync, rename, directory fsync). The job id is checked (``shared.ids.check_job_id``) before a
path is built from it, so it is always one plain file name. Staged streams untouched for
``ttl_s`` are swept away; ``discard`` drops a job's at once (a job that ended without a model).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from safetensors import safe_open

from shared import errors
from shared.artifacts.metadata import METADATA_KEY, ArtifactError, read_artifact_metadata
from shared.ids import check_job_id

_LOGGER = logging.getLogger(__name__)
_SHA256 = re.compile(r"[0-9a-f]{64}")
STAGING_TTL_S = 24 * 3600.0
"""A staged, unfinished upload untouched this long is deleted."""


@dataclass(frozen=True, kw_only=True)
class UploadHeader:
    """What a sender declares before its stream (the token stays with the servicer)."""

    job_id: str
    sha256: str
    """64 lowercase hex digits: the inflated file's sha256."""
    size_bytes: int
    """The inflated file's size."""
    stream_id: str = ""
    """Names the exact compressed byte stream, so a resume continues the same one."""
    compression: str = "gzip"
    resume_offset: int = 0
    """Compressed bytes already staged that this stream continues after."""
    compressed_size_bytes: int = 0
    """The whole compressed stream's size when the sender knows it; 0 = not declared."""

    def check(self, max_bytes: int) -> None:
        """Raise the error that says which field to change, if any is unusable."""
        check_job_id(self.job_id)
        if not _SHA256.fullmatch(self.sha256):
            raise errors.InvalidArgumentError(
                "must be the 64 lowercase hex digits of the file's sha256", field="sha256"
            )
        if self.compression != "gzip":
            raise errors.InvalidArgumentError(
                f"unsupported compression {self.compression!r}; use 'gzip'", field="compression"
            )
        if self.size_bytes <= 0:
            raise errors.InvalidArgumentError("must be > 0", field="size_bytes")
        if self.size_bytes > max_bytes:
            raise errors.ResourceExhaustedError(
                f"the model is {self.size_bytes} bytes; this orchestrator accepts at most "
                f"{max_bytes}",
                field="size_bytes",
            )
        if self.resume_offset < 0:
            raise errors.InvalidArgumentError("must be >= 0", field="resume_offset")


@dataclass(frozen=True, kw_only=True)
class StagedRecord:
    """The record beside a staged stream: which stream it is."""

    job_id: str
    sha256: str
    size_bytes: int
    compression: str
    stream_id: str
    started_at: float

    @classmethod
    def of(cls, header: UploadHeader) -> StagedRecord:
        return cls(
            job_id=header.job_id,
            sha256=header.sha256,
            size_bytes=header.size_bytes,
            compression=header.compression,
            stream_id=header.stream_id,
            started_at=time.time(),
        )

    @classmethod
    def from_json(cls, loaded: object) -> StagedRecord | None:
        """The record read back, or None if it is not one (a torn or foreign file)."""
        if not isinstance(loaded, dict):
            return None
        try:
            return cls(
                job_id=str(loaded["job_id"]),
                sha256=str(loaded["sha256"]),
                size_bytes=int(loaded["size_bytes"]),
                compression=str(loaded.get("compression", "gzip")),
                stream_id=str(loaded.get("stream_id", "")),
                started_at=float(loaded.get("started_at", 0.0)),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def same_stream(self, header: UploadHeader) -> bool:
        return (self.sha256, self.size_bytes, self.stream_id) == (
            header.sha256,
            header.size_bytes,
            header.stream_id,
        )


@dataclass(frozen=True)
class StagedUpload:
    record: StagedRecord
    received_bytes: int
    """Compressed bytes staged: the offset a sender resumes at."""


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


class Staging:
    """The staged streams of one directory.

    Its methods may run on several threads at once: a lock keeps each one whole (a ``discard``
    never lands between the two files of a ``begin``)."""

    def __init__(self, root: Path, ttl_s: float = STAGING_TTL_S) -> None:
        self.root = root
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)
        # Inflated files and record temp files of sessions a restart cut off.
        for leftover in (*root.glob("*.part"), *root.glob(".*.tmp")):
            leftover.unlink(missing_ok=True)
        self.sweep()

    def data(self, job_id: str) -> Path:
        return self.root / f"{check_job_id(job_id)}.gz"

    def _record_path(self, job_id: str) -> Path:
        return self.root / f"{check_job_id(job_id)}.json"

    def status(self, job_id: str) -> StagedUpload | None:
        """The job's staged stream: its record and length; None if nothing is staged."""
        try:
            record = StagedRecord.from_json(json.loads(self._record_path(job_id).read_text()))
        except (OSError, ValueError):
            return None
        if record is None:
            return None
        try:
            received = self.data(job_id).stat().st_size
        except FileNotFoundError:
            received = 0
        return StagedUpload(record, received)

    def begin(self, header: UploadHeader) -> None:
        """Stage a new, empty stream for ``header``'s job, replacing any staged before."""
        job_id = header.job_id
        with self._lock:
            self._discard(job_id)
            tmp = self.root / f".{check_job_id(job_id)}-{uuid.uuid4().hex}.tmp"
            with tmp.open("wb") as f:
                f.write(json.dumps(asdict(StagedRecord.of(header)), sort_keys=True).encode())
                f.flush()
                os.fsync(f.fileno())
            self.data(job_id).touch()
            os.replace(tmp, self._record_path(job_id))
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
        """Delete the job's staged stream and record, if any; ``InvalidArgumentError`` for a
        malformed id."""
        with self._lock:
            self._discard(job_id)

    def _discard(self, job_id: str) -> None:
        self._record_path(job_id).unlink(missing_ok=True)
        self.data(job_id).unlink(missing_ok=True)

    def sweep(self) -> None:
        """Delete staged streams untouched for ``ttl_s``, and records without a stream."""
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
