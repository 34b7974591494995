"""Fan-out over HTTP: a job's events as Server-Sent Events to N watchers vs gRPC WatchJob.

One real in-process orchestrator (``create_server`` with ``--http-listen``, SQLite job store in
a temporary ``--state-dir``, no trainer nodes) serves both. Per trial a job is created through
its ``JobBook`` (as ``SubmitJob`` does minus dispatch) and N watchers attach from a separate
client process: either N ``GET /api/v1/jobs/{id}/events`` streams (one HTTP/1.1 connection
each, as N browser tabs would have) or N ``WatchJob`` calls (one channel each, the same number
of connections). Once every watcher holds the job's first event, M RUNNING/BATCH events are
appended with ``JobBook.append`` (yielding to the loop after each, as the trainer relay does),
then a terminal one. Elapsed time runs from the first append to the last watcher receiving the
terminal event (CLOCK_MONOTONIC, shared by both processes); events/s delivered = N x (M + 1) /
elapsed. SSE and gRPC trials alternate and repeat; medians are reported, with their ratio
``ratio_vs_grpc`` (goal >= 0.5) and the server's CPU time per delivered event.

The watchers receive bytes without parsing them (SSE: frames counted by their blank-line
ends; gRPC: raw messages), except the last event, which is checked to be terminal, so the
server side is what is measured. Both sides share the 2 cores of the benchmark machine.

    .venv/bin/python benchmarks/http_fanout.py [--quick] [--repeats N] [--events M] [--watchers N]
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import multiprocessing.connection
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import base_parser, median, report
from benchmarks.fanout import _batch_events, _terminal_event
from shared.jobs import JobEvent

WATCH_METHOD = "/trainwire.v1.Orchestrator/WatchJob"
CLIENT_TIMEOUT_S = 300.0
TERMINAL_NAMES = ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED")


# -- the client process ----------------------------------------------------------------------


def _client_main(conn: multiprocessing.connection.Connection) -> None:
    asyncio.run(_client_loop(conn))


async def _client_loop(conn: multiprocessing.connection.Connection) -> None:
    while True:
        command = await asyncio.to_thread(conn.recv)
        if command[0] == "quit":
            return
        _, kind, target, job_id, n = command
        try:
            trial = _sse_trial if kind == "sse" else _grpc_trial
            conn.send(await trial(conn, target, job_id, n))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


async def _watchers(
    conn: multiprocessing.connection.Connection,
    n: int,
    one: Callable[[int, Callable[[], None]], Awaitable[None]],
) -> float:
    """Run ``n`` watchers; say "ready" once each has its first event; CPU seconds spent."""
    attached = 0
    all_attached = asyncio.Event()
    failures: list[BaseException] = []

    def first() -> None:
        nonlocal attached
        attached += 1
        if attached == n:
            all_attached.set()

    async def guarded(i: int) -> None:
        try:
            await one(i, first)
        except Exception as exc:
            failures.append(exc)
            all_attached.set()
            raise

    tasks = [asyncio.create_task(guarded(i)) for i in range(n)]
    await all_attached.wait()
    if failures:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise failures[0]
    conn.send(("ready",))
    cpu0 = time.process_time()
    await asyncio.gather(*tasks)
    return time.process_time() - cpu0


async def _sse_trial(
    conn: multiprocessing.connection.Connection, url: str, job_id: str, n: int
) -> tuple[str, float, list[int], bool, float]:
    import aiohttp

    counts = [0] * n
    last_at = [0.0] * n
    tails = [b""] * n
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(i: int, first: Callable[[], None]) -> None:
            frames = 0
            previous, last = b"", b""  # the last two chunks, kept by reference, not copied
            async with session.get(f"{url}api/v1/jobs/{job_id}/events") as resp:
                resp.raise_for_status()
                async for chunk in resp.content.iter_any():
                    frames += chunk.count(b"\n\n")
                    if last[-1:] == b"\n" and chunk[:1] == b"\n":  # a frame end split in two
                        frames += 1
                    previous, last = last, chunk
                    last_at[i] = time.monotonic()
                    if counts[i] == 0 and frames >= 2:  # retry: + the first event
                        first()
                    counts[i] = frames - 1
            tails[i] = previous + last

        cpu = await _watchers(conn, n, one)
    terminal_ok = all(_sse_terminal(t) for t in tails)
    return ("done", max(last_at), counts, terminal_ok, cpu)


def _sse_terminal(tail: bytes) -> bool:
    frames = [f for f in tail.split(b"\n\n") if f.strip()]
    data = [line[6:] for line in frames[-1].split(b"\n") if line.startswith(b"data: ")]
    return bool(data) and json.loads(data[-1]).get("state") in TERMINAL_NAMES


async def _grpc_trial(
    conn: multiprocessing.connection.Connection, target: str, job_id: str, n: int
) -> tuple[str, float, list[int], bool, float]:
    from shared.rpc import plumbing
    from shared.rpc.v1 import orchestrator_pb2 as opb
    from shared.rpc.v1 import progress_pb2 as ppb

    channels = [plumbing.create_channel(target) for _ in range(n)]
    counts = [0] * n
    last_at = [0.0] * n
    last_message = [b""] * n
    try:
        for channel in channels:
            await channel.channel_ready()

        async def one(i: int, first: Callable[[], None]) -> None:
            call = channels[i].unary_stream(
                WATCH_METHOD,
                request_serializer=opb.WatchJobRequest.SerializeToString,
                response_deserializer=None,  # bytes: keep the client's cost off the measurement
            )(opb.WatchJobRequest(job_id=job_id, after_seq=0))
            async for message in call:
                counts[i] += 1
                last_message[i] = message
                last_at[i] = time.monotonic()
                if counts[i] == 1:
                    first()

        cpu = await _watchers(conn, n, one)
    finally:
        for channel in channels:
            await channel.close(None)
    terminal = (ppb.JOB_STATE_SUCCEEDED, ppb.JOB_STATE_FAILED, ppb.JOB_STATE_CANCELLED)
    ok = all(ppb.ProgressEvent.FromString(m).state in terminal for m in last_message)
    return ("done", max(last_at), counts, ok, cpu)


# -- the server side ---------------------------------------------------------------------------


@dataclass
class Trial:
    elapsed_s: float
    delivered: int
    server_cpu_s: float

    @property
    def events_per_s(self) -> float:
        return self.delivered / self.elapsed_s


async def _expect(conn: multiprocessing.connection.Connection, kind: str) -> Any:
    def receive() -> Any:
        if not conn.poll(CLIENT_TIMEOUT_S):
            raise TimeoutError(f"the client process said nothing for {CLIENT_TIMEOUT_S:.0f} s")
        return conn.recv()

    message = await asyncio.to_thread(receive)
    if message[0] != kind:
        raise RuntimeError(f"client process: {message}")
    return message


async def _trial(
    conn: multiprocessing.connection.Connection,
    orchestrator: Any,
    kind: str,
    n: int,
    batch: list[JobEvent],
    request: Any,
) -> Trial:
    book = orchestrator.book
    job_id = book.create(request)[0].job_id
    target = orchestrator.http.url if kind == "sse" else orchestrator.address
    conn.send(("trial", kind, target, job_id, n))
    await _expect(conn, "ready")
    cpu0 = time.process_time()
    t0 = time.monotonic()
    for event in batch:
        book.append(job_id, event)
        await asyncio.sleep(0)
    book.append(job_id, replace(_terminal_event(), time=time.time()))
    _, last_at, counts, terminal_ok, _client_cpu = await _expect(conn, "done")
    server_cpu = time.process_time() - cpu0
    expected = len(batch) + 2
    if not terminal_ok or any(c != expected for c in counts):
        raise RuntimeError(f"{kind}: watchers got {sorted(set(counts))} events, not {expected}")
    return Trial(last_at - t0, n * (expected - 1), server_cpu)


async def main_async(n: int, m: int, repeats: int) -> dict[str, Any]:
    from services.orchestrator.config import OrchestratorConfig
    from services.orchestrator.server import create_server
    from shared.spec import TrainingRequest, default_strategy

    ctx = multiprocessing.get_context("spawn")
    conn, child_conn = ctx.Pipe()
    client = ctx.Process(target=_client_main, args=(child_conn,), daemon=True)
    client.start()
    request = TrainingRequest(symbols=("SYNTH",), timeframes=("1h",), strategy=default_strategy())
    batch = _batch_events(m)
    trials: dict[str, list[Trial]] = {"sse": [], "grpc": []}
    with tempfile.TemporaryDirectory() as tmp:
        orchestrator = await create_server(
            OrchestratorConfig(listen="127.0.0.1:0", http_listen="127.0.0.1:0", state_dir=Path(tmp))
        )
        try:
            for kind in ("sse", "grpc"):  # warm-up: code paths, SQLite pages, connections
                await _trial(conn, orchestrator, kind, n, batch[:50], request)
            for r in range(repeats):
                order = ("sse", "grpc") if r % 2 == 0 else ("grpc", "sse")
                for kind in order:
                    trials[kind].append(await _trial(conn, orchestrator, kind, n, batch, request))
                print(
                    f"N={n} M={m}: SSE {trials['sse'][-1].events_per_s:,.0f} ev/s, "
                    f"gRPC {trials['grpc'][-1].events_per_s:,.0f} ev/s",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            conn.send(("quit",))
            client.join(timeout=10)
            await orchestrator.stop(0)
    return _summary(trials)


def _summary(trials: dict[str, list[Trial]]) -> dict[str, Any]:
    sse = median([t.events_per_s for t in trials["sse"]])
    grpc = median([t.events_per_s for t in trials["grpc"]])
    ratios = sorted(
        s.events_per_s / g.events_per_s for s, g in zip(trials["sse"], trials["grpc"], strict=True)
    )
    return {
        "ratio_vs_grpc": round(sse / grpc, 3),
        "ratio_range": [round(ratios[0], 3), round(ratios[-1], 3)],
        "sse_events_per_s": round(sse),
        "grpc_events_per_s": round(grpc),
        "sse_server_cpu_us_per_delivery": round(
            median([t.server_cpu_s / t.delivered * 1e6 for t in trials["sse"]]), 2
        ),
        "grpc_server_cpu_us_per_delivery": round(
            median([t.server_cpu_s / t.delivered * 1e6 for t in trials["grpc"]]), 2
        ),
        "sse_samples": [round(t.events_per_s) for t in trials["sse"]],
        "grpc_samples": [round(t.events_per_s) for t in trials["grpc"]],
    }


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--events", type=int, default=None, help="M events per trial")
    parser.add_argument("--watchers", type=int, default=100, help="N concurrent watchers")
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 5)
    m = args.events or (200 if args.quick else 1000)
    out = asyncio.run(main_async(args.watchers, m, repeats))
    report(
        "http_fanout",
        {
            **out,
            "watchers": args.watchers,
            "events": m,
            "repeats": repeats,
            "quick": args.quick,
            "goal": "ratio_vs_grpc >= 0.5",
            "notes": (
                "one orchestrator in this process serves both; watchers in one spawned client "
                "process, one connection each (HTTP/1.1 SSE vs gRPC channel), receiving bytes; "
                "both paths include the SQLite write of every event; 2-core shared machine"
            ),
        },
    )


if __name__ == "__main__":
    main()
