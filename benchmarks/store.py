"""Job store at scale: orchestrator start-up time and memory with a full store vs an empty one,
and event append throughput.

The full store. A SQLite job store (``SqliteJobStore``, the orchestrator's default
``jobs.sqlite3`` under ``--state-dir``) holding ``--jobs`` finished jobs of ``--events`` events
each: QUEUED, RUNNING (started on a node), BATCH events (RUNNING, with metrics, as a trainer
relays them), and a terminal SUCCEEDED event with a result. The schema is created by opening a
``SqliteJobStore``; the rows are then written with ``executemany`` against that schema in one
transaction. The store's own ``insert_job`` is one transaction per job and converts every event
with ``serde.event_to_proto`` (the store offers no bulk insert), which at a million events would
make the fill, not the measurement, the bulk of the run. The rows are what the store writes
itself: event blobs are ``serde.event_to_proto(event).SerializeToString()`` (one converted
message per seq, its ``job_id`` set per job), the request blob is
``serde.request_to_proto(request)``, ``jobs.state`` is the last event's state, ``last_seq`` and
``started_at`` the job's summary. After the measurement the process lists every job (read back
from the store) and checks the count, that all are SUCCEEDED and the event count, so a fill the
store would read differently fails the run.

Start-up. Each trial is a fresh Python process (so its peak RSS is its own) which imports the
orchestrator, then times ``create_server(OrchestratorConfig(listen="127.0.0.1:0",
state_dir=...))`` from the call until it returns (the gRPC server started and serving: store
opened, ``JobBook`` loaded, dispatcher recovered), checks with one health ``Check`` that it
serves, and reports that time and its peak RSS (``VmHWM``). Full-store and empty-store trials
are interleaved and repeated; medians are reported with min-max, and the ratios full / empty.
The RSS of the process just before the measured section (interpreter + imports) is reported too.

Append throughput. ``JobBook.append`` of BATCH events on one RUNNING job with no watchers, events
per second from the first append until the store has committed the last (the store writer
groups what queued up into one transaction), yielding to the event loop after each append as the
relay does; for the SQLite store and the memory store (``memory:``), interleaved, median of the
runs.

    .venv/bin/python benchmarks/store.py [--quick] [--repeats N] [--jobs N] [--events M]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import base_parser, median, report
from shared.jobs import EventKind, JobEvent, JobState, TrainResult
from shared.rpc import serde
from shared.spec import TrainingRequest, default_strategy

NODE = "127.0.0.1:50052"
CHILD_TIMEOUT_S = 600.0


# -- the events ----------------------------------------------------------------------------------


def _request() -> TrainingRequest:
    return TrainingRequest(symbols=("SYNTH",), timeframes=("1h",), strategy=default_strategy())


def _job_events(m: int, start: float) -> list[JobEvent]:
    """One finished job's ``m`` events (``m >= 3``), seq 1..m, ``job_id`` left empty."""
    if m < 3:
        raise ValueError("a finished job needs at least 3 events (QUEUED, RUNNING, SUCCEEDED)")
    batches = m - 3
    out = [
        JobEvent(
            job_id="",
            seq=1,
            time=start,
            state=JobState.QUEUED,
            kind=EventKind.LIFECYCLE,
            message="Queued",
        ),
        JobEvent(
            job_id="",
            seq=2,
            time=start + 0.1,
            state=JobState.RUNNING,
            kind=EventKind.LIFECYCLE,
            message=f"Started on {NODE}",
            node=NODE,
            device="cpu",
        ),
    ]
    for i in range(batches):
        out.append(_batch_event(i, batches, seq=3 + i, time=start + 0.2 + i * 0.3))
    out.append(
        JobEvent(
            job_id="",
            seq=m,
            time=start + 0.3 + batches * 0.3,
            state=JobState.SUCCEEDED,
            kind=EventKind.LIFECYCLE,
            percentage=100.0,
            message="Training complete",
            node=NODE,
            device="cpu",
            result=TrainResult(
                training_metrics={"loss": 0.12, "accuracy": 0.61},
                test_metrics={"loss": 0.15, "accuracy": 0.58},
                feature_importance={"rsi": 0.4, "macd": 0.35, "volume": 0.25},
                device="cpu",
            ),
        )
    )
    return out


def _batch_event(i: int, total: int, *, seq: int, time: float) -> JobEvent:
    """A mid-training BATCH event, what a trainer relays."""
    per_epoch = 50
    epoch, batch = divmod(i, per_epoch)
    return JobEvent(
        job_id="",
        seq=seq,
        time=time,
        state=JobState.RUNNING,
        kind=EventKind.BATCH,
        percentage=40.0 + 50.0 * i / max(total, 1),
        message=f"Epoch {epoch + 1}/100 · Batch {batch + 1}/{per_epoch}",
        step_index=9,
        step_total=12,
        step_name="Training model",
        step_percentage=100.0 * i / max(total, 1),
        epoch=epoch + 1,
        total_epochs=100,
        batch=batch + 1,
        total_batches=per_epoch,
        metrics={"loss": 1.0 / (i + 1), "accuracy": 0.33 + i * 1e-5, "learning_rate": 1e-3},
        eta_seconds=120.0 - i * 0.01,
        node=NODE,
        device="cpu",
    )


