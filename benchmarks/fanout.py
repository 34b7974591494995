"""Fan-out throughput: events per second delivered to N watchers, orchestrator vs raw grpc.aio.

Orchestrator case. A real in-process orchestrator (``create_server``, SQLite job store in a
temporary ``--state-dir``, no trainer nodes). A job is created through its ``JobBook``
(``book.create_job``), exactly as ``SubmitJob`` does minus dispatch, and N watchers call
``WatchJob(job_id, after_seq=0)``. Once every watcher holds the job's first event (QUEUED), M
RUNNING/BATCH events are appended with ``JobBook.append`` at full speed (yielding to the event
loop after each, as the relay does between trainer messages), then a terminal event. The measured
path is therefore the real one: re-sequencing, the SQLite write of every event (the store
writer's thread commits what queued up in one transaction; watchers get an event once it is
committed), the fold and wake-up, and per watcher
``serde.event_to_proto`` + serialisation + gRPC to the watcher.

Raw case (the baseline). A minimal grpc.aio server built with the same ``plumbing`` options, whose
one server-streaming method serves pre-built ``ProgressEvent`` messages of the same content and
size from a shared in-memory list, with the same wake-up scheme (each watcher holds an index, one
``asyncio.Event`` per append). No store, no conversion.

Watchers run in a separate client process (spawned before any gRPC object exists), spread over
``--channels`` channels, and receive raw bytes (no client-side parsing, except the last message,
which is checked to be terminal) so that the server side is what is measured. Elapsed time runs
from the first append to the last watcher receiving the terminal event (CLOCK_MONOTONIC, shared
by both processes); events/s delivered = N x (M + 1) / elapsed. Orchestrator and raw trials are
interleaved per N and repeated; medians are reported, with the ratio and the server process's CPU
time per delivered event (all its threads, i.e. including gRPC's).

``--profile`` runs one extra orchestrator trial per N under cProfile (the event-loop thread) and
prints the top functions to stderr.

    .venv/bin/python benchmarks/fanout.py [--quick] [--repeats N] [--events M] [--profile]
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import multiprocessing
import multiprocessing.connection
import pstats
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import base_parser, median, report
from shared.jobs import EventKind, JobError, JobEvent, JobState
from shared.rpc import plumbing, serde
from shared.rpc.v1 import orchestrator_pb2 as opb
from shared.rpc.v1 import progress_pb2 as ppb

ORCHESTRATOR_METHOD = "/trainwire.v1.Orchestrator/WatchJob"
RAW_SERVICE = "bench.RawFanout"
RAW_METHOD = f"/{RAW_SERVICE}/Watch"
CLIENT_TIMEOUT_S = 300.0
TERMINAL = (ppb.JOB_STATE_SUCCEEDED, ppb.JOB_STATE_FAILED, ppb.JOB_STATE_CANCELLED)


# -- the events ----------------------------------------------------------------------------------


def _batch_events(m: int) -> list[JobEvent]:
    """M realistic mid-training BATCH events (what a trainer relays), built before timing."""
    batches = 500
    out = []
    for i in range(m):
        epoch, batch = divmod(i, batches)
        out.append(
            JobEvent(
                job_id="",
                seq=0,
                time=1_700_000_000.0 + i * 0.3,
                state=JobState.RUNNING,
                kind=EventKind.BATCH,
                percentage=40.0 + 50.0 * i / max(m, 1),
                message=f"Epoch {epoch + 1}/100 · Batch {batch + 1}/{batches}",
                step_index=9,
                step_total=12,
                step_name="Training model",
                step_percentage=100.0 * i / max(m, 1),
                epoch=epoch + 1,
                total_epochs=100,
                batch=batch + 1,
                total_batches=batches,
                metrics={"loss": 1.0 / (i + 1), "accuracy": 0.33 + i * 1e-5, "learning_rate": 1e-3},
                eta_seconds=120.0 - i * 0.01,
                node="127.0.0.1:50052",
                device="cpu",
            )
        )
    return out


def _terminal_event() -> JobEvent:
    return JobEvent(
        job_id="",
        seq=0,
        time=time.time(),
        state=JobState.CANCELLED,
        kind=EventKind.LIFECYCLE,
        message="Cancelled: benchmark over",
        node="127.0.0.1:50052",
        error=JobError(code="CANCELLED", message="benchmark over", where="orchestrator"),
    )


# -- the raw baseline server ---------------------------------------------------------------------


@dataclass
class _RawLog:
    messages: list[ppb.ProgressEvent]
    changed: asyncio.Event
    done: bool = False

    def append(self, message: ppb.ProgressEvent, *, terminal: bool = False) -> None:
        self.messages.append(message)
        self.done = terminal
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()


class _RawServer:
    """Streams a shared list of pre-built ProgressEvents to any number of watchers."""

    def __init__(self) -> None:
        self.logs: dict[str, _RawLog] = {}

    async def watch(
        self, request: opb.WatchJobRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[ppb.ProgressEvent]:
        log = self.logs[request.job_id]
        index = request.after_seq
        while True:
            changed = log.changed
            while index < len(log.messages):
                message = log.messages[index]
                index += 1
                yield message
            if log.done:
                return
            await changed.wait()

    def handler(self) -> grpc.GenericRpcHandler[Any, Any]:
        return grpc.method_handlers_generic_handler(
            RAW_SERVICE,
            {
                "Watch": grpc.unary_stream_rpc_method_handler(
                    self.watch,
                    request_deserializer=opb.WatchJobRequest.FromString,
                    response_serializer=ppb.ProgressEvent.SerializeToString,
                )
            },
        )


# -- the client process --------------------------------------------------------------------------


def _client_main(conn: multiprocessing.connection.Connection) -> None:
    asyncio.run(_client_loop(conn))


async def _client_loop(conn: multiprocessing.connection.Connection) -> None:
    while True:
        command = await asyncio.to_thread(conn.recv)
        if command[0] == "quit":
            return
        _, target, method, job_id, n, channels = command
        try:
            conn.send(await _client_trial(conn, target, method, job_id, n, channels))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


async def _client_trial(
    conn: multiprocessing.connection.Connection,
    target: str,
    method: str,
    job_id: str,
    n: int,
    channels: int,
) -> tuple[str, float, list[int], bool, float]:
    chans = [plumbing.create_channel(target) for _ in range(max(1, min(channels, n)))]
    attached = 0
    all_attached = asyncio.Event()
    counts = [0] * n
    last_at = [0.0] * n
    last_message = [b""] * n
    failures: list[BaseException] = []

    async def one(i: int) -> None:
        nonlocal attached
        call = chans[i % len(chans)].unary_stream(
            method,
            request_serializer=opb.WatchJobRequest.SerializeToString,
            response_deserializer=None,  # bytes: keep the client's cost off the measurement
        )(opb.WatchJobRequest(job_id=job_id, after_seq=0))
        try:
            async for message in call:
                counts[i] += 1
                last_message[i] = message
                last_at[i] = time.monotonic()
                if counts[i] == 1:
                    attached += 1
                    if attached == n:
                        all_attached.set()
        except Exception as exc:
            failures.append(exc)
            all_attached.set()  # do not wait for a watcher that will never attach
            raise

    try:
        for chan in chans:
            await chan.channel_ready()
        tasks = [asyncio.create_task(one(i)) for i in range(n)]
        await all_attached.wait()
        if failures:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise failures[0]
        conn.send(("ready",))
        cpu0 = time.process_time()
        await asyncio.gather(*tasks)
        cpu = time.process_time() - cpu0
    finally:
        for chan in chans:
            await chan.close(None)
    terminal_ok = all(ppb.ProgressEvent.FromString(m).state in TERMINAL for m in last_message)
    return ("done", max(last_at), counts, terminal_ok, cpu)


# -- one trial -----------------------------------------------------------------------------------


@dataclass
class Trial:
    elapsed_s: float
    delivered: int
    server_cpu_s: float
    client_cpu_s: float

    @property
    def events_per_s(self) -> float:
        return self.delivered / self.elapsed_s


async def _run_trial(
    conn: multiprocessing.connection.Connection,
    target: str,
    method: str,
    job_id: str,
    n: int,
    channels: int,
    produce: Callable[[], Awaitable[None]],
    expected: int,
) -> Trial:
    conn.send(("trial", target, method, job_id, n, channels))
    await _expect(conn, "ready")
    cpu0 = time.process_time()
    t0 = time.monotonic()
    await produce()
    _, last_at, counts, terminal_ok, client_cpu = await _expect(conn, "done")
    server_cpu = time.process_time() - cpu0
    if not terminal_ok or any(c != expected for c in counts):
        raise RuntimeError(
            f"{method}: watchers got {sorted(set(counts))} messages, expected {expected}"
        )
    # Each watcher also received the first (QUEUED) event before timing started.
    return Trial(last_at - t0, n * (expected - 1), server_cpu, client_cpu)


async def _expect(conn: multiprocessing.connection.Connection, kind: str) -> Any:
    """The client's next message, which must be ``kind``; its error or silence raises."""

    def receive() -> Any:
        if not conn.poll(CLIENT_TIMEOUT_S):
            raise TimeoutError(f"the client process said nothing for {CLIENT_TIMEOUT_S:.0f} s")
        return conn.recv()

    message = await asyncio.to_thread(receive)
    if message[0] != kind:
        raise RuntimeError(f"client process: {message}")
    return message


