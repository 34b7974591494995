"""Writing a downloaded model safely: temp file, sha256 check, rename."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from shared import errors
from shared.jobs import ModelRef


class Download:
    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._ref: ModelRef | None = None
        self._file: tempfile._TemporaryFileWrapper[bytes] | None = None
        self._sha = hashlib.sha256()
        self._size = 0

    def begin(self, ref: ModelRef) -> None:
        self._ref = ref
        target = self._target()
        target.parent.mkdir(parents=True, exist_ok=True)
        self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in finish/abandon
            dir=target.parent, prefix=".download-", delete=False
        )

    def _target(self) -> Path:
        assert self._ref is not None
        parts = [p for p in self._ref.name.split("/") if p not in ("", ".", "..")]
        return self._directory.joinpath(*parts, "model.safetensors")

    def write(self, data: bytes) -> None:
        if self._file is None:
            raise errors.DataLossError("the server sent data before the model header")
        self._file.write(data)
        self._sha.update(data)
        self._size += len(data)

    def abandon(self) -> None:
        if self._file is not None:
            self._file.close()
            Path(self._file.name).unlink(missing_ok=True)
            self._file = None

    def finish(self) -> Path:
        if self._file is None or self._ref is None:
            raise errors.DataLossError("the download ended before the model header")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        temp = Path(self._file.name)
        self._file = None
        if self._sha.hexdigest() != self._ref.sha256 or self._size != self._ref.size_bytes:
            temp.unlink(missing_ok=True)
            raise errors.DataLossError(
                f"download of {self._ref.name} is corrupt: got {self._size} bytes with sha256 "
                f"{self._sha.hexdigest()[:12]}…, expected {self._ref.size_bytes} bytes, "
                f"{self._ref.sha256[:12]}…"
            )
        target = self._target()
        temp.replace(target)
        return target
