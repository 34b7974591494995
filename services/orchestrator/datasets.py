"""Datasets on the orchestrator: OHLCV files uploaded once, stored by content, named by version.

Layout under ``root`` (``state_dir/datasets``)::

    blobs/{sha256}                   one file's bytes, named by their sha256 (shared by every
                                     dataset and version that holds the same bytes)
    names/{name}/{manifest}.json     one version of dataset ``name``: its files, with the facts
                                     read from each (symbol, timeframe, rows, first and last bar)
    names/{name}/latest              the newest version's manifest sha256
    tmp/{upload}/{filename}          files of an upload in progress (emptied at start)

A version is named by the sha256 of its *manifest text*: one line ``{sha256}  {filename}\\n``
per file, sorted by filename (the format ``sha256sum`` prints and checks), so the same files
under the same names are always the same version, whoever uploads them and when.

Uploads. ``receive_dataset`` takes a ``DatasetUploadHeader`` and then, per file, a
``DatasetFileHeader`` followed by its bytes (raw, or gzip: one or more members). Each file is
written to ``tmp/`` as it arrives, on a worker thread, never past its declared size (a gzip
stream is inflated with that bound, so a gzip bomb stops at the declared size); its size and
sha256 must match the header. Once every file is in, each is read as OHLCV bars; only then are
the files renamed into ``blobs/`` and the manifest written (temp file, fsync, rename). A refused,
broken or abandoned upload leaves nothing behind. Names are checked before anything touches the
disk: a dataset name is 1-64 letters, digits, '.', '_' or '-' (not only dots); a filename is
one path component ``[A-Za-z0-9][A-Za-z0-9._-]{0,127}`` ending in ``.csv`` or ``.parquet``,
``{SYMBOL}_{timeframe}.csv`` or ``{SYMBOL}.csv`` (the timeframe is then read from the bars'
spacing), each used once per upload and each (symbol, timeframe) once per dataset. Each file is
read by the loader jobs use (``shared.pipeline.market.read_market_file``): the rows, first and
last bar recorded are those a job gets (naive timestamps taken as UTC here; a job may name
another ``data.timezone``).

Deleting a dataset removes every version; a blob no version of any dataset lists any more is
removed with it. Every method of ``DatasetStore`` does blocking file work: call it on a worker
thread. One lock keeps a commit and a delete from interleaving.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import grpc

from shared import errors
from shared.datasets import (
    LATEST,
    MANIFEST_FORMAT,
    DatasetFile,
    DatasetInfo,
    check_dataset_name,
    check_sha256,
    is_sha256,
    manifest_sha256,
    split_filename,
)
from shared.pipeline.market import DataError, read_market_file
from shared.rpc.v1 import datasets_pb2 as dpb
from shared.spec import DEFAULT_LIMITS, shown

from .upload import _Inflater, _to_the_end, compressed_limit

_LOGGER = logging.getLogger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]

DEFAULT_MAX_FILE_BYTES = 2 * 1024**3
DEFAULT_MAX_DATASET_BYTES = 8 * 1024**3
DEFAULT_MAX_FILES = 256


# -- reading a file as bars ----------------------------------------------------------------------


@dataclass(frozen=True)
class FileFacts:
    symbol: str
    timeframe: str
    rows: int
    start: float
    end: float


def inspect_market_file(
    path: Path, *, max_bars: int = DEFAULT_LIMITS.max_bars, timezone: str = ""
) -> FileFacts:
    """Read ``path`` (named as in the dataset) as OHLCV bars with the loader a job uses:
    ``DataError`` saying what is wrong, else the symbol, timeframe, rows and first and last bar
    (after cleaning: rows a job would drop are not counted)."""
    symbol, timeframe = split_filename(path.name)
    loaded = read_market_file(
        path, symbol=symbol, timeframe=timeframe or None, timezone=timezone, max_bars=max_bars
    )
    frame = loaded.frame
    if len(frame) < 2:
        raise DataError(symbol, loaded.timeframe, f"{path.name} holds {len(frame)} usable bar(s)")
    for issue in loaded.issues:
        _LOGGER.info("dataset upload: %s", issue.message)
    return FileFacts(
        symbol=symbol,
        timeframe=loaded.timeframe,
        rows=len(frame),
        start=frame.index[0].timestamp(),
        end=frame.index[-1].timestamp(),
    )


# -- the store -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StagedFile:
    """A received file in ``tmp/``, checked against its header, waiting for the commit."""

    filename: str
    path: Path
    sha256: str
    size_bytes: int
    facts: FileFacts | None = None


class DatasetStore:
    def __init__(
        self,
        root: Path,
        *,
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
        max_dataset_bytes: int = DEFAULT_MAX_DATASET_BYTES,
        max_files: int = DEFAULT_MAX_FILES,
        max_bars: int = DEFAULT_LIMITS.max_bars,
    ) -> None:
        self.root = root
        self.max_file_bytes = max_file_bytes
        self.max_dataset_bytes = max_dataset_bytes
        self.max_files = max_files
        self.max_bars = max_bars
        self._blobs = root / "blobs"
        self._names = root / "names"
        self._tmp = root / "tmp"
        for folder in (root, self._blobs, self._names, self._tmp):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock = threading.Lock()
        for leftover in self._tmp.iterdir():  # uploads a stop or a crash cut off
            _remove(leftover)

    # -- reading -------------------------------------------------------------------------------

    def blob(self, sha256: str, field: str = "sha256") -> Path:
        """The stored bytes with this sha256; NOT_FOUND naming ``field`` if none."""
        path = self._blobs / check_sha256(sha256, field)
        if not path.is_file():
            raise errors.NotFoundError(
                f"no dataset file with sha256 {sha256}; GetDataset lists a version's files",
                field=field,
            )
        return path

    def get(self, ref: str, field: str = "name") -> DatasetInfo:
        """``name`` (its newest version) or ``name@sha256`` (that version)."""
        name, at, sha = ref.partition("@")
        check_dataset_name(name, field)
        if at:
            check_sha256(sha, field)
        info = self._version(name, sha or self._latest(name))
        if info is None:
            what = f"no version {sha} of dataset {name!r}" if sha else f"no dataset {name!r}"
            raise errors.NotFoundError(f"{what}; see ListDatasets", field=field)
        return info

    def has_version(self, name: str, sha256: str) -> bool:
        try:
            return self._version(name, sha256) is not None
        except errors.TrainwireError:
            return False

    def listing(self) -> list[DatasetInfo]:
        """The newest version of every dataset, by name."""
        found = []
        for folder in sorted(self._names.iterdir()):
            info = self._version(folder.name, self._latest(folder.name))
            if info is not None:
                found.append(info)
        return found

    def _latest(self, name: str) -> str:
        try:
            sha = (self._names / name / LATEST).read_text().strip()
        except OSError:
            return ""
        return sha if is_sha256(sha) else ""

    def _version(self, name: str, sha256: str) -> DatasetInfo | None:
        if not sha256:
            return None
        try:
            document = json.loads((self._names / name / f"{sha256}.json").read_text())
            return _from_json(document)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            _LOGGER.warning("unreadable manifest of dataset %s@%s: %s", name, sha256, exc)
            return None

    # -- writing -------------------------------------------------------------------------------

    def upload_dir(self) -> Path:
        """A new folder in ``tmp/`` for one upload's files, under their dataset filenames."""
        folder = self._tmp / uuid.uuid4().hex
        folder.mkdir(mode=0o700)
        return folder

    def commit(self, name: str, files: list[StagedFile]) -> DatasetInfo:
        """Move the staged files into ``blobs/`` and make them version of ``name`` its newest."""
        check_dataset_name(name, "header.name")
        sha = manifest_sha256((f.filename, f.sha256) for f in files)
        with self._lock:
            for staged in files:
                blob = self._blobs / staged.sha256
                if blob.is_file():  # the same bytes, already stored (verified by the sha256)
                    staged.path.unlink(missing_ok=True)
                else:
                    os.replace(staged.path, blob)
            _fsync_dir(self._blobs)
            folder = self._names / name
            folder.mkdir(mode=0o700, exist_ok=True)
            info = self._version(name, sha)
            if info is None:
                info = DatasetInfo(
                    name=name,
                    sha256=sha,
                    created_at=time.time(),
                    files=tuple(_dataset_file(f) for f in sorted(files, key=lambda f: f.filename)),
                )
                _write_atomic(folder / f"{sha}.json", json.dumps(_to_json(info), indent=2))
            _write_atomic(folder / LATEST, sha + "\n")
            _fsync_dir(folder)
        _LOGGER.info(
            "stored dataset %s (%d file(s), %d bytes)", info.ref, len(info.files), info.size_bytes
        )
        return info

    def delete(self, name: str) -> DatasetInfo:
        """Delete every version of ``name``, and the blobs no dataset lists any more."""
        with self._lock:
            info = self.get(name)
            folder = self._names / name
            gone = self._tmp / f"deleted-{uuid.uuid4().hex}"
            os.rename(folder, gone)  # one step: readers see every version or none
            _fsync_dir(self._names)
            shutil.rmtree(gone, ignore_errors=True)
            removed = self._collect_garbage()
        _LOGGER.info("deleted dataset %s (%d unreferenced file(s) removed)", name, removed)
        return info

    def _collect_garbage(self) -> int:
        referenced: set[str] = set()
        for manifest in self._names.glob("*/*.json"):
            try:
                document = json.loads(manifest.read_text())
                referenced.update(str(f["sha256"]) for f in document["files"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                # An unreadable manifest may list anything: keep every blob this time.
                _LOGGER.warning("unreadable manifest %s (%s): no file removed", manifest, exc)
                return 0
        removed = 0
        for blob in self._blobs.iterdir():
            if blob.name not in referenced:
                blob.unlink(missing_ok=True)
                removed += 1
        return removed


def _dataset_file(staged: StagedFile) -> DatasetFile:
    facts = staged.facts
    assert facts is not None  # every staged file is inspected before the commit
    return DatasetFile(
        filename=staged.filename,
        symbol=facts.symbol,
        timeframe=facts.timeframe,
        sha256=staged.sha256,
        size_bytes=staged.size_bytes,
        rows=facts.rows,
        start=facts.start,
        end=facts.end,
    )


def _to_json(info: DatasetInfo) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "name": info.name,
        "sha256": info.sha256,
        "created_at": info.created_at,
        "files": [
            {
                "filename": f.filename,
                "symbol": f.symbol,
                "timeframe": f.timeframe,
                "sha256": f.sha256,
                "size_bytes": f.size_bytes,
                "rows": f.rows,
                "start": f.start,
                "end": f.end,
            }
            for f in info.files
        ],
    }


def _from_json(document: dict[str, Any]) -> DatasetInfo:
    return DatasetInfo(
        name=str(document["name"]),
        sha256=str(document["sha256"]),
        created_at=float(document["created_at"]),
        files=tuple(
            DatasetFile(
                filename=str(f["filename"]),
                symbol=str(f["symbol"]),
                timeframe=str(f["timeframe"]),
                sha256=str(f["sha256"]),
                size_bytes=int(f["size_bytes"]),
                rows=int(f["rows"]),
                start=float(f["start"]),
                end=float(f["end"]),
            )
            for f in document["files"]
        ),
    )


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with tmp.open("w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


# -- receiving an upload -------------------------------------------------------------------------


class _RawWriter:
    """Write a raw file, never past ``limit`` bytes; same interface as the gzip inflater."""

    def __init__(self, out: Path, limit: int) -> None:
        self._file: BinaryIO = out.open("wb")
        self._limit = limit
        self.size = 0
        self.sha = hashlib.sha256()
        self.at_member_end = True

    def feed(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self._limit:
            raise errors.DataLossError(f"the bytes pass the declared {self._limit}")
        self.sha.update(data)
        self._file.write(data)

    def close(self, *, sync: bool = False) -> None:
        if not self._file.closed:
            self._file.flush()
            if sync:
                os.fsync(self._file.fileno())
            self._file.close()


class _Incoming:
    """One file of an upload as it arrives (its methods do file work: call them on a thread)."""

    def __init__(self, header: dpb.DatasetFileHeader, path: Path) -> None:
        self.header = header
        self.path = path
        self.gzip = header.compression == "gzip"
        self.received = 0
        self.limit = compressed_limit(header.size_bytes) if self.gzip else header.size_bytes
        self.writer: _Inflater | _RawWriter = (
            _Inflater(path, header.size_bytes) if self.gzip else _RawWriter(path, header.size_bytes)
        )

    @property
    def name(self) -> str:
        return self.header.filename

    def accept(self, data: bytes) -> None:
        if self.gzip and self.received + len(data) > self.limit:
            raise errors.DataLossError(
                f"{self.name}: the gzip stream passes {self.limit} bytes, more than any gzip of "
                f"the declared {self.header.size_bytes} bytes needs",
                field="file.size_bytes",
            )
        self.received += len(data)
        try:
            self.writer.feed(data)
        except errors.DataLossError as exc:
            if self.writer.size <= self.header.size_bytes:  # corrupt gzip
                raise errors.DataLossError(f"{self.name}: {exc.message}", field="data") from None
            what = "the gzip stream inflates" if self.gzip else "the file's bytes go on"
            raise errors.DataLossError(
                f"{self.name}: {what} past the declared {self.header.size_bytes} bytes "
                "(size_bytes); refused, nothing was stored",
                field="file.size_bytes",
                reason="SIZE_MISMATCH",
            ) from None

    def finish(self) -> StagedFile:
        """Check the whole file against its header; close it, durable, for the commit."""
        writer = self.writer
        size = self.header.size_bytes
        complete = writer.at_member_end and writer.size == size
        writer.close(sync=complete)
        if not complete:
            inside = " (inside a gzip member)" if not writer.at_member_end else ""
            raise errors.DataLossError(
                f"{self.name}: the stream ended after {writer.size} of the declared {size} "
                f"bytes{inside}: truncated; upload the file again",
                reason="TRUNCATED",
                field="data",
            )
        digest = writer.sha.hexdigest()
        if digest != self.header.sha256:
            raise errors.DataLossError(
                f"{self.name}: sha256 mismatch: the bytes hash to {digest}, the header says "
                f"{self.header.sha256}",
                reason="CHECKSUM_MISMATCH",
                field="file.sha256",
            )
        return StagedFile(filename=self.name, path=self.path, sha256=digest, size_bytes=size)

    def close(self) -> None:
        self.writer.close()


def _check_file_header(
    store: DatasetStore, header: dpb.DatasetFileHeader, seen: set[str], total: int
) -> None:
    split_filename(header.filename, "file.filename")
    if header.filename in seen:
        raise errors.InvalidArgumentError(
            f"{header.filename} is sent twice in this upload; each file once",
            field="file.filename",
        )
    if len(seen) >= store.max_files:
        raise errors.ResourceExhaustedError(
            f"more than {store.max_files} files; a dataset holds at most {store.max_files}",
            field="file",
        )
    if header.size_bytes <= 0:
        raise errors.InvalidArgumentError(
            f"{header.filename}: must be the file's size in bytes (> 0)", field="file.size_bytes"
        )
    if header.size_bytes > store.max_file_bytes:
        raise errors.ResourceExhaustedError(
            f"{header.filename} is {header.size_bytes} bytes; this orchestrator accepts files "
            f"of at most {store.max_file_bytes}",
            field="file.size_bytes",
        )
    if total + header.size_bytes > store.max_dataset_bytes:
        raise errors.ResourceExhaustedError(
            f"the files add up to more than {store.max_dataset_bytes} bytes, the most one "
            "dataset may hold",
            field="file.size_bytes",
        )
    check_sha256(header.sha256, "file.sha256")
    if header.compression not in ("", "gzip"):
        raise errors.InvalidArgumentError(
            f"{header.filename}: unsupported compression {shown(header.compression)}; use "
            "'' (raw) or 'gzip'",
            field="file.compression",
        )


async def receive_dataset(
    store: DatasetStore, chunks: AsyncIterator[dpb.DatasetChunk], context: Context
) -> DatasetInfo:
    """Receive, check, inspect and store one ``UploadDataset`` stream (see the module doc)."""
    first = await anext(aiter(chunks), None)
    if first is None or first.WhichOneof("kind") != "header":
        raise errors.InvalidArgumentError(
            "the first message must be a DatasetUploadHeader naming the dataset", field="header"
        )
    name = check_dataset_name(first.header.name, "header.name")
    staged: list[StagedFile] = []
    incoming: list[_Incoming] = []  # every file opened, for the clean-up
    folder = await asyncio.to_thread(store.upload_dir)
    try:
        current: _Incoming | None = None
        total = 0
        async for chunk in chunks:
            kind = chunk.WhichOneof("kind")
            if kind == "header":
                raise errors.InvalidArgumentError(
                    "only the first message may be a DatasetUploadHeader", field="header"
                )
            if kind == "file":
                if current is not None:
                    staged.append(await asyncio.to_thread(current.finish))
                header = chunk.file
                _check_file_header(store, header, {f.name for f in incoming}, total)
                total += header.size_bytes
                current = await asyncio.to_thread(_Incoming, header, folder / header.filename)
                incoming.append(current)
            elif kind == "data":
                if current is None:
                    raise errors.InvalidArgumentError(
                        "file bytes before any DatasetFileHeader", field="data"
                    )
                await asyncio.to_thread(current.accept, chunk.data)
        if context.cancelled():
            raise asyncio.CancelledError
        if current is None:
            raise errors.InvalidArgumentError(
                "no files: send a DatasetFileHeader and its bytes for each file", field="file"
            )
        staged.append(await asyncio.to_thread(current.finish))
        staged = [await asyncio.to_thread(_inspect, store, f) for f in staged]
        _check_series(staged)
        return await asyncio.to_thread(store.commit, name, staged)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise errors.ResourceExhaustedError(
                "the orchestrator's disk is full; nothing was stored (free space, or delete "
                "datasets you no longer train on)"
            ) from None
        raise
    finally:
        await _to_the_end(_discard, incoming, folder)


def _inspect(store: DatasetStore, staged: StagedFile) -> StagedFile:
    try:
        facts = inspect_market_file(staged.path, max_bars=store.max_bars)
    except (DataError, ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        # Bytes from a client: whatever the readers make of them, it is the file's problem.
        problem = str(exc) if staged.filename in str(exc) else f"{staged.filename}: {exc}"
        raise errors.InvalidArgumentError(
            f"not usable OHLCV data: {problem}; nothing was stored",
            field="data",
            reason="NOT_OHLCV",
        ) from None
    return replace(staged, facts=facts)


def _check_series(files: list[StagedFile]) -> None:
    seen: dict[tuple[str, str], str] = {}
    for staged in files:
        assert staged.facts is not None
        key = (staged.facts.symbol, staged.facts.timeframe)
        if key in seen:
            raise errors.InvalidArgumentError(
                f"{seen[key]} and {staged.filename} both hold {key[0]} {key[1]} bars; a "
                "dataset holds each symbol and timeframe once",
                field="file.filename",
            )
        seen[key] = staged.filename


def _discard(incoming: list[_Incoming], folder: Path) -> None:
    """Close every file of the upload and delete what the commit did not take."""
    for item in incoming:
        item.close()
    shutil.rmtree(folder, ignore_errors=True)
