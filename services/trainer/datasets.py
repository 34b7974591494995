"""The trainer's copy of uploaded datasets: fetched from the orchestrator once, cached by hash.

A job on a dataset (``DATA_SOURCE_KIND_DATASET``) names the exact version it trains on
(``data.dataset_sha256``, pinned by the orchestrator at submit). Before the pipeline starts, the
node asks the orchestrator for that version's manifest (``GetDataset name@sha256``), checks it
(the version's sha256 is that of its file list; every filename is one safe name), and downloads
each file it does not hold yet (``DownloadDatasetFile``) into ``work_dir/datasets/blobs/{sha256}``:
written to a temporary file, its size and sha256 checked, then renamed into place, read-only. A
file is fetched once, whatever dataset, version or job it appears in; concurrent jobs wanting
the same file wait for one download.

The job then gets a directory of its own, ``work_dir/jobs/{job}/dataset/``, holding the
version's files under their dataset filenames as hard links into the cache (symlinks where the
file system refuses links), each checked to resolve inside the work dir; the pipeline reads it
as ``dataset_dir``, and it goes with the job's directory. A version deleted on the orchestrator
after the job was submitted is a ``DataError`` saying so (the job fails ``DATA_ERROR``).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import grpc

from shared import errors
from shared.cancellation import CancellationToken
from shared.datasets import DatasetFile, DatasetInfo, check_sha256, manifest_sha256, split_filename
from shared.pipeline.market import DataError
from shared.rpc import plumbing, serde
from shared.rpc.v1 import datasets_pb2 as dpb
from shared.rpc.v1 import orchestrator_pb2_grpc
from shared.spec import DataSpec

from .paths import resolve_inside

_LOGGER = logging.getLogger(__name__)
MANIFEST_TIMEOUT_S = 30.0
FETCH_ATTEMPTS = 3
"""Tries per file when the orchestrator is briefly unreachable (a restart)."""
RETRY_DELAY_S = 0.5
_TRANSIENT = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class DatasetCache:
    """``work_dir/datasets``: ``blobs/{sha256}`` (the cache) and ``tmp/`` (downloads)."""

    def __init__(self, work_dir: Path, security: plumbing.Security = plumbing.INSECURE) -> None:
        self.root = work_dir.resolve() / "datasets"  # absolute: links must not depend on the cwd
        self._blobs = self.root / "blobs"
        self._tmp = self.root / "tmp"
        for folder in (self.root, self._blobs, self._tmp):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for leftover in self._tmp.iterdir():  # downloads a stop or a crash cut off
            leftover.unlink(missing_ok=True)
        self._security = security
        self._locks: dict[str, asyncio.Lock] = {}
        self.files_fetched = 0
        """Files downloaded since start (a file already cached is not counted)."""
        self.bytes_fetched = 0

    def cached(self, file: DatasetFile) -> bool:
        path = self._blobs / file.sha256
        try:
            return path.is_file() and path.stat().st_size == file.size_bytes
        except OSError:
            return False

    async def prepare(
        self,
        data: DataSpec,
        *,
        orchestrator: str,
        job_dir: Path,
        notify: Callable[[str], None],
        cancel: CancellationToken,
    ) -> Path:
        """The job's dataset directory, with every file of the pinned version in it."""
        async with plumbing.create_channel(orchestrator, self._security) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            info = await self._manifest(stub, data, orchestrator)
            wanted = {f.sha256: f for f in info.files}
            missing = [f for f in wanted.values() if not await asyncio.to_thread(self.cached, f)]
            label = f"{info.name}@{info.sha256[:12]}"
            if missing:
                size = sum(f.size_bytes for f in missing)
                notify(
                    f"Fetching dataset {label} from {orchestrator} ({len(missing)} of "
                    f"{len(info.files)} file(s), {size / 1e6:.1f} MB)"
                )
            else:
                notify(f"Dataset {label}: all {len(info.files)} file(s) already on this node")
            for file in missing:
                await self._fetch(stub, file, orchestrator, cancel)
        return await asyncio.to_thread(self._link, info, job_dir)

    async def _manifest(
        self, stub: orchestrator_pb2_grpc.OrchestratorAsyncStub, data: DataSpec, target: str
    ) -> DatasetInfo:
        name, pinned = data.dataset, data.dataset_sha256
        ref = f"{name}@{pinned}" if pinned else name
        try:
            reply = await _with_retries(
                lambda: stub.GetDataset(dpb.GetDatasetRequest(name=ref), timeout=MANIFEST_TIMEOUT_S)
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() is grpc.StatusCode.NOT_FOUND:
                what = (
                    f"dataset {name}@{pinned[:12]} was deleted from the orchestrator after this "
                    "job was submitted; upload it again and resubmit"
                    if pinned
                    else f"the orchestrator has no dataset {name!r}; upload it first"
                )
                raise DataError("", "", what) from None
            raise DataError(
                "", "", f"cannot get dataset {ref} from {target}: {_rpc(exc)}"
            ) from None
        info = serde.dataset_from_proto(reply)
        _check_manifest(info, name, pinned)
        return info

    async def _fetch(
        self,
        stub: orchestrator_pb2_grpc.OrchestratorAsyncStub,
        file: DatasetFile,
        target: str,
        cancel: CancellationToken,
    ) -> None:
        lock = self._locks.setdefault(file.sha256, asyncio.Lock())
        async with lock:  # one download per file, however many jobs want it
            if await asyncio.to_thread(self.cached, file):
                return
            for attempt in range(1, FETCH_ATTEMPTS + 1):
                try:
                    await self._download(stub, file, cancel)
                    break
                except grpc.aio.AioRpcError as exc:
                    if exc.code() is grpc.StatusCode.NOT_FOUND:
                        raise DataError(
                            "",
                            "",
                            f"{file.filename} (sha256 {file.sha256[:12]}) is no longer on the "
                            "orchestrator: the dataset was deleted after this job was submitted; "
                            "upload it again and resubmit",
                        ) from None
                    if exc.code() not in _TRANSIENT or attempt == FETCH_ATTEMPTS:
                        raise DataError(
                            "", "", f"cannot fetch {file.filename} from {target}: {_rpc(exc)}"
                        ) from None
                    await asyncio.sleep(RETRY_DELAY_S * attempt)
        if len(self._locks) > 1024:
            self._locks = {k: v for k, v in self._locks.items() if v.locked()}

    async def _download(
        self,
        stub: orchestrator_pb2_grpc.OrchestratorAsyncStub,
        file: DatasetFile,
        cancel: CancellationToken,
    ) -> None:
        tmp = self._tmp / f"{file.sha256}-{uuid.uuid4().hex}.part"
        out = await asyncio.to_thread(_open_private, tmp)
        sha = hashlib.sha256()
        size = 0
        try:
            call = stub.DownloadDatasetFile(dpb.DownloadDatasetFileRequest(sha256=file.sha256))
            async for chunk in call:
                cancel.raise_if_cancelled()
                if chunk.WhichOneof("kind") != "data":
                    continue
                size += len(chunk.data)
                if size > file.size_bytes:
                    raise DataError(
                        "", "", f"{file.filename}: more bytes than the {file.size_bytes} listed"
                    )
                sha.update(chunk.data)
                await asyncio.to_thread(out.write, chunk.data)
            digest = sha.hexdigest()
            if size != file.size_bytes or digest != file.sha256:
                raise DataError(
                    "",
                    "",
                    f"{file.filename} arrived damaged ({size} of {file.size_bytes} bytes, sha256 "
                    f"{digest[:12]} for {file.sha256[:12]}); nothing was kept",
                )
            await asyncio.to_thread(_keep, out, tmp, self._blobs / file.sha256)
        finally:
            await asyncio.to_thread(_drop, out, tmp)
        self.files_fetched += 1
        self.bytes_fetched += size
        _LOGGER.info("fetched dataset file %s (%s, %d bytes)", file.filename, file.sha256, size)

    def _link(self, info: DatasetInfo, job_dir: Path) -> Path:
        """``job_dir/dataset/{filename}`` → the cached file, for each file of ``info``."""
        job_dir.mkdir(mode=0o700, exist_ok=True)
        folder = job_dir / "dataset"
        if folder.is_symlink() or folder.exists():
            shutil.rmtree(
                folder
            ) if folder.is_dir() and not folder.is_symlink() else folder.unlink()
        folder.mkdir(mode=0o700)
        folder = resolve_inside(job_dir, "dataset")
        for file in info.files:
            blob = resolve_inside(self._blobs, file.sha256)
            if not blob.is_file():
                raise DataError("", "", f"{file.filename} is missing from this node's cache")
            link = resolve_inside(folder, file.filename)
            try:
                os.link(blob, link)
            except OSError as exc:  # another file system, or links not allowed: a symlink serves
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
                os.symlink(blob, link)
        return folder


def _check_manifest(info: DatasetInfo, name: str, pinned: str) -> None:
    """A manifest is taken only if it is the version asked for and every name is safe."""
    try:
        for file in info.files:
            split_filename(file.filename, "filename")
            check_sha256(file.sha256, "sha256")
    except errors.InvalidArgumentError as exc:
        raise DataError("", "", f"the orchestrator sent a bad manifest: {exc.message}") from None
    names = [f.filename for f in info.files]
    listed = manifest_sha256((f.filename, f.sha256) for f in info.files)
    problem = ""
    if info.name != name:
        problem = f"it names dataset {info.name!r}, not {name!r}"
    elif pinned and info.sha256 != pinned:
        problem = f"it is version {info.sha256[:12]}, not the pinned {pinned[:12]}"
    elif listed != info.sha256:
        problem = f"its files hash to version {listed[:12]}, not {info.sha256[:12]}"
    elif len(set(names)) != len(names) or not names:
        problem = "its file list is empty or names a file twice"
    if problem:
        raise DataError("", "", f"the orchestrator sent a bad manifest for {name}: {problem}")


async def _with_retries(call: Callable[[], object]) -> dpb.Dataset:
    for attempt in range(1, FETCH_ATTEMPTS + 1):
        try:
            reply = await call()  # type: ignore[misc]
            assert isinstance(reply, dpb.Dataset)
            return reply
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in _TRANSIENT or attempt == FETCH_ATTEMPTS:
                raise
            await asyncio.sleep(RETRY_DELAY_S * attempt)
    raise AssertionError("unreachable")


def _rpc(exc: grpc.aio.AioRpcError) -> str:
    return f"{exc.code().name}: {exc.details()}"


def _open_private(path: Path) -> BinaryIO:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "wb")


def _keep(out: BinaryIO, tmp: Path, final: Path) -> None:
    out.flush()
    os.fsync(out.fileno())
    out.close()
    os.chmod(tmp, 0o400)  # jobs read it through links: nobody writes a cached file
    os.replace(tmp, final)


def _drop(out: BinaryIO, tmp: Path) -> None:
    if not out.closed:
        out.close()
    tmp.unlink(missing_ok=True)
