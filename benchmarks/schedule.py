"""Scheduling throughput: many short real jobs over several trainer nodes.

One orchestrator and ``--trainers`` trainer nodes (``slots=1`` each), all in-process (one Python
process, one event loop, one GIL: the trainers' training threads and every server share this
machine's cores), and one client channel. ``--jobs`` real but tiny training jobs (the default
strategy on the synthetic market, ``epochs=1``, 600 ``bars``: a few hundred usable rows, the
zigzag threshold calibrated on them) are submitted with ``SubmitJob`` as fast as the client can
(all calls in flight at once), then the client polls ``ListJobs`` (unfinished states, one job
per page) until no job is left unfinished.

Reported, from the orchestrator's own job records and event timestamps (one clock, one process):
- ``jobs_per_s``: completed jobs / wall time (first SubmitJob sent → last job finished);
- scheduling delay p50/p99: the job's QUEUED event (created at submit) → its first RUNNING
  event (stamped by the trainer when the job starts on it). With more jobs than slots this is
  mostly queueing behind earlier jobs, so ``dispatch_delay`` is also reported: for each job, its
  first RUNNING event minus the moment a slot became free for it (the previous job on that node
  finished, or its own submission, whichever is later) — the placement loop's own latency;
- ``submit_ms``: how long the SubmitJob burst took;
- ``failures``: jobs not SUCCEEDED (must be 0).

    .venv/bin/python benchmarks/schedule.py [--quick] [--jobs N] [--trainers N]
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

from benchmarks.common import base_parser, report
from shared.rpc import plumbing
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import orchestrator_pb2_grpc
from shared.rpc.v1 import progress_pb2 as ppb
from shared.rpc.v1 import strategy_pb2 as spb

TERMINAL = (ppb.JOB_STATE_SUCCEEDED, ppb.JOB_STATE_FAILED, ppb.JOB_STATE_CANCELLED)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _seconds(ts: Any) -> float:
    return float(ts.ToNanoseconds()) / 1e9


async def _all_jobs(stub: orchestrator_pb2_grpc.OrchestratorAsyncStub) -> list[ppb.Job]:
    jobs: list[ppb.Job] = []
    token = ""
    while True:
        page = await stub.ListJobs(opb.ListJobsRequest(page_size=1000, page_token=token))
        jobs.extend(page.jobs)
        token = page.next_page_token
        if not token:
            return jobs


async def _timeline(
    stub: orchestrator_pb2_grpc.OrchestratorAsyncStub, job_id: str
) -> tuple[float, float]:
    """(QUEUED event time, first RUNNING event time) from the job's stored event log."""
    queued = running = 0.0
    async for event in stub.WatchJob(opb.WatchJobRequest(job_id=job_id, after_seq=0)):
        if event.state == ppb.JOB_STATE_QUEUED and not queued:
            queued = _seconds(event.time)
        if event.state == ppb.JOB_STATE_RUNNING and not running:
            running = _seconds(event.time)
    return queued, running


