"""The uploader's parallel gzip: one valid multi-member stream, deterministic, resumable at any
offset, bounded in memory; its retry window; and the trainer's spool of unsent models."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import os
import shutil
import subprocess
import time
import tracemalloc
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from services.trainer.jobs import SPOOL_NOTE, JobRunner, JobSpec
from services.trainer.uploader import (
    CHUNK_BYTES,
    CompressedStream,
    GzipOptions,
    ParallelGzip,
    Uploader,
    UploadError,
    UploadTask,
    gzip_chunks,
)
from shared.jobs import ErrorCode, JobState
from shared.pipeline.run import TrainingOutcome
from shared.spec import TrainingRequest, default_strategy
from tests.support.processes import free_port

pytestmark = pytest.mark.timeout(60)
MIB = 1024 * 1024


def _weights_file(path: Path, size: int, seed: int = 0) -> Path:
    """Float32 noise like trained weights, with a run of zeros that compresses well."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 0.05, size // 4).astype(np.float32).tobytes()
    data = bytearray(noise[:size])
    data[size // 3 : size // 3 + size // 10] = bytes(size // 10)
    path.write_bytes(bytes(data))
    return path


def _inflate_members(stream: bytes) -> tuple[bytes, int]:
    """Inflate concatenated gzip members the way the orchestrator does; count them."""
    out, members = [], 0
    while stream:
        d = zlib.decompressobj(31)
        out.append(d.decompress(stream))
        assert d.eof, "a member is cut short"
        members += 1
        stream = d.unused_data
    return b"".join(out), members


async def _collect(stream: CompressedStream, offset: int = 0) -> bytes:
    return b"".join([c async for c in stream.chunks(offset)])


def test_the_members_form_one_gzip_stream_equal_to_the_input(tmp_path: Path) -> None:
    source = _weights_file(tmp_path / "model.bin", 5 * MIB + 12345)
    options = GzipOptions(block_bytes=MIB, workers=3)
    with ParallelGzip(source, options) as members:
        parts = list(members)
    packed = b"".join(parts)
    assert len(parts) == 6
    raw = source.read_bytes()
    assert gzip.decompress(packed) == raw
    inflated, count = _inflate_members(packed)
    assert inflated == raw and count == 6
    gunzip = shutil.which("gzip")
    if gunzip is not None:
        result = subprocess.run([gunzip, "-dc"], input=packed, capture_output=True, check=True)
        assert result.stdout == raw


def test_the_stream_is_deterministic_whatever_the_worker_count(tmp_path: Path) -> None:
    source = _weights_file(tmp_path / "model.bin", 3 * MIB + 7)
    digests = set()
    for workers in (1, 2, 4):
        with ParallelGzip(source, GzipOptions(block_bytes=512 * 1024, workers=workers)) as gz:
            digests.add(hashlib.sha256(b"".join(gz)).hexdigest())
    assert len(digests) == 1
    # The default options too, through the chunked form the uploader sends.
    first = b"".join(gzip_chunks(source))
    assert first == b"".join(gzip_chunks(source))
    assert gzip.decompress(first) == source.read_bytes()


def test_chunks_are_whole_chunk_bytes_but_the_last(tmp_path: Path) -> None:
    source = _weights_file(tmp_path / "model.bin", 3 * MIB)
    sizes = [len(c) for c in gzip_chunks(source)]
    assert all(s == CHUNK_BYTES for s in sizes[:-1]) and 0 < sizes[-1] <= CHUNK_BYTES


async def test_a_stream_resumes_at_any_offset_with_identical_bytes(tmp_path: Path) -> None:
    source = _weights_file(tmp_path / "model.bin", 4 * MIB + 999)
    options = GzipOptions(block_bytes=MIB, workers=2)
    primed = CompressedStream(source, options)
    full = await _collect(primed)
    assert primed.total_bytes == len(full)
    boundary = primed.member_sizes[0] + primed.member_sizes[1]
    for offset in (1, CHUNK_BYTES, boundary, boundary + 1, len(full) - 1, len(full)):
        # From the member index of an earlier pass, and from nothing (compress and skip).
        assert await _collect(primed, offset) == full[offset:], offset
        assert await _collect(CompressedStream(source, options), offset) == full[offset:]


async def test_a_resume_past_the_end_is_an_error(tmp_path: Path) -> None:
    source = _weights_file(tmp_path / "model.bin", MIB)
    stream = CompressedStream(source)
    full = await _collect(stream)
    with pytest.raises(ValueError, match="past the end"):
        await _collect(CompressedStream(source), len(full) + 1)


def test_an_empty_file_is_one_empty_member(tmp_path: Path) -> None:
    source = tmp_path / "empty"
    source.write_bytes(b"")
    with ParallelGzip(source) as gz:
        parts = list(gz)
    assert len(parts) == 1 and gzip.decompress(parts[0]) == b""


def test_memory_is_bounded_by_the_workers_not_the_file(tmp_path: Path) -> None:
    """A slow consumer cannot make members pile up: at most ``window`` blocks are in flight,
    and Python's peak allocation stays a few blocks for a file 48 blocks long."""
    block = MIB
    source = _weights_file(tmp_path / "model.bin", 48 * block)
    options = GzipOptions(block_bytes=block, workers=2)
    tracemalloc.start()
    try:
        with ParallelGzip(source, options) as gz:
            for index, member in enumerate(gz):
                assert member
                if index < 4:
                    time.sleep(0.05)  # let the workers run ahead, if they could
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert gz.window == options.workers + 2
    assert gz.max_in_flight <= gz.window
    # window members + workers' input blocks + the consumer's member, with slack for zlib.
    assert peak < (gz.window + options.workers + 2) * block * 1.5, peak / MIB


async def test_unavailable_is_retried_for_the_window_then_fails(tmp_path: Path) -> None:
    source = _weights_file(tmp_path / "model.bin", 64 * 1024)
    task = UploadTask(
        target=f"127.0.0.1:{free_port()}",
        job_id="j",
        token="t",
        path=source,
        sha256=hashlib.sha256(source.read_bytes()).hexdigest(),
        size_bytes=source.stat().st_size,
    )
    uploader = Uploader(
        task, attempts=2, backoff_s=0.05, max_backoff_s=0.2, unavailable_window_s=1.0
    )
    started = time.monotonic()
    with pytest.raises(UploadError) as err:
        await uploader.run()
    assert err.value.code is not None and err.value.code.name == "UNAVAILABLE"
    assert uploader.stats.attempts > 2  # past `attempts`, within the window
    assert 0.5 < time.monotonic() - started < 5.0


def _fake_pipeline(model: Path) -> Any:
    def pipeline(request: TrainingRequest, *, work_dir: Path, **_: Any) -> TrainingOutcome:
        artifact = work_dir / "model.safetensors"
        shutil.copyfile(model, artifact)
        data = artifact.read_bytes()
        return TrainingOutcome(
            artifact_path=artifact,
            sha256=hashlib.sha256(data).hexdigest(),
            size_bytes=len(data),
            device="cpu",
            train_metrics={},
            test_metrics={},
            feature_importance={},
            feature_names=(),
            samples=0,
        )

    return pipeline


async def test_a_model_whose_upload_failed_stays_spooled(tmp_path: Path) -> None:
    model = _weights_file(tmp_path / "model.bin", 256 * 1024)
    runner = JobRunner(
        work_dir=tmp_path / "work",
        slots=1,
        node="test",
        pipeline=_fake_pipeline(model),
        upload_attempts=2,
        upload_backoff_s=0.05,
        upload_window_s=0.3,
    )
    request = TrainingRequest(symbols=("SYNTH",), timeframes=("1h",), strategy=default_strategy())
    run = runner.start(
        JobSpec(
            job_id="spooled",
            request=request,
            upload_target=f"127.0.0.1:{free_port()}",
            upload_token="t",
        )
    )
    assert run.task is not None
    await asyncio.wait_for(run.task, 20)
    assert run.state is JobState.FAILED
    error = run.events[-1].error
    assert error is not None and error.code == ErrorCode.UPLOAD_FAILED.value
    spool = tmp_path / "work" / "jobs" / "spooled"
    assert (spool / "model.safetensors").read_bytes() == model.read_bytes()
    assert (spool / SPOOL_NOTE).is_file()
    await runner.shutdown(0)


def _noted_spool(folder: Path) -> None:
    folder.mkdir(parents=True)
    artifact = folder / "model.safetensors"
    artifact.write_bytes(b"x")
    note = {"artifact": str(artifact), "sha256": hashlib.sha256(b"x").hexdigest(), "size_bytes": 1}
    (folder / SPOOL_NOTE).write_text(json.dumps(note))


def test_old_and_surplus_spools_are_pruned(tmp_path: Path) -> None:
    jobs = tmp_path / "work" / "jobs"
    now = time.time()
    for index in range(6):
        spool = jobs / f"job{index}"
        _noted_spool(spool)
        os.utime(spool, (now - index * 60, now - index * 60))
    ancient = jobs / "ancient"
    _noted_spool(ancient)
    os.utime(ancient, (now - 7200, now - 7200))
    JobRunner(
        work_dir=tmp_path / "work",
        slots=1,
        node="test",
        pipeline=_fake_pipeline(tmp_path),
        keep_failed_spools=4,
        spool_ttl_s=3600,
    )
    assert sorted(p.name for p in jobs.iterdir()) == ["job0", "job1", "job2", "job3"]