# -- the benchmark -------------------------------------------------------------------------------


@dataclass
class _Bench:
    """Everything a trial needs: the client pipe, both servers, the job request."""

    conn: multiprocessing.connection.Connection
    orchestrator: Any
    raw: _RawServer
    raw_address: str
    request: Any
    terminal: JobEvent
    channels: int
    counter: int = 0

    async def orchestrator_trial(self, n: int, batch: list[JobEvent]) -> Trial:
        book = self.orchestrator.book
        job_id = (await book.create_job(self.request))[0].job_id

        async def produce() -> None:
            for event in batch:
                book.append(job_id, event)
                await asyncio.sleep(0)
            book.append(job_id, replace(self.terminal, time=time.time()))

        return await _run_trial(
            self.conn,
            self.orchestrator.address,
            ORCHESTRATOR_METHOD,
            job_id,
            n,
            self.channels,
            produce,
            len(batch) + 2,
        )

    async def raw_trial(self, n: int, batch: list[JobEvent]) -> Trial:
        self.counter += 1
        job_id = f"{self.counter:016x}"
        log = _RawLog([], asyncio.Event())
        log.append(serde.event_to_proto(_queued(job_id)))
        # The orchestrator's re-sequencing, done before timing: pre-built messages.
        messages = [
            serde.event_to_proto(replace(e, job_id=job_id, seq=i + 2)) for i, e in enumerate(batch)
        ]
        last = serde.event_to_proto(replace(self.terminal, job_id=job_id, seq=len(batch) + 2))
        self.raw.logs[job_id] = log

        async def produce() -> None:
            for message in messages:
                log.append(message)
                await asyncio.sleep(0)
            log.append(last, terminal=True)

        try:
            return await _run_trial(
                self.conn,
                self.raw_address,
                RAW_METHOD,
                job_id,
                n,
                self.channels,
                produce,
                len(batch) + 2,
            )
        finally:
            del self.raw.logs[job_id]