# -- filling a store -----------------------------------------------------------------------------


def fill_store(state_dir: Path, jobs: int, events_per_job: int) -> float:
    """Write ``jobs`` finished jobs of ``events_per_job`` events into the SQLite store that
    ``create_server`` opens under ``state_dir``; returns the seconds it took."""
    from services.orchestrator.store import DEFAULT_SQLITE_NAME
    from services.orchestrator.store_sqlite import SqliteJobStore

    started = time.perf_counter()
    path = state_dir / DEFAULT_SQLITE_NAME
    SqliteJobStore(path).close()  # the schema, the file modes, the schema version
    request = serde.request_to_proto(_request()).SerializeToString()
    base = time.time() - jobs * 60.0
    events = _job_events(events_per_job, base)
    started_offset = next(e.time for e in events if e.state is JobState.RUNNING) - base
    templates = [serde.event_to_proto(e) for e in events]
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("BEGIN IMMEDIATE")
        for n in range(jobs):
            job_id = f"{n + 1:016x}"
            created = base + n * 60.0
            db.execute(
                "INSERT INTO jobs(job_id, request_id, kind, request, upload_token, created_at,"
                " state, node, attempt, node_seq, cancel_requested, last_seq, started_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    job_id,
                    "",
                    "train",
                    request,
                    f"token-{n}",
                    created,
                    JobState.SUCCEEDED.value,
                    NODE,
                    1,
                    0,
                    "",
                    len(templates),
                    created + started_offset,
                ),
            )
            rows = []
            for template in templates:
                template.job_id = job_id
                rows.append((job_id, template.seq, template.SerializeToString()))
            db.executemany("INSERT INTO events(job_id, seq, event) VALUES (?,?,?)", rows)
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return time.perf_counter() - started


# -- one start-up, in a fresh process ------------------------------------------------------------


def _vm_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def child_main(state_dir: Path) -> None:
    """The measured process: import, then time ``create_server`` until it serves."""
    import resource

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from services.orchestrator.config import OrchestratorConfig
    from services.orchestrator.server import create_server
    from shared.rpc import plumbing

    async def measure() -> dict[str, Any]:
        rss_before_kib = _vm_kib("VmRSS")
        started = time.perf_counter()
        orch = await create_server(OrchestratorConfig(listen="127.0.0.1:0", state_dir=state_dir))
        startup_s = time.perf_counter() - started
        hwm_kib = _vm_kib("VmHWM")
        try:
            channel = plumbing.create_channel(orch.address)
            try:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=30
                )
            finally:
                await channel.close(None)
            if reply.status != health_pb2.HealthCheckResponse.SERVING:
                raise RuntimeError(f"health says {reply.status}")
            records = list(orch.book.listing([]))  # read from the store: finished jobs are not held
            loaded = {
                "jobs": len(records),
                "succeeded": sum(1 for r in records if r.state is JobState.SUCCEEDED),
                "events": sum(r.last_seq for r in records),
            }
        finally:
            await orch.stop(0)
        return {
            "startup_s": startup_s,
            "rss_mb": hwm_kib / 1024,
            "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_before_mb": rss_before_kib / 1024,
            "loaded": loaded,
        }

    print(json.dumps(asyncio.run(measure())), flush=True)


def _startup_trial(state_dir: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(state_dir)],
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"start-up trial failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _check_loaded(trial: dict[str, Any], jobs: int, events_per_job: int) -> None:
    expected = {"jobs": jobs, "succeeded": jobs, "events": jobs * events_per_job}
    if trial["loaded"] != expected:
        raise RuntimeError(f"the orchestrator loaded {trial['loaded']}, expected {expected}")


# -- append throughput ---------------------------------------------------------------------------


async def _append_rate(book: Any, batch: list[JobEvent]) -> float:
    """Events/s of ``JobBook.append`` on one RUNNING job, no watchers: from the first append
    until the store has committed the last (``JobBook.flushed``), yielding to the event loop
    after each append as the relay does between trainer messages."""
    request = _request()
    job_id = (await book.create_job(request))[0].job_id
    book.append(
        job_id,
        JobEvent(
            job_id="",
            seq=0,
            time=time.time(),
            state=JobState.RUNNING,
            kind=EventKind.LIFECYCLE,
            message=f"Started on {NODE}",
            node=NODE,
        ),
    )
    await book.flushed()
    started = time.perf_counter()
    for event in batch:
        book.append(job_id, event)
        await asyncio.sleep(0)
    await book.flushed()
    elapsed = time.perf_counter() - started
    finished = _job_events(3, time.time())[-1]
    book.append(job_id, replace(finished, time=time.time()))
    await book.flushed()
    return len(batch) / elapsed


