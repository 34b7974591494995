"""The request stream of ``UploadDataset``: a header, then per file its header and its bytes.

Each file is read twice: once to learn its size and sha256 (the file header must carry them
before any byte), once to send it gzip-compressed in chunks, hashing again as it goes. A file
that changes between the two reads ends the stream early (the server then refuses the upload
and keeps nothing) and the client reports which file changed.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from shared.rpc.v1 import datasets_pb2 as dpb

CHUNK_BYTES = 512 * 1024
"""Compressed bytes per ``data`` message (the transfer rule: 256 KiB to 1 MiB)."""
READ_BYTES = 1024 * 1024
GZIP_LEVEL = 6
"""CSV text compresses ~4-8x at this level, at well over the network's pace on one core."""

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,63}")
_SUFFIXES = (".csv", ".parquet")


@dataclass(frozen=True)
class UploadFile:
    path: Path
    size: int
    sha256: str


def check_name(name: str) -> str:
    """``name`` if it can name a dataset, else ``ValueError`` saying what a name may hold."""
    if not (name.isascii() and _NAME_RE.fullmatch(name)):
        raise ValueError(
            f"{name!r} cannot name a dataset: use 1-64 ASCII letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def default_name(paths: Sequence[Path]) -> str:
    """A dataset name from the files: the first file's stem (``EURUSD.csv`` → ``EURUSD``)."""
    stem = re.sub(r"[^A-Za-z0-9._\-]", "-", paths[0].stem).lstrip("._-")[:64]
    return check_name(stem or "dataset")


def prepare(paths: Sequence[str | Path]) -> list[UploadFile]:
    """Check the files an upload will send and hash them; ``ValueError`` names the bad one."""
    if not paths:
        raise ValueError("name at least one CSV or Parquet file to upload")
    files: list[UploadFile] = []
    seen: dict[str, Path] = {}
    for given in paths:
        path = Path(given)
        if not path.name.lower().endswith(_SUFFIXES):
            raise ValueError(f"{path}: not a .csv or .parquet file")
        if not path.is_file():
            raise ValueError(f"{path}: no such file")
        if path.name in seen:
            raise ValueError(
                f"{path} and {seen[path.name]} have the same name; a dataset holds one file "
                "per name"
            )
        seen[path.name] = path
        size, sha = _hash(path)
        files.append(UploadFile(path=path, size=size, sha256=sha))
    return files


def _hash(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while block := f.read(READ_BYTES):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


class UploadStream:
    """Iterate it for the ``DatasetChunk``s of one upload; ``problem`` says why it stopped
    short (a file that changed while it was sent), else stays empty."""

    def __init__(self, name: str, files: Sequence[UploadFile], chunk_bytes: int = CHUNK_BYTES):
        self.name = check_name(name)
        self.files = list(files)
        self.chunk_bytes = chunk_bytes
        self.problem = ""

    def __iter__(self) -> Iterator[dpb.DatasetChunk]:
        yield dpb.DatasetChunk(header=dpb.DatasetUploadHeader(name=self.name))
        for file in self.files:
            yield dpb.DatasetChunk(
                file=dpb.DatasetFileHeader(
                    filename=file.path.name,
                    size_bytes=file.size,
                    sha256=file.sha256,
                    compression="gzip",
                )
            )
            try:
                for data in self._compressed(file):
                    yield dpb.DatasetChunk(data=data)
            except OSError as exc:
                self.problem = f"cannot read {file.path}: {exc}"
            if self.problem:
                return

    def _compressed(self, file: UploadFile) -> Iterator[bytes]:
        """The file as one gzip stream, in chunks of ``chunk_bytes``; stops early (setting
        ``problem``) if the bytes read differ from the ones hashed."""
        compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        digest, size, pending = hashlib.sha256(), 0, bytearray()
        with file.path.open("rb") as f:
            while block := f.read(READ_BYTES):
                digest.update(block)
                size += len(block)
                if size > file.size:
                    break
                pending += compressor.compress(block)
                while len(pending) >= self.chunk_bytes:
                    yield bytes(pending[: self.chunk_bytes])
                    del pending[: self.chunk_bytes]
        if size != file.size or digest.hexdigest() != file.sha256:
            self.problem = f"{file.path} changed while it was being uploaded; upload it again"
            return
        pending += compressor.flush()
        while pending:
            yield bytes(pending[: self.chunk_bytes])
            del pending[: self.chunk_bytes]