async def main_async(
    sizes: list[int], events: dict[int, int], repeats: int, channels: int, profile: bool
) -> dict[str, Any]:
    from services.orchestrator.config import OrchestratorConfig
    from services.orchestrator.server import create_server
    from shared.spec import TrainingRequest, default_strategy

    ctx = multiprocessing.get_context("spawn")
    conn, child_conn = ctx.Pipe()
    client = ctx.Process(target=_client_main, args=(child_conn,), daemon=True)
    client.start()

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        orch = await create_server(
            OrchestratorConfig(listen="127.0.0.1:0", nodes=(), state_dir=Path(tmp))
        )
        raw_server = _RawServer()
        raw = plumbing.create_server()
        raw.add_generic_rpc_handlers((raw_server.handler(),))
        raw_port = plumbing.bind(raw, "127.0.0.1:0")
        await raw.start()
        bench = _Bench(
            conn=conn,
            orchestrator=orch,
            raw=raw_server,
            raw_address=f"127.0.0.1:{raw_port}",
            request=TrainingRequest(
                symbols=("SYNTH",), timeframes=("1h",), strategy=default_strategy()
            ),
            terminal=_terminal_event(),
            channels=channels,
        )
        try:
            for n in sizes:
                m = events[n]
                batch = _batch_events(m)
                if n == sizes[0]:  # warm-up: a small round of each (code paths, SQLite pages)
                    await bench.orchestrator_trial(n, batch[:50])
                    await bench.raw_trial(n, batch[:50])
                orch_trials: list[Trial] = []
                raw_trials: list[Trial] = []
                for _ in range(repeats):
                    orch_trials.append(await bench.orchestrator_trial(n, batch))
                    raw_trials.append(await bench.raw_trial(n, batch))
                    print(
                        f"N={n} M={m}: orchestrator {orch_trials[-1].events_per_s:,.0f} ev/s, "
                        f"raw {raw_trials[-1].events_per_s:,.0f} ev/s",
                        file=sys.stderr,
                        flush=True,
                    )
                results[str(n)] = _summary(n, m, orch_trials, raw_trials)
                if profile:
                    profiler = cProfile.Profile()
                    profiler.enable()
                    await bench.orchestrator_trial(n, batch)
                    profiler.disable()
                    out = io.StringIO()
                    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
                    print(f"--- cProfile, orchestrator, N={n}, M={m} ---", file=sys.stderr)
                    print(out.getvalue(), file=sys.stderr, flush=True)
            sample = orch.book.events(orch.book.listing([])[0].job_id)
            message_bytes = serde.event_to_proto(sample[1]).ByteSize()
            append_cost = await _append_cost(
                orch.book, bench.request, _batch_events(500), bench.terminal
            )
        finally:
            conn.send(("quit",))
            client.join(timeout=10)
            await raw.stop(0)
            await orch.stop(0)
    return {"per_n": results, "message_bytes": message_bytes, "append": append_cost}


