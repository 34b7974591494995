"""Cancellation latency of a trainer node: ``Trainer.Cancel`` → the terminal CANCELLED event.

A real trainer server (grpc.aio, in-process, port 0) runs a long training job; once the job is
mid-training (its first batch or epoch event has arrived) the client calls ``Cancel`` and times
until the ``Train`` stream delivers the CANCELLED event. The same for a long grid optimization
(``optimize_*``): the cancel is sent when the first trial's event arrives, so it lands inside the
next trial's candle-by-candle backtest, and the CANCELLED event keeps the finished trials.
Repeated ``--runs`` times; reports p50 and p99 in milliseconds. As a bare baseline, the same
client measures a plain unary round trip (``GetInfo``) on the same channel in the same run, so
the figure can be read against the transport's own latency on this machine.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import base_parser, report
from services.trainer.config import TrainerConfig
from services.trainer.server import create_server
from shared.rpc import plumbing
from shared.rpc.v1 import progress_pb2 as ppb
from shared.rpc.v1 import strategy_pb2 as spb
from shared.rpc.v1 import trainer_pb2, trainer_pb2_grpc


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def _one(stub: trainer_pb2_grpc.TrainerAsyncStub, job_id: str) -> tuple[float, str]:
    request = spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"])
    request.strategy.training.epochs = 100_000
    request.data.bars = 1200
    job = trainer_pb2.TrainerJob(
        job_id=job_id, request=request, upload_target="127.0.0.1:9", upload_token="unused"
    )
    stream = stub.Train(job)
    sent = 0.0
    async for event in stream:
        if not sent and event.kind in (ppb.EVENT_KIND_BATCH, ppb.EVENT_KIND_EPOCH):
            sent = time.perf_counter()
            await stub.Cancel(trainer_pb2.CancelRequest(job_id=job_id, reason="benchmark"))
        if event.state in (ppb.JOB_STATE_CANCELLED, ppb.JOB_STATE_FAILED, ppb.JOB_STATE_SUCCEEDED):
            return (time.perf_counter() - sent) * 1000.0, ppb.JobState.Name(event.state)
    raise RuntimeError("stream ended without a terminal event")


def _optimization(job_id: str) -> trainer_pb2.TrainerJob:
    """A long sequential grid search: each trial a backtest of 50,000 bars."""
    request = spb.OptimizeRequest(
        symbols=["SYNTH"],
        timeframes=["1h"],
        strategy="sma_crossover",
        space=[
            spb.ParamRange(name="fast", type=spb.PARAM_TYPE_INT, low=2, high=60, step=1),
            spb.ParamRange(name="slow", type=spb.PARAM_TYPE_INT, low=61, high=300, step=1),
        ],
        sampler=spb.SAMPLER_GRID,
        data=spb.DataSpec(bars=50_000),
    )
    return trainer_pb2.TrainerJob(
        job_id=job_id, optimize=request, upload_target="127.0.0.1:9", upload_token="unused"
    )


async def _one_optimization(
    stub: trainer_pb2_grpc.TrainerAsyncStub, job_id: str
) -> tuple[float, str, int]:
    """Cancel once the second trial is running (its first trial's event arrived): the cancel
    lands inside a trial's backtest. (latency ms, terminal state, trials kept)."""
    sent = 0.0
    async for event in stub.Train(_optimization(job_id)):
        if not sent and event.kind == ppb.EVENT_KIND_TRIAL:
            sent = time.perf_counter()
            await stub.Cancel(trainer_pb2.CancelRequest(job_id=job_id, reason="benchmark"))
        if event.state in (ppb.JOB_STATE_CANCELLED, ppb.JOB_STATE_FAILED, ppb.JOB_STATE_SUCCEEDED):
            kept = len(event.optimize_result.trials)
            return (time.perf_counter() - sent) * 1000.0, ppb.JobState.Name(event.state), kept
    raise RuntimeError("stream ended without a terminal event")


async def main_async(runs: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        server = await create_server(TrainerConfig(listen="127.0.0.1:0", work_dir=Path(tmp)))
        try:
            async with plumbing.create_channel(server.address) as channel:
                stub = trainer_pb2_grpc.TrainerStub(channel)
                latencies: list[float] = []
                round_trips: list[float] = []
                states: set[str] = set()
                for i in range(runs + 1):
                    latency, state = await _one(stub, f"cancel-{i}")
                    started = time.perf_counter()
                    await stub.GetInfo(trainer_pb2.GetInfoRequest())
                    rtt = (time.perf_counter() - started) * 1000.0
                    if i == 0:
                        continue  # warm-up
                    latencies.append(latency)
                    round_trips.append(rtt)
                    states.add(state)
                optimize: list[float] = []
                kept: list[int] = []
                for i in range(runs + 1):
                    latency, state, trials = await _one_optimization(stub, f"cancel-opt-{i}")
                    if i == 0:
                        continue  # warm-up
                    optimize.append(latency)
                    kept.append(trials)
                    states.add(state)
        finally:
            await server.stop(0)
    return {
        "runs": runs,
        "p50_ms": round(statistics.median(latencies), 3),
        "p99_ms": round(_percentile(latencies, 0.99), 3),
        "max_ms": round(max(latencies), 3),
        "unary_rtt_p50_ms": round(statistics.median(round_trips), 3),
        "ratio_p50_vs_unary_rtt": round(
            statistics.median(latencies) / statistics.median(round_trips), 2
        ),
        "optimize_p50_ms": round(statistics.median(optimize), 3),
        "optimize_p99_ms": round(_percentile(optimize, 0.99), 3),
        "optimize_max_ms": round(max(optimize), 3),
        "optimize_trials_kept_min": min(kept),
        "terminal_states": sorted(states),
        "goal": "p99 < 20 ms on CPU, training and inside an optimization trial",
    }


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args()
    runs = args.runs or (20 if args.quick else 50)
    report("cancel_latency", asyncio.run(main_async(runs)))


if __name__ == "__main__":
    main()
