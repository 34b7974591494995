"""Bounded gzip inflation for uploads: a stream of gzip members inflated into a file, never past
the size its sender declared, so a gzip bomb stops at the cap."""

from __future__ import annotations

import hashlib
import os
import zlib
from pathlib import Path

from shared import errors


def compressed_limit(size_bytes: int) -> int:
    """The most compressed bytes a gzip of ``size_bytes`` needs (stored blocks cost ~0.01 %,
    each member ~20 bytes), with room for small members; more is not an honest stream."""
    return size_bytes + size_bytes // 8 + 1024 * 1024


class Inflater:
    """Inflate concatenated gzip members into a file, never past ``limit`` bytes.

    ``feed`` raises ``DataLossError`` for corrupt gzip or output past ``limit``; ``size`` and
    ``sha`` cover what was written; ``at_member_end`` is True between members (a whole stream
    ends there). Blocking file work: call it on a worker thread."""

    def __init__(self, out: Path, limit: int) -> None:
        self._file = out.open("wb")
        self._limit = limit
        self._d: zlib._Decompress | None = zlib.decompressobj(31)
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