async def _append_cost(
    book: Any, request: Any, batch: list[JobEvent], terminal: JobEvent
) -> dict[str, float]:
    """µs per ``JobBook.append`` with no watchers, until the store committed the last: the real
    SQLite store vs an in-memory one."""
    from services.orchestrator.jobs import JobBook
    from services.orchestrator.store import MemoryJobStore

    out: dict[str, float] = {}
    for name, target in (("sqlite", book), ("memory", JobBook(MemoryJobStore()))):
        samples = []
        for _ in range(3):
            job_id = (await target.create_job(request))[0].job_id
            start = time.perf_counter()
            for event in batch:
                target.append(job_id, event)
            await target.flushed()
            samples.append((time.perf_counter() - start) / len(batch) * 1e6)
            target.append(job_id, terminal)
            await target.flushed()
        out[f"{name}_us_per_append"] = round(median(samples), 2)
    out["sqlite_share_us"] = round(out["sqlite_us_per_append"] - out["memory_us_per_append"], 2)
    return out


def _queued(job_id: str) -> JobEvent:
    return JobEvent(
        job_id=job_id,
        seq=1,
        time=time.time(),
        state=JobState.QUEUED,
        kind=EventKind.LIFECYCLE,
        message="Queued",
    )


def _summary(n: int, m: int, orch: list[Trial], raw: list[Trial]) -> dict[str, Any]:
    orch_rate = median([t.events_per_s for t in orch])
    raw_rate = median([t.events_per_s for t in raw])
    orch_cpu = median([t.server_cpu_s / t.delivered * 1e6 for t in orch])
    raw_cpu = median([t.server_cpu_s / t.delivered * 1e6 for t in raw])
    return {
        "watchers": n,
        "events": m,
        "orchestrator_events_per_s": round(orch_rate),
        "raw_events_per_s": round(raw_rate),
        "ratio_vs_raw": round(orch_rate / raw_rate, 3),
        "orchestrator_elapsed_s": round(median([t.elapsed_s for t in orch]), 3),
        "raw_elapsed_s": round(median([t.elapsed_s for t in raw]), 3),
        "orchestrator_server_cpu_us_per_delivery": round(orch_cpu, 2),
        "raw_server_cpu_us_per_delivery": round(raw_cpu, 2),
        "client_cpu_us_per_delivery": round(
            median([t.client_cpu_s / t.delivered * 1e6 for t in orch + raw]), 2
        ),
        "orchestrator_samples": [round(t.events_per_s) for t in orch],
        "raw_samples": [round(t.events_per_s) for t in raw],
    }


def main() -> None:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--events", type=int, default=None, help="M events per trial (all N)")
    parser.add_argument("--watchers", type=str, default="10,100,1000", help="N values, comma list")
    parser.add_argument("--channels", type=int, default=50, help="client channels (connections)")
    parser.add_argument("--profile", action="store_true", help="cProfile one orchestrator trial")
    args = parser.parse_args()
    sizes = [int(s) for s in args.watchers.split(",")]
    repeats = args.repeats or (1 if args.quick else 3)
    if args.events:
        events = {n: args.events for n in sizes}
    elif args.quick:
        events = {n: max(20, min(500, 20_000 // n)) for n in sizes}
    else:
        events = {n: max(50, min(2000, 100_000 // n)) for n in sizes}
    out = asyncio.run(main_async(sizes, events, repeats, args.channels, args.profile))
    per_n = out["per_n"]
    report(
        "fanout",
        {
            "ratio_vs_raw": {k: v["ratio_vs_raw"] for k, v in per_n.items()},
            "orchestrator_events_per_s": {
                k: v["orchestrator_events_per_s"] for k, v in per_n.items()
            },
            "raw_events_per_s": {k: v["raw_events_per_s"] for k, v in per_n.items()},
            "events": {k: v["events"] for k, v in per_n.items()},
            "repeats": repeats,
            "quick": args.quick,
            "channels": args.channels,
            "message_bytes": out["message_bytes"],
            "append_cost": out["append"],
            "server_cpu_ratio_raw_over_orchestrator": {
                k: round(
                    v["raw_server_cpu_us_per_delivery"]
                    / v["orchestrator_server_cpu_us_per_delivery"],
                    3,
                )
                for k, v in per_n.items()
            },
            "per_n": per_n,
            "goal": "ratio_vs_raw >= 0.7",
            "notes": (
                "server (orchestrator or raw) in this process, watchers in one spawned client "
                "process receiving bytes; orchestrator path includes the SQLite write of every "
                "event (group commit on the store writer's thread); 2-core shared machine"
            ),
        },
    )


if __name__ == "__main__":
    main()
