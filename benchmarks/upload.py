"""Model upload end to end, against plain single-core gzip on the same bytes.

The model: a safetensors file of ``--mb`` (default 200) MB of float32 normal(0, 0.05) noise with
trainwire metadata, written in 4 MiB pieces so building it never holds the model in memory.
Noise is what trained float32 weights look like to deflate (the low mantissa bits are random):
it compresses ~1.08x, as trained weights do; it is not a real model.

- ``e2e``: a real orchestrator (``create_server``, grpc.aio on 127.0.0.1:0, a temp state dir,
  a job record for the upload token) in this process, and the trainer's ``Uploader`` sending
  the file: GetUploadStatus, parallel gzip members (``GzipOptions``: 1 MiB blocks, level 1, one
  worker per available core), 512 KiB chunks over gRPC; the orchestrator stages, inflates,
  verifies sha256 and safetensors, and stores it. Timed from the call to the receipt. The sha256
  of the file is an input (the pipeline computes it when it writes the artifact), not timed.
- ``gzip``: the baseline — the same file read in 1 MiB pieces through one ``zlib.compressobj``
  at the same level, on one core, output discarded: what the upload would cost if it were only
  single-stream gzip with an infinitely fast network and receiver.
- ``sender_only`` (not in ``--quick``): the trainer's side alone — the parallel gzip stream cut
  into chunks, no gRPC, no receiver: what the sender sustains where the orchestrator runs on
  another machine.

``ratio_vs_gzip`` = e2e MB/s / gzip MB/s (medians of interleaved repeats). Both ends of the
upload share this process's cores here, so the receiver's inflate + sha256 + writes count
against the sender. ``cpu_ratio_e2e_vs_gzip`` is the CPU seconds of the whole path over those
of bare gzip: the work, whatever else the machine runs. ``--cores N`` pins the whole process to
N cores (``--cores 1``: the one-core figure). ``peak_rss_mb`` is the growth of the process's
peak RSS (``ru_maxrss``) over the first upload; ``rss_growth_sampled_mb`` the growth of current
RSS sampled every 20 ms during it.

    .venv/bin/python benchmarks/upload.py [--quick] [--repeats N] [--mb 200] [--cores N]
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import base_parser, median, report
from services.orchestrator.config import OrchestratorConfig
from services.orchestrator.server import OrchestratorServer, create_server
from services.trainer.uploader import (
    BLOCK_BYTES,
    LEVEL,
    CompressedStream,
    GzipOptions,
    Uploader,
    UploadTask,
)
from services.trainer.uploader import available_cores as cores_available
from shared.spec import TrainingRequest, default_strategy

MB = 1_000_000
PIECE = 4 * 1024 * 1024
READ = 1024 * 1024


def build_model(path: Path, size_mb: int, seed: int = 0) -> tuple[str, int]:
    """Write a safetensors file of ~size_mb MB of noise weights; return (sha256, size)."""
    cols = 1024
    rows = max(1, size_mb * MB // (4 * cols))
    header = {
        "__metadata__": {"trainwire": json.dumps({"format_version": 1, "benchmark": True})},
        "weights": {"dtype": "F32", "shape": [rows, cols], "data_offsets": [0, rows * cols * 4]},
    }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    sha = hashlib.sha256()
    rng = np.random.default_rng(seed)
    with path.open("wb") as f:
        for part in (len(raw).to_bytes(8, "little"), raw):
            f.write(part)
            sha.update(part)
        left = rows * cols
        while left:
            n = min(left, PIECE // 4)
            piece = rng.normal(0.0, 0.05, n).astype(np.float32).tobytes()
            f.write(piece)
            sha.update(piece)
            left -= n
    return sha.hexdigest(), path.stat().st_size


def gzip_single_core(path: Path, level: int) -> int:
    """The baseline: one compressobj over the whole file; returns the compressed size."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, 31)
    out = 0
    with path.open("rb") as f:
        while piece := f.read(READ):
            out += len(compressor.compress(piece))
    return out + len(compressor.flush())


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class RssSampler:
    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, current_rss_mb())
            self._stop.wait(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


async def upload_once(
    server: OrchestratorServer, path: Path, sha: str, size: int, options: GzipOptions
) -> tuple[float, float, Uploader]:
    record, _ = server.book.create(
        TrainingRequest(symbols=("BENCH",), timeframes=("1h",), strategy=default_strategy())
    )
    uploader = Uploader(
        UploadTask(
            target=server.address,
            job_id=record.job_id,
            token=record.upload_token,
            path=path,
            sha256=sha,
            size_bytes=size,
        ),
        options=options,
    )
    start, cpu = time.perf_counter(), time.process_time()
    ref = await uploader.run()
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu
    if ref.sha256 != sha or uploader.stats.attempts != 1:
        raise SystemExit(f"the upload did not verify: {ref} {uploader.stats}")
    shutil.rmtree(server.repository.root / ref.strategy, ignore_errors=True)  # free the disk
    return elapsed, cpu, uploader


async def sender_only(path: Path, options: GzipOptions) -> int:
    """The trainer's side alone: the parallel gzip stream, cut into chunks, no gRPC."""
    sent = 0
    async for chunk in CompressedStream(path, options).chunks():
        sent += len(chunk)
    return sent


def compare_levels(path: Path, sample_bytes: int) -> dict[str, dict[str, float]]:
    with path.open("rb") as f:
        f.seek(4096)
        sample = f.read(sample_bytes)
    levels: dict[str, dict[str, float]] = {}
    for level in (1, 3, 6):
        start = time.perf_counter()
        packed = zlib.compress(sample, level)
        elapsed = time.perf_counter() - start
        levels[str(level)] = {
            "mb_per_s": round(len(sample) / MB / elapsed, 1),
            "ratio": round(len(sample) / len(packed), 4),
        }
    return levels


async def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--mb", type=int, default=200, help="model size in MB (>= 200 to report)")
    parser.add_argument("--cores", type=int, default=0, help="pin the process to N cores")
    parser.add_argument("--workers", type=int, default=0, help="compression threads; 0 = cores")
    args = parser.parse_args()
    if args.cores:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cores])
    repeats = args.repeats or (1 if args.quick else 3)
    options = GzipOptions(workers=args.workers)
    with tempfile.TemporaryDirectory(prefix="bench-upload-") as tmp:
        root = Path(tmp)
        path = root / "model.safetensors"
        built = time.perf_counter()
        sha, size = build_model(path, args.mb)
        build_s = time.perf_counter() - built
        blocks = -(-size // options.block_bytes)
        workers = max(1, min(options.workers or cores_available(), blocks))
        server = await create_server(
            OrchestratorConfig(listen="127.0.0.1:0", state_dir=root / "state")
        )
        try:
            e2e: list[float] = []
            base: list[float] = []
            e2e_cpu: list[float] = []
            base_cpu: list[float] = []
            sender: list[float] = []
            sender_cpu: list[float] = []
            load_before = os.getloadavg()[0]
            rss_before, current_before = maxrss_mb(), current_rss_mb()
            with RssSampler() as sampler:
                elapsed, cpu, first = await upload_once(server, path, sha, size, options)
            e2e.append(elapsed)
            e2e_cpu.append(cpu)
            peak_growth = maxrss_mb() - rss_before
            sampled_growth = sampler.peak - current_before
            for index in range(repeats):
                start, cpu_start = time.perf_counter(), time.process_time()
                compressed = await asyncio.to_thread(gzip_single_core, path, options.level)
                base.append(time.perf_counter() - start)
                base_cpu.append(time.process_time() - cpu_start)
                if not args.quick:
                    start, cpu_start = time.perf_counter(), time.process_time()
                    await sender_only(path, options)
                    sender.append(time.perf_counter() - start)
                    sender_cpu.append(time.process_time() - cpu_start)
                if index + 1 < repeats:
                    elapsed, cpu, _ = await upload_once(server, path, sha, size, options)
                    e2e.append(elapsed)
                    e2e_cpu.append(cpu)
        finally:
            await server.stop(0)
        levels = None if args.quick else compare_levels(path, 32 * MB)
    model_mb = size / MB
    e2e_rate = model_mb / median(e2e)
    gzip_rate = model_mb / median(base)
    stats = first.stats
    results: dict[str, Any] = {
        "ratio_vs_gzip": round(e2e_rate / gzip_rate, 3),
        "e2e_mb_per_s": round(e2e_rate, 1),
        "gzip_mb_per_s": round(gzip_rate, 1),
        "model_mb": round(model_mb, 1),
        "compressed_mb": round(stats.stream_bytes / MB, 1),
        "compression_ratio": round(size / stats.stream_bytes, 4),
        "baseline_compression_ratio": round(size / compressed, 4),
        "workers": workers,
        "cores": cores_available(),
        "level": options.level,
        "block_mib": options.block_bytes / (1024 * 1024),
        "look_ahead_blocks": workers + 2,
        "max_in_flight_blocks": first.stream.max_in_flight,
        "peak_rss_mb": round(peak_growth, 1),
        "rss_growth_sampled_mb": round(sampled_growth, 1),
        "repeats": repeats,
        "e2e_s": [round(x, 2) for x in e2e],
        "gzip_s": [round(x, 2) for x in base],
        # CPU seconds of the whole process (all threads): the work, whatever else the machine
        # runs. e2e includes the receiver's inflate, sha256 and writes, and gRPC.
        "e2e_cpu_s": [round(x, 2) for x in e2e_cpu],
        "gzip_cpu_s": [round(x, 2) for x in base_cpu],
        "cpu_ratio_e2e_vs_gzip": round(median(e2e_cpu) / median(base_cpu), 3),
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "build_s": round(build_s, 1),
        "defaults": {"block_bytes": BLOCK_BYTES, "level": LEVEL},
    }
    if sender:
        results["sender_only"] = {
            "mb_per_s": round(model_mb / median(sender), 1),
            "ratio_vs_gzip": round(median(base) / median(sender), 3),
            "cpu_ratio_vs_gzip": round(median(sender_cpu) / median(base_cpu), 3),
            "s": [round(x, 2) for x in sender],
        }
    if levels is not None:
        results["levels_single_core_32mb"] = levels
    report("upload", results)


if __name__ == "__main__":
    asyncio.run(main())