async def main_async(
    jobs: int, trainers: int, bars: int, epochs: int, timeout_s: float = 1800.0
) -> dict[str, Any]:
    from services.orchestrator.config import OrchestratorConfig
    from services.orchestrator.server import create_server as create_orchestrator
    from services.trainer.config import TrainerConfig
    from services.trainer.server import create_server as create_trainer

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        nodes = [
            await create_trainer(
                TrainerConfig(listen="127.0.0.1:0", work_dir=root / f"work-{i}", slots=1)
            )
            for i in range(trainers)
        ]
        orchestrator = await create_orchestrator(
            OrchestratorConfig(
                listen="127.0.0.1:0",
                nodes=tuple(n.address for n in nodes),
                state_dir=root / "state",
            )
        )
        try:
            async with plumbing.create_channel(orchestrator.address) as channel:
                stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
                request = spb.TrainRequest(symbols=["SYNTH"], timeframes=["1h"])
                request.strategy.training.epochs = epochs
                request.data.bars = bars
                # Tiny series: the zigzag threshold calibrated on them, so every split has
                # every class (the default 2 % leaves some empty, and the job is refused).
                request.strategy.labels.auto_threshold = True
                # Warm-up outside the measurement: one job per node's first run costs extra.
                warm = await stub.SubmitJob(request)
                async for event in stub.WatchJob(opb.WatchJobRequest(job_id=warm.job_id)):
                    if event.state in TERMINAL:
                        if event.state != ppb.JOB_STATE_SUCCEEDED:
                            raise RuntimeError(f"warm-up job failed: {event.message}")
                        break

                started = time.time()
                submitted = await asyncio.gather(*(stub.SubmitJob(request) for _ in range(jobs)))
                submit_s = time.time() - started
                ids = {job.job_id for job in submitted}
                if len(ids) != jobs:
                    raise RuntimeError(f"{jobs} submissions gave {len(ids)} distinct jobs")
                # Poll cheaply (one unfinished job per answer) so polling barely loads the loop.
                unfinished = opb.ListJobsRequest(
                    states=[ppb.JOB_STATE_QUEUED, ppb.JOB_STATE_RUNNING], page_size=1
                )
                deadline = time.monotonic() + timeout_s
                while (await stub.ListJobs(unfinished)).jobs:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"jobs still unfinished after {timeout_s:.0f} s")
                    await asyncio.sleep(0.25)
                records = [j for j in await _all_jobs(stub) if j.job_id in ids]
                timelines = [await _timeline(stub, job_id) for job_id in sorted(ids)]
        finally:
            await orchestrator.stop(0)
            for node in nodes:
                await node.stop(0)

    finished = max(_seconds(j.finished_at) for j in records)
    wall = finished - started
    failures = [j for j in records if j.state != ppb.JOB_STATE_SUCCEEDED]
    delays = [(running - queued) * 1000.0 for queued, running in timelines if running]
    dispatch = _dispatch_delays(records, dict(zip(sorted(ids), timelines, strict=True)))
    runtimes = [
        _seconds(j.finished_at) - _seconds(j.started_at) for j in records if j.started_at.seconds
    ]
    return {
        "jobs": jobs,
        "trainers": trainers,
        "slots_per_trainer": 1,
        "bars": bars,
        "epochs": epochs,
        "completed": len(records) - len(failures),
        "failures": len(failures),
        "failure_messages": sorted({j.message for j in failures})[:5],
        "wall_s": round(wall, 3),
        "jobs_per_s": round((len(records) - len(failures)) / wall, 3),
        "submit_ms": round(submit_s * 1000.0, 1),
        "scheduling_delay_p50_ms": round(statistics.median(delays), 1),
        "scheduling_delay_p99_ms": round(_percentile(delays, 0.99), 1),
        "dispatch_delay_p50_ms": round(statistics.median(dispatch), 2),
        "dispatch_delay_p99_ms": round(_percentile(dispatch, 0.99), 2),
        "job_runtime_p50_s": round(statistics.median(runtimes), 3),
        "jobs_per_trainer": _per_node(records),
    }


def _dispatch_delays(
    records: list[ppb.Job], timelines: dict[str, tuple[float, float]]
) -> list[float]:
    """Per job: first RUNNING minus max(its submission, the previous job on its node finished)."""
    by_node: dict[str, list[ppb.Job]] = {}
    for job in records:
        by_node.setdefault(job.node, []).append(job)
    out: list[float] = []
    for node_jobs in by_node.values():
        node_jobs.sort(key=lambda j: timelines[j.job_id][1])
        free_at = 0.0
        for job in node_jobs:
            queued, running = timelines[job.job_id]
            if running:
                out.append((running - max(queued, free_at)) * 1000.0)
            free_at = _seconds(job.finished_at)
    return out


def _per_node(records: list[ppb.Job]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job in records:
        counts[job.node] = counts.get(job.node, 0) + 1
    return dict(sorted(counts.items()))


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--jobs", type=int, default=None)
    parser.add_argument("--trainers", type=int, default=4)
    parser.add_argument(
        "--bars", type=int, default=600, help="synthetic bars (enough for three usable splits)"
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch.set_num_threads before the servers start (default: torch's own choice)",
    )
    args = parser.parse_args()
    jobs = args.jobs or (100 if args.quick else 500)
    if args.torch_threads is not None:
        import torch

        torch.set_num_threads(args.torch_threads)
    results = asyncio.run(main_async(jobs, args.trainers, args.bars, args.epochs))
    report(
        "schedule",
        {
            **results,
            "quick": args.quick,
            "notes": (
                f"{args.trainers} trainers + orchestrator + client in one process (one GIL) on "
                "this machine's cores; timings from the orchestrator's job records; "
                + ("--quick: fewer jobs" if args.quick and not args.jobs else "")
            ),
        },
    )


if __name__ == "__main__":
    main()
