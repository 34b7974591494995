"""Model upload end to end, beside its honest baselines on the same bytes, in one run.

The model: a safetensors file of ``--mb`` (default 200) MB of float32 normal(0, 0.05) noise with
trainwire metadata, written in 4 MiB pieces so building it never holds the model in memory.
Noise is what trained float32 weights look like to deflate (the low mantissa bits are random):
it compresses about as little as they do (``compression_ratio``); it is not a real model.

Cases, interleaved: each round runs every case once, the order rotating from round to round.

- ``e2e``: a real orchestrator (``create_server``, grpc.aio on 127.0.0.1:0, a temp state dir,
  a job record for the upload token) in this process, and the trainer's ``Uploader`` sending
  the file: GetUploadStatus, parallel gzip members (``GzipOptions``: 1 MiB blocks, level 1, one
  worker per available core), 512 KiB chunks over gRPC; the orchestrator stages, inflates,
  verifies sha256 and safetensors, and stores it. Timed from the call to the receipt. The sha256
  of the file is an input (the pipeline computes it when it writes the artifact), not timed.
- ``raw``: the same file's bytes *uncompressed* over the same path: the same ``Uploader``, RPC
  and receiver, with ``GzipOptions(level=0)``. The receiver takes only gzip, so the bytes travel
  as gzip *stored* blocks: the file verbatim, framed (5 bytes per 64 KiB deflate block and ~20
  per 1 MiB member, ~0.01 %), with a CRC-32 computed by the sender and checked by the receiver;
  the receiver's copy-out, sha256, writes and fsyncs are all there. What the upload costs with
  no compression at all, on a network as fast as loopback.
- ``gzip``: the file read in 1 MiB pieces through one ``zlib.compressobj`` at the same level,
  on one core, output discarded: what the upload would cost if it were only single-stream gzip
  with an infinitely fast network and receiver.
- ``cores_x_gzip`` (derived, not run): ``gzip`` MB/s x the compression workers used: the ideal
  parallel speed-up, what perfectly parallel gzip with a free network and receiver would reach.
- ``sender_only`` (not in ``--quick``): the trainer's side alone — the parallel gzip stream cut
  into chunks, no gRPC, no receiver: what the sender sustains where the orchestrator runs on
  another machine.

``ratio_vs_X`` = e2e MB/s / X MB/s, from the medians of the rounds (model MB over seconds), with
``ratio_vs_X_ci95``: a bootstrap 95 % interval resampling the rounds (pairs measured side by
side). Both ends of the upload share this process's cores here, so the receiver's inflate +
sha256 + writes count against the sender. ``cpu_ratio_e2e_vs_gzip`` is the CPU seconds of the
whole path over those of bare gzip: the work, whatever else the machine runs. ``--cores N`` pins
the whole process to N cores (``--cores 1``: the one-core figure). ``peak_rss_mb`` is the growth
of the process's peak RSS (``ru_maxrss``) over the first upload; ``rss_growth_sampled_mb`` the
growth of current RSS sampled every 20 ms during it.

    .venv/bin/python benchmarks/upload.py [--quick] [--repeats N] [--mb 200] [--cores N]
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
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


def ratio_ci95(
    ours: list[float], base: list[float], scale: float = 1.0, rounds: int = 2000
) -> list[float]:
    """Bootstrap 95 % interval of the rate ratio ``scale`` x median(base s) / median(ours s),
    resampling the rounds (each pair was measured side by side)."""
    rng = random.Random(0)
    pairs = list(zip(ours, base, strict=True))
    ratios = sorted(
        scale * median([b for _, b in sample]) / median([a for a, _ in sample])
        for sample in (rng.choices(pairs, k=len(pairs)) for _ in range(rounds))
    )
    return [round(ratios[int(0.025 * rounds)], 3), round(ratios[int(0.975 * rounds) - 1], 3)]


async def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--mb", type=int, default=200, help="model size in MB (>= 200 to report)")
    parser.add_argument("--cores", type=int, default=0, help="pin the process to N cores")
    parser.add_argument("--workers", type=int, default=0, help="compression threads; 0 = cores")
    args = parser.parse_args()
    if args.cores:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cores])
    repeats = args.repeats or 3
    options = GzipOptions(workers=args.workers)
    stored = GzipOptions(workers=args.workers, level=0)  # the raw case: stored blocks
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
        names = ["e2e", "raw", "gzip"] + ([] if args.quick else ["sender_only"])
        wall: dict[str, list[float]] = {name: [] for name in names}
        cpu: dict[str, list[float]] = {name: [] for name in names}
        uploads: dict[str, Uploader] = {}
        compressed = 0
        peak_growth = sampled_growth = 0.0
        load_before = os.getloadavg()[0]
        try:
            for index in range(repeats):
                turn = index % len(names)
                for name in names[turn:] + names[:turn]:  # round 0 starts with e2e
                    start, cpu_start = time.perf_counter(), time.process_time()
                    if name == "e2e" and index == 0:
                        rss_before, current_before = maxrss_mb(), current_rss_mb()
                        with RssSampler() as sampler:
                            *_, uploads[name] = await upload_once(server, path, sha, size, options)
                        peak_growth = maxrss_mb() - rss_before
                        sampled_growth = sampler.peak - current_before
                    elif name in ("e2e", "raw"):
                        chosen = options if name == "e2e" else stored
                        *_, uploads[name] = await upload_once(server, path, sha, size, chosen)
                    elif name == "gzip":
                        compressed = await asyncio.to_thread(gzip_single_core, path, options.level)
                    else:
                        await sender_only(path, options)
                    wall[name].append(time.perf_counter() - start)
                    cpu[name].append(time.process_time() - cpu_start)
        finally:
            await server.stop(0)
        levels = None if args.quick else compare_levels(path, 32 * MB)
    model_mb = size / MB
    e2e_s, raw_s, gzip_s = wall["e2e"], wall["raw"], wall["gzip"]
    e2e_rate = model_mb / median(e2e_s)
    raw_rate = model_mb / median(raw_s)
    gzip_rate = model_mb / median(gzip_s)
    stats = uploads["e2e"].stats
    results: dict[str, Any] = {
        "ratio_vs_gzip": round(e2e_rate / gzip_rate, 3),
        "ratio_vs_gzip_ci95": ratio_ci95(e2e_s, gzip_s),
        "ratio_vs_raw": round(e2e_rate / raw_rate, 3),
        "ratio_vs_raw_ci95": ratio_ci95(e2e_s, raw_s),
        "ratio_vs_cores_x_gzip": round(e2e_rate / (workers * gzip_rate), 3),
        "ratio_vs_cores_x_gzip_ci95": ratio_ci95(e2e_s, gzip_s, 1 / workers),
        "e2e_mb_per_s": round(e2e_rate, 1),
        "raw_mb_per_s": round(raw_rate, 1),
        "gzip_mb_per_s": round(gzip_rate, 1),
        "cores_x_gzip_mb_per_s": round(workers * gzip_rate, 1),
        "model_mb": round(model_mb, 1),
        "compressed_mb": round(stats.stream_bytes / MB, 1),
        "raw_stream_mb": round(uploads["raw"].stats.stream_bytes / MB, 3),
        "compression_ratio": round(size / stats.stream_bytes, 4),
        "baseline_compression_ratio": round(size / compressed, 4),
        "workers": workers,
        "cores": cores_available(),
        "level": options.level,
        "block_mib": options.block_bytes / (1024 * 1024),
        "look_ahead_blocks": workers + 2,
        "max_in_flight_blocks": uploads["e2e"].stream.max_in_flight,
        "peak_rss_mb": round(peak_growth, 1),
        "rss_growth_sampled_mb": round(sampled_growth, 1),
        "repeats": repeats,
        "e2e_s": [round(x, 2) for x in e2e_s],
        "raw_s": [round(x, 2) for x in raw_s],
        "gzip_s": [round(x, 2) for x in gzip_s],
        # CPU seconds of the whole process (all threads): the work, whatever else the machine
        # runs. e2e and raw include the receiver's inflate, sha256 and writes, and gRPC.
        "e2e_cpu_s": [round(x, 2) for x in cpu["e2e"]],
        "raw_cpu_s": [round(x, 2) for x in cpu["raw"]],
        "gzip_cpu_s": [round(x, 2) for x in cpu["gzip"]],
        "cpu_ratio_e2e_vs_gzip": round(median(cpu["e2e"]) / median(cpu["gzip"]), 3),
        "cpu_ratio_e2e_vs_raw": round(median(cpu["e2e"]) / median(cpu["raw"]), 3),
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "build_s": round(build_s, 1),
        "defaults": {"block_bytes": BLOCK_BYTES, "level": LEVEL},
    }
    if wall.get("sender_only"):
        sender = wall["sender_only"]
        results["sender_only"] = {
            "mb_per_s": round(model_mb / median(sender), 1),
            "ratio_vs_gzip": round(median(gzip_s) / median(sender), 3),
            "ratio_vs_gzip_ci95": ratio_ci95(sender, gzip_s),
            "cpu_ratio_vs_gzip": round(median(cpu["sender_only"]) / median(cpu["gzip"]), 3),
            "s": [round(x, 2) for x in sender],
        }
    if levels is not None:
        results["levels_single_core_32mb"] = levels
    report("upload", results)


if __name__ == "__main__":
    asyncio.run(main())