async def append_throughput(tmp: Path, events: int, repeats: int) -> dict[str, list[float]]:
    from services.orchestrator.jobs import JobBook
    from services.orchestrator.store import MemoryJobStore
    from services.orchestrator.store_sqlite import SqliteJobStore

    batch = [_batch_event(i, events, seq=0, time=time.time()) for i in range(events)]
    sqlite_store = SqliteJobStore(tmp / "append" / "jobs.sqlite3")
    books = {"sqlite": JobBook(sqlite_store), "memory": JobBook(MemoryJobStore())}
    samples: dict[str, list[float]] = {name: [] for name in books}
    try:
        for book in books.values():  # warm-up: code paths, SQLite pages
            await _append_rate(book, batch[:100])
        for _ in range(repeats):
            for name, book in books.items():
                samples[name].append(await _append_rate(book, batch))
    finally:
        for book in books.values():
            book.close()
        sqlite_store.close()
    return samples


# -- the benchmark -------------------------------------------------------------------------------


def _spread(values: list[float], digits: int) -> dict[str, Any]:
    return {
        "median": round(median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "samples": [round(v, digits) for v in values],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    jobs: int = args.jobs or (1_000 if args.quick else 10_000)
    events_per_job: int = args.events
    pairs: int = args.repeats or (2 if args.quick else 5)
    append_events = 500 if args.quick else 2_000
    append_repeats = 3 if args.quick else 5
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        full_dir, empty_dir = tmp / "full", tmp / "empty"
        fill_s = fill_store(full_dir, jobs, events_per_job)
        db_mb = (full_dir / "jobs.sqlite3").stat().st_size / 2**20
        print(f"filled {jobs} x {events_per_job} events in {fill_s:.1f} s", file=sys.stderr)
        full: list[dict[str, Any]] = []
        empty: list[dict[str, Any]] = []
        _startup_trial(empty_dir)  # warm-up: the interpreter's and imports' files in page cache
        for _ in range(pairs):
            full.append(_startup_trial(full_dir))
            _check_loaded(full[-1], jobs, events_per_job)
            empty.append(_startup_trial(empty_dir))
            _check_loaded(empty[-1], 0, events_per_job)
            print(
                f"start-up full {full[-1]['startup_s']:.3f} s {full[-1]['rss_mb']:.0f} MB, "
                f"empty {empty[-1]['startup_s']:.3f} s {empty[-1]['rss_mb']:.0f} MB",
                file=sys.stderr,
                flush=True,
            )
        append = asyncio.run(append_throughput(tmp, append_events, append_repeats))
    load_after = os.getloadavg()
    startup_full = [t["startup_s"] for t in full]
    startup_empty = [t["startup_s"] for t in empty]
    rss_full = [t["rss_mb"] for t in full]
    rss_empty = [t["rss_mb"] for t in empty]
    sqlite_rate = median(append["sqlite"])
    memory_rate = median(append["memory"])
    return {
        "startup_ratio": round(median(startup_full) / median(startup_empty), 2),
        "rss_ratio": round(median(rss_full) / median(rss_empty), 3),
        "startup_s_full": round(median(startup_full), 3),
        "startup_s_empty": round(median(startup_empty), 4),
        "rss_mb_full": round(median(rss_full), 1),
        "rss_mb_empty": round(median(rss_empty), 1),
        "append_events_per_s_sqlite": round(sqlite_rate),
        "append_events_per_s_memory": round(memory_rate),
        "jobs": jobs,
        "events_per_job": events_per_job,
        "goal": "startup_ratio <= 1.5 and rss_ratio <= 1.5",
        "pairs": pairs,
        "quick": bool(args.quick),
        "startup_s": {"full": _spread(startup_full, 4), "empty": _spread(startup_empty, 4)},
        "rss_mb": {"full": _spread(rss_full, 1), "empty": _spread(rss_empty, 1)},
        "rss_mb_before_startup": round(median([t["rss_before_mb"] for t in full + empty]), 1),
        "startup_us_per_stored_event": round(
            (median(startup_full) - median(startup_empty)) / (jobs * events_per_job) * 1e6, 2
        ),
        "rss_bytes_per_stored_event": round(
            (median(rss_full) - median(rss_empty)) * 2**20 / (jobs * events_per_job)
        ),
        "append_events_per_s": {
            "sqlite": _spread(append["sqlite"], 0),
            "memory": _spread(append["memory"], 0),
            "events_per_run": append_events,
        },
        "fill_s": round(fill_s, 2),
        "fill_method": "executemany against the SqliteJobStore schema, one transaction",
        "store_file_mb": round(db_mb, 1),
        "load_avg_1m": {"before": round(load_before[0], 2), "after": round(load_after[0], 2)},
        "notes": (
            "each start-up trial is a fresh process: startup_s is create_server() until it "
            "returns serving, rss_mb its VmHWM (peak RSS) then; full and empty trials "
            "interleaved; append: JobBook.append on one RUNNING job, no watchers, until the "
            "store committed the last event"
        ),
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child_main(Path(sys.argv[2]))
        return
    parser = base_parser(__doc__ or "")
    parser.add_argument("--jobs", type=int, default=None, help="finished jobs in the full store")
    parser.add_argument("--events", type=int, default=100, help="events per job (>= 3)")
    args = parser.parse_args()
    report("store", run(args))


if __name__ == "__main__":
    main()
