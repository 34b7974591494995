"""Writing a downloaded model safely: temp files, sha256 check, rename.

A model downloads as two files in ``{dest}/{strategy}/{SYMBOLS}_{TFS}_v{N}/``:
``model.safetensors`` (the weights, their sha256 checked against the model's) and
``metadata.json`` (features, scaler, metrics, data source; from ``GetModel`` of the same
version, checked to describe the weights received). Both are written to temporary files in the
target directory and renamed only once both are complete and verified, so a failed or
interrupted download leaves neither half behind. Both are made 0644: a model is for the
services that load it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from shared import errors
from shared.jobs import ModelRef

WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "metadata.json"
FILE_MODE = 0o644


class Download:
    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._ref: ModelRef | None = None
        self._file: tempfile._TemporaryFileWrapper[bytes] | None = None
        self._temps: list[Path] = []
        self._sha = hashlib.sha256()
        self._size = 0

    def begin(self, ref: ModelRef) -> None:
        self._ref = ref
        target = self.target_dir()
        target.mkdir(parents=True, exist_ok=True)
        self._file = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed in verified/abandon
            dir=target, prefix=".download-", delete=False
        )
        self._temps.append(Path(self._file.name))

    def target_dir(self) -> Path:
        """``{dest}/{strategy}/{SYMBOLS}_{TFS}_v{N}``: the model's name, path parts sanitised."""
        if self._ref is None:
            raise errors.DataLossError("the download ended before the model header")
        parts = [p for p in self._ref.name.split("/") if p not in ("", ".", "..")]
        return self._directory.joinpath(*parts)

    def write(self, data: bytes) -> None:
        if self._file is None:
            raise errors.DataLossError("the server sent data before the model header")
        self._file.write(data)
        self._sha.update(data)
        self._size += len(data)

    def abandon(self) -> None:
        """Remove whatever this download wrote; nothing it renamed into place is touched."""
        if self._file is not None:
            self._file.close()
            self._file = None
        for temp in self._temps:
            temp.unlink(missing_ok=True)
        self._temps.clear()

    def verified(self) -> ModelRef:
        """Close the weights' temp file and check their size and sha256; the model's ref."""
        if self._file is None or self._ref is None:
            raise errors.DataLossError("the download ended before the model header")
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        if self._sha.hexdigest() != self._ref.sha256 or self._size != self._ref.size_bytes:
            raise errors.DataLossError(
                f"download of {self._ref.name} is corrupt: got {self._size} bytes with sha256 "
                f"{self._sha.hexdigest()[:12]}…, expected {self._ref.size_bytes} bytes, "
                f"{self._ref.sha256[:12]}…"
            )
        return self._ref

    def commit(self, described: ModelRef, metadata_json: str) -> Path:
        """Write ``metadata.json`` beside the verified weights and rename both into place;
        return the weights' path. ``described`` is the ref ``GetModel`` returned with the
        metadata: it must be the same weights."""
        ref = self._ref
        if ref is None or self._file is not None or not self._temps:
            raise RuntimeError("commit() comes after verified()")
        if described.sha256 != ref.sha256:
            raise errors.DataLossError(
                f"the metadata of {described.name} describes weights with sha256 "
                f"{described.sha256[:12]}…, not the {ref.sha256[:12]}… downloaded"
            )
        metadata = _parse_metadata(ref.name, metadata_json)
        target = self.target_dir()
        with tempfile.NamedTemporaryFile(
            "w", dir=target, prefix=".download-", suffix=".json", delete=False, encoding="utf-8"
        ) as f:
            self._temps.append(Path(f.name))
            json.dump(metadata, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        weights_temp, metadata_temp = self._temps
        for temp in (weights_temp, metadata_temp):
            temp.chmod(FILE_MODE)
        metadata_temp.replace(target / METADATA_FILE)
        weights_temp.replace(target / WEIGHTS_FILE)
        self._temps.clear()
        _fsync_dir(target)
        return target / WEIGHTS_FILE


def _parse_metadata(name: str, text: str) -> dict[str, Any]:
    if not text:
        raise errors.DataLossError(f"the orchestrator sent no metadata for {name}")
    try:
        metadata = json.loads(text)
    except ValueError as exc:
        raise errors.DataLossError(f"the metadata of {name} is not JSON: {exc}") from None
    if not isinstance(metadata, dict):
        raise errors.DataLossError(f"the metadata of {name} is not a JSON object")
    return metadata


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
