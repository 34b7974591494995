"""End-to-end cancellation latency: ``Orchestrator.CancelJob`` → the watcher's CANCELLED event.

A real orchestrator and a real trainer node (grpc.aio, in-process, port 0, one event loop; the
trainer runs the pipeline on its worker thread) and one client channel to the orchestrator. Each
run submits a long training job (``SubmitJob``, huge epoch count), follows it with ``WatchJob``
until its first BATCH or EPOCH event (mid-training), then starts ``CancelJob`` and times until
the watcher receives the terminal ``JOB_STATE_CANCELLED`` event. The path measured:
orchestrator CancelJob → store write → ``Trainer.Cancel`` → the pipeline notices at its next
batch → the trainer's CANCELLED event → relay → store write → fan-out → watcher.

Baseline, same channel and same run: a bare unary round trip (``GetJob``), taken right after
each run's terminal event, so the latency can be read against the transport on this machine.
Runs ``--runs`` times after one warm-up run; reports p50/p99/max in milliseconds.

    .venv/bin/python benchmarks/e2e_cancel.py [--quick] [--runs N] [--bars N]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import base_parser, median, report
from shared.rpc import plumbing
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc
from shared.rpc.v1 import progress_pb2 as ppb
from shared.rpc.v1 import strategy_pb2 as spb

TERMINAL = (ppb.JOB_STATE_CANCELLED, ppb.JOB_STATE_FAILED, ppb.JOB_STATE_SUCCEEDED)
MID_TRAINING = (ppb.EVENT_KIND_BATCH, ppb.EVENT_KIND_EPOCH)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def _one(
    stub: orchestrator_pb2_grpc.OrchestratorAsyncStub, bars: int
) -> tuple[float, str, float, int, str, float]:
    """(CancelJob → CANCELLED ms, terminal state, CancelJob RPC ms, events after, job id,
    CancelJob → the trainer stamping its CANCELLED event, ms)."""
    request = spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"])
    request.strategy.training.epochs = 100_000
    request.data.bars = bars
    job = await stub.SubmitJob(request)
    sent = 0.0
    sent_wall = 0.0
    cancel: asyncio.Task[Any] | None = None
    cancel_done = 0.0
    after_cancel = 0

    async def call_cancel() -> None:
        nonlocal cancel_done
        await stub.CancelJob(opb.CancelJobRequest(job_id=job.job_id, reason="benchmark"))
        cancel_done = time.perf_counter()

    async for event in stub.WatchJob(opb.WatchJobRequest(job_id=job.job_id)):
        if cancel is None and event.kind in MID_TRAINING:
            sent = time.perf_counter()
            sent_wall = time.time()
            cancel = asyncio.create_task(call_cancel())
            continue
        if cancel is not None:
            after_cancel += 1
        if event.state in TERMINAL:
            received = time.perf_counter()
            if cancel is None:
                raise RuntimeError(f"job ended before training: {event.message}")
            await cancel
            return (
                (received - sent) * 1000.0,
                ppb.JobState.Name(event.state),
                (cancel_done - sent) * 1000.0,
                after_cancel,
                job.job_id,
                (event.time.ToNanoseconds() / 1e9 - sent_wall) * 1000.0,
            )
    raise RuntimeError("stream ended without a terminal event")


async def main_async(runs: int, bars: int) -> dict[str, Any]:
    from services.orchestrator.config import OrchestratorConfig
    from services.orchestrator.server import create_server as create_orchestrator
    from services.trainer.config import TrainerConfig
    from services.trainer.server import create_server as create_trainer

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        trainer = await create_trainer(
            TrainerConfig(listen="127.0.0.1:0", work_dir=root / "work", slots=1)
        )
        orchestrator = await create_orchestrator(
            OrchestratorConfig(
                listen="127.0.0.1:0", nodes=(trainer.address,), state_dir=root / "state"
            )
        )
        latencies: list[float] = []
        cancel_rpcs: list[float] = []
        round_trips: list[float] = []
        trailing: list[int] = []
        to_trainer: list[float] = []
        states: set[str] = set()
        try:
            async with plumbing.create_channel(orchestrator.address) as channel:
                stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
                for i in range(runs + 1):
                    latency, state, cancel_rpc, after, job_id, stamped = await _one(stub, bars)
                    started = time.perf_counter()
                    await stub.GetJob(opb.GetJobRequest(job_id=job_id), timeout=5)
                    rtt = (time.perf_counter() - started) * 1000.0
                    if i == 0:
                        continue  # warm-up
                    latencies.append(latency)
                    cancel_rpcs.append(cancel_rpc)
                    round_trips.append(rtt)
                    trailing.append(after)
                    to_trainer.append(stamped)
                    states.add(state)
                    print(
                        f"run {i}: {latency:.1f} ms (CancelJob RPC {cancel_rpc:.1f} ms, trainer "
                        f"stamped CANCELLED at {stamped:.1f} ms, "
                        f"{after} events after the cancel)",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            await orchestrator.stop(0)
            await trainer.stop(0)
    p50 = statistics.median(latencies)
    return {
        "runs": runs,
        "bars": bars,
        "p50_ms": round(p50, 3),
        "p99_ms": round(_percentile(latencies, 0.99), 3),
        "max_ms": round(max(latencies), 3),
        "cancel_rpc_p50_ms": round(median(cancel_rpcs), 3),
        "trainer_stamped_cancelled_p50_ms": round(median(to_trainer), 3),
        "trainer_stamped_cancelled_p99_ms": round(_percentile(to_trainer, 0.99), 3),
        "unary_rtt_p50_ms": round(median(round_trips), 3),
        "ratio_p50_vs_unary_rtt": round(p50 / median(round_trips), 2),
        "events_after_cancel_max": max(trailing),
        "terminal_states": sorted(states),
        "samples_ms": [round(v, 2) for v in latencies],
        "goal": "p99 < 30 ms",
        "notes": (
            "orchestrator + 1 trainer (slots=1) + client in one process and event loop; the "
            "pipeline trains on the trainer's worker thread; 2-core shared machine"
        ),
    }


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--bars", type=int, default=1200, help="synthetic bars per job")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch.set_num_threads before the servers start (default: torch's own choice)",
    )
    parser.add_argument(
        "--switch-interval-ms",
        type=float,
        default=None,
        help="set sys.setswitchinterval (GIL hand-over; Python's default is 5 ms) — an experiment",
    )
    args = parser.parse_args()
    runs = args.runs or args.repeats or (20 if args.quick else 50)
    if args.switch_interval_ms is not None:
        sys.setswitchinterval(args.switch_interval_ms / 1000.0)
    if args.torch_threads is not None:
        import torch

        torch.set_num_threads(args.torch_threads)
    results = asyncio.run(main_async(runs, args.bars))
    results["switch_interval_ms"] = sys.getswitchinterval() * 1000.0
    report("e2e_cancel", {**results, "quick": args.quick})


if __name__ == "__main__":
    main()
